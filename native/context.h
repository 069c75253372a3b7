// Context: a llama_context (KV cache + compute) on one sequence, with the layer-range decode
// that the patch adds. The addon tracks which positions hold all layers and which hold only the
// draft's layers [0, E), and keeps the drafts' layer-E hidden states natively (the "exit query
// cache") so a verification call does not copy them through JavaScript.
#pragma once

#include <napi.h>

#include "common.h"
#include "ggml-cpu.h"
#include "llama.h"
#include "model.h"

#include <atomic>
#include <memory>
#include <vector>

namespace layerskip {

// Throws the error of a failed decode_checked() (worker thread): aborted, RPC lost, or llama.cpp's status.
[[noreturn]] void throw_decode_failure(int32_t ret, const std::string & why);

class Context : public Napi::ObjectWrap<Context> {
public:
    struct DraftJob;  // one sequence's draft call (public for the result builder)
    static Napi::Function define(Napi::Env env);
    static Napi::Value create(const Napi::CallbackInfo & info);  // (model, options) => Promise<Context>

    explicit Context(const Napi::CallbackInfo & info);
    ~Context() override;

private:
    LAYERSKIP_GUARDED_METHODS(Context)

    struct DecodeJob;
    struct ManyJob;
    struct VerifyJob;
    struct RunJob;
    struct SeqState {
        std::atomic<int32_t> n_past{0}, n_full{0}, draft_layer{0};
        std::vector<float> hidden_cache;  // layer-draft_layer hidden states of [n_full, n_past)
        // positions [split_from, n_past) came from split decodes at split_layer: no KV below it (-1: none)
        std::atomic<int32_t> split_from{-1}, split_layer{0};
    };


    Napi::Value decode(const Napi::CallbackInfo & info);
    Napi::Value decode_many(const Napi::CallbackInfo & info);
    Napi::Value draft(const Napi::CallbackInfo & info);
    Napi::Value draft_many(const Napi::CallbackInfo & info);
    Napi::Value decode_run(const Napi::CallbackInfo & info);  // context-run.cc
    Napi::Value verify_many(const Napi::CallbackInfo & info);
    Napi::Value set_draft_head(const Napi::CallbackInfo & info);
    Napi::Value remove_from(const Napi::CallbackInfo & info);
    Napi::Value mark_verified(const Napi::CallbackInfo & info);
    Napi::Value clear(const Napi::CallbackInfo & info);
    Napi::Value set_threads(const Napi::CallbackInfo & info);
    Napi::Value state(const Napi::CallbackInfo & info);
    Napi::Value dispose(const Napi::CallbackInfo & info);
    Napi::Value abort(const Napi::CallbackInfo & info);

    void check_usable(Napi::Env env, const char * what) const;
    Napi::Value run_busy(Napi::Env env, PromiseWorker::Work work, PromiseWorker::Done done);
    void check_draft_continues(Napi::Env env, const char * what, const SeqState & seq, int32_t layer) const;
    void check_no_split(Napi::Env env, const char * what, const SeqState & seq, int32_t seq_id) const;
    void check_room(Napi::Env env, const char * what, int32_t n) const;  // n more positions fit the context
    void attach_threads(int32_t threads, int32_t batch_threads);
    void free_now();
    void run_decode(DecodeJob & job);  // worker thread
    std::shared_ptr<DraftJob> parse_draft(Napi::Env env, const Napi::Object & o);
    void run_drafts(const std::vector<std::shared_ptr<DraftJob>> & jobs);  // worker thread: one early-exit batch per draft step
    void run_decode_many(ManyJob & job);  // worker thread
    void run_verify_many(VerifyJob & job);  // worker thread
    void run_greedy(RunJob & job);          // worker thread (context-run.cc)
    int32_t decode_checked(llama_batch & b);            // worker thread: llama_decode + lost RPC servers
    void use_layer_range(int32_t start, int32_t end);  // worker thread
    void use_exit_layer(int32_t layer);                // worker thread: extract its hidden states
    // the token of the best of the first `width` values of an early-exit logits row (mapped through
    // the draft vocabulary) and the softmax maximum when asked
    int32_t row_best(const float * row, bool draft, float * max_prob) const;
    void expand_draft_row(const float * row, std::vector<float> & out) const;  // to n_vocab, -inf outside

    llama_context * ctx_ = nullptr;
    Model * model_ = nullptr;
    Napi::ObjectReference model_ref_;
    // persistent CPU thread pools: llama.cpp's compute threads live with the context, whichever
    // libuv worker thread runs a decode (ggml is built without OpenMP, whose thread teams are
    // per calling thread and spin on small machines)
    ggml_threadpool * pool_ = nullptr;
    ggml_threadpool * pool_batch_ = nullptr;
    llama_batch tok_batch_{};
    llama_batch embd_batch_{};

    int32_t n_layer_ = 0, n_embd_ = 0, n_vocab_ = 0, n_ctx_ = 0, n_batch_ = 0;

    // per sequence: positions [0, n_past) are in the KV cache; [0, n_full) hold all layers and
    // [n_full, n_past) only layers [0, draft_layer) (early-exit drafts awaiting verification)
    // atomics: state() reads them on the JavaScript thread while a decode may write them on a worker
    std::vector<std::unique_ptr<SeqState>> seqs_;
    int32_t n_seq_ = 1;
    // the sequence an options object names (`sequence`, default 0)
    int32_t seq_arg(Napi::Env env, const Napi::Object & o) const;
    int32_t cells_used() const;
    void check_token_ids(Napi::Env env, const char * what, const std::vector<int32_t> & tokens) const;  // inside the vocabulary  // positions held, all sequences together (they share the cells)
    int32_t hidden_layer_enabled_ = -1;  // the layer whose input llama.cpp extracts
    int32_t range_start_ = 0, range_end_ = 0;
    // the draft vocabulary of the installed exit head (token of each early-exit logits column);
    // empty: early-exit rows score the whole vocabulary
    std::vector<int32_t> draft_vocab_;
    std::vector<double> weights_;  // the draft loop's sampling weights (reused: no allocation per draft)

    std::atomic<bool> busy_{false};
    // set by abort() or dispose() on the JavaScript thread; llama.cpp's abort callback polls it
    // between graph nodes, so a long prompt batch stops within one node's time
    std::atomic<bool> abort_{false};
    bool disposed_ = false;
};

}  // namespace layerskip
