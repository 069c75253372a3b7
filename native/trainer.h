// Trainer: LayerSkip training of a loaded model (the patch's llama_layerskip_train_*), one
// job of micro-batch steps at a time on the libuv pool, progress through a thread-safe function.
#pragma once

#include <napi.h>

#include "common.h"
#include "model.h"

#include <atomic>

struct llama_layerskip_trainer;

namespace layerskip {

class Trainer : public Napi::ObjectWrap<Trainer> {
public:
    static Napi::Function define(Napi::Env env);
    static Napi::Value create(const Napi::CallbackInfo & info);  // (model, options) => Promise<Trainer>

    explicit Trainer(const Napi::CallbackInfo & info);
    ~Trainer() override;

private:
    LAYERSKIP_GUARDED_METHODS(Trainer)

    Napi::Value run(const Napi::CallbackInfo & info);
    Napi::Value save(const Napi::CallbackInfo & info);
    Napi::Value abort(const Napi::CallbackInfo & info);
    Napi::Value dispose(const Napi::CallbackInfo & info);
    void check_usable(Napi::Env env, const char * what) const;
    Napi::Value run_busy(Napi::Env env, PromiseWorker::Work work, PromiseWorker::Done done);
    void free_now();

    Model * model_ = nullptr;
    Napi::ObjectReference model_ref_;
    llama_layerskip_trainer * trainer_ = nullptr;
    int32_t n_layer_ = 0, n_ctx_ = 0, n_seq_ = 0;
    std::atomic<bool> busy_{false};
    std::atomic<bool> abort_{false};
    bool disposed_ = false;
};

}  // namespace layerskip
