// Model: a loaded GGUF model (llama_model) and its vocabulary; mirrors llama.cpp's model API.
#pragma once

#include <napi.h>

#include "common.h"
#include "llama.h"

namespace layerskip {

class Model : public Napi::ObjectWrap<Model> {
public:
    static Napi::Function define(Napi::Env env);
    static Napi::Value load(const Napi::CallbackInfo & info);      // (path, options) => { promise: Promise<Model>, cancel() }
    static Napi::Value quantize(const Napi::CallbackInfo & info);  // (src, dst, type, threads) => Promise<void>
    static Napi::Value rpc_serve(const Napi::CallbackInfo & info);  // (host, port, threads, cacheDir?, device?): blocks

    explicit Model(const Napi::CallbackInfo & info);
    ~Model() override;

    // a live Model, or a JavaScript error naming the call
    static Model * unwrap_live(Napi::Env env, Napi::Value value, const char * what);

    llama_model * get() const { return model_; }
    const llama_vocab * vocab() const { return llama_model_get_vocab(model_); }
    bool disposed() const { return disposed_; }
    void retain() { ++users_; }
    bool rpc_failed() const;  // an RPC server this model uses was lost since it loaded
    void release();

private:
    LAYERSKIP_GUARDED_METHODS(Model)

    Napi::Value info(const Napi::CallbackInfo & info);
    Napi::Value tokenize(const Napi::CallbackInfo & info);
    Napi::Value tokenize_async(const Napi::CallbackInfo & info);
    Napi::Value detokenize(const Napi::CallbackInfo & info);
    Napi::Value token_piece(const Napi::CallbackInfo & info);
    Napi::Value is_eog(const Napi::CallbackInfo & info);
    Napi::Value dispose(const Napi::CallbackInfo & info);
    Napi::Value disposed_getter(const Napi::CallbackInfo & info);
    Napi::Value layer_devices(const Napi::CallbackInfo & info);
    void check_live(Napi::Env env, const char * what) const;
    void free_now();

    llama_model * model_ = nullptr;
    bool disposed_ = false;
    int users_ = 0;  // live contexts: the weights are freed when the last one goes
    bool rpc_ = false, output_local_ = true;
    uint32_t rpc_failures_at_load_ = 0;
};

}  // namespace layerskip
