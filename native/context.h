// Context: a llama_context (KV cache + compute) with one or more sequences, and the layer-range
// decode that the patch adds. Each sequence's SeqState tracks which positions hold all layers and
// which only the draft's layers [0, E), and keeps the drafts' layer-E hidden states natively so a
// verification does not copy them through JavaScript.
// The methods live in files by job: context.cc (lifetime, the busy flag, KV bookkeeping calls),
// decode.cc (decodes and verifications), draft.cc (the early-exit draft loop), draft-head.cc,
// context-run.cc (the native plain-decoding loop).
#pragma once

#include <napi.h>

#include "common.h"
#include "ggml-cpu.h"
#include "llama.h"
#include "lookup-index.h"
#include "model.h"
#include "seq-state.h"

#include <atomic>
#include <memory>
#include <utility>
#include <vector>

namespace layerskip {

// the most compute threads a context takes; lib/runtime/context-options.ts validates against the same
// MAX_THREADS (test/error-codes.test.ts checks that the two agree)
constexpr int32_t MAX_THREADS = 512;

// Throws the error of a failed decode_checked() (worker thread): aborted, RPC lost, or llama.cpp's status.
[[noreturn]] void throw_decode_failure(int32_t ret, const std::string & why);

struct SeqRows;  // one sequence's outputs of a batched call (context-jobs.h)

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

    Napi::Value decode(const Napi::CallbackInfo & info);
    Napi::Value decode_many(const Napi::CallbackInfo & info);
    Napi::Value draft(const Napi::CallbackInfo & info);
    Napi::Value draft_many(const Napi::CallbackInfo & info);
    Napi::Value draft_verify(const Napi::CallbackInfo & info);
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
    static Napi::Object decode_result(Napi::Env env, const DecodeJob & job);  // { argmax, nativeMs, maxProb?, logits?, hidden? }
    std::shared_ptr<DraftJob> parse_draft(Napi::Env env, const Napi::Object & o);
    void run_drafts(const std::vector<std::shared_ptr<DraftJob>> & jobs);  // worker thread: one early-exit batch per draft step
    void run_decode_many(ManyJob & job);  // worker thread
    void run_verify_many(VerifyJob & job);  // worker thread
    void run_greedy(RunJob & job);          // worker thread (context-run.cc)
    void run_rounds(RunJob & job);          // worker thread (context-run.cc): run_greedy with free and early-exit rounds
    // worker thread (context-run.cc): one of run_rounds' early-exit rounds; its tokens in `out`,
    // returns { drafts, accepted drafts }
    std::pair<int32_t, int32_t> early_round(RunJob & job, int32_t feed, int32_t want, std::vector<int32_t> & out);
    int32_t decode_checked(llama_batch & b);            // worker thread: llama_decode + lost RPC servers
    // worker thread: decode_checked(b); on failure `rollback` drops what the batch wrote, then the
    // failure is thrown (aborted, RPC lost, or llama.cpp's status)
    template <typename Rollback> void decode_or_throw(llama_batch & b, Rollback && rollback) {
        take_last_llama_error();
        const int32_t ret = decode_checked(b);
        if (ret == 0) return;
        const std::string why = take_last_llama_error();
        rollback();
        throw_decode_failure(ret, why);
    }
    const float * output_row(int32_t i) const;  // worker thread: logits of batch row i, or throw
    void take_row(SeqRows & rows, int32_t i) const;  // worker thread: row i's argmax (and logits) for a batched call
    void drop_from(int32_t seq, int32_t pos);    // the KV cells of `seq` from `pos` on
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

    // per sequence: which positions hold which layers, and the pending drafts' hidden states
    std::vector<std::unique_ptr<SeqState>> seqs_;
    // per sequence: decodeRun's lookup index (lookup-index.h), made by the first lookup run
    std::vector<std::unique_ptr<LookupIndex>> lookups_;
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
