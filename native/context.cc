#include "context.h"
#include "error-codes.h"

#include "addon.h"
#include "common.h"
#include "llama-ext.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

namespace layerskip {

Napi::Function Context::define(Napi::Env env) {
    return DefineClass(env, "NativeContext", {
        InstanceMethod<&Context::guarded<&Context::decode>>("decode"),
        InstanceMethod<&Context::guarded<&Context::decode_many>>("decodeMany"),
        InstanceMethod<&Context::guarded<&Context::draft>>("draft"),
        InstanceMethod<&Context::guarded<&Context::draft_many>>("draftMany"),
        InstanceMethod<&Context::guarded<&Context::draft_verify>>("draftVerify"),
        InstanceMethod<&Context::guarded<&Context::decode_run>>("decodeRun"),
        InstanceMethod<&Context::guarded<&Context::verify_many>>("verifyMany"),
        InstanceMethod<&Context::guarded<&Context::set_draft_head>>("setDraftHead"),
        InstanceMethod<&Context::guarded<&Context::remove_from>>("removeFrom"),
        InstanceMethod<&Context::guarded<&Context::mark_verified>>("markVerified"),
        InstanceMethod<&Context::guarded<&Context::clear>>("clear"),
        InstanceMethod<&Context::guarded<&Context::set_threads>>("setThreads"),
        InstanceMethod<&Context::guarded<&Context::state>>("state"),
        InstanceMethod<&Context::guarded<&Context::dispose>>("dispose"),
        InstanceMethod<&Context::guarded<&Context::abort>>("abort"),
    });
}

Context::Context(const Napi::CallbackInfo & info) : Napi::ObjectWrap<Context>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 2 || !info[0].IsObject() || !info[1].IsExternal()) {
        throw_type(env, "NativeContext cannot be constructed directly: use model.createContext()");
    }
    model_ = Model::Unwrap(info[0].As<Napi::Object>());
    model_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
    model_->retain();
    ctx_ = info[1].As<Napi::External<llama_context>>().Data();
    n_layer_ = llama_model_n_layer(model_->get());
    n_embd_ = llama_model_n_embd(model_->get());
    n_vocab_ = llama_vocab_n_tokens(model_->vocab());
    n_ctx_ = (int32_t)llama_n_ctx(ctx_);
    n_batch_ = (int32_t)llama_n_batch(ctx_);
    n_seq_ = (int32_t)llama_n_seq_max(ctx_);
    for (int32_t i = 0; i < n_seq_; ++i) seqs_.push_back(std::make_unique<SeqState>(n_embd_));
    range_end_ = n_layer_;
    attach_threads(llama_n_threads(ctx_), llama_n_threads_batch(ctx_));
    tok_batch_ = llama_batch_init(n_batch_, 0, 1);
    embd_batch_ = llama_batch_init(n_batch_, n_embd_, 1);
    llama_set_abort_callback(ctx_, [](void * self) { return static_cast<Context *>(self)->abort_.load(); }, this);
}

Context::~Context() { free_now(); }

void Context::attach_threads(int32_t threads, int32_t batch_threads) {
    FlushDenormals ftz;  // inherited by the pool's threads
    ggml_threadpool * old = pool_;
    ggml_threadpool * old_batch = pool_batch_;
    // poll 0: workers sleep between graphs instead of spinning against the Node main thread
    auto p = ggml_threadpool_params_default(threads);
    p.poll = 0;
    pool_ = ggml_threadpool_new(&p);
    pool_batch_ = nullptr;
    if (batch_threads != threads) {
        auto pb = ggml_threadpool_params_default(batch_threads);
        pb.poll = 0;
        pool_batch_ = ggml_threadpool_new(&pb);
    }
    llama_attach_threadpool(ctx_, pool_, pool_batch_ ? pool_batch_ : pool_);
    llama_set_n_threads(ctx_, threads, batch_threads);
    if (old) ggml_threadpool_free(old);
    if (old_batch) ggml_threadpool_free(old_batch);
}

void Context::free_now() {
    if (ctx_) {
        llama_free(ctx_);
        ctx_ = nullptr;
        if (pool_) ggml_threadpool_free(pool_);
        if (pool_batch_) ggml_threadpool_free(pool_batch_);
        pool_ = pool_batch_ = nullptr;
        llama_batch_free(tok_batch_);
        llama_batch_free(embd_batch_);
        lookups_.clear();
        model_->release();
        model_ref_.Reset();
        release_free_memory();
    }
}

Napi::Value Context::create(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Model * model = Model::unwrap_live(env, info[0], "createContext");
    Napi::Object opts = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);

    auto params = llama_context_default_params();
    params.n_ctx = (uint32_t)get_int(env, opts, "contextSize", 2048, 1, 1 << 24);
    params.n_batch = (uint32_t)get_int(env, opts, "batchSize", std::min<int32_t>(512, params.n_ctx), 1, 1 << 16);
    params.n_batch = std::min(params.n_batch, params.n_ctx);
    params.n_ubatch = params.n_batch;
    // sequences share one KV buffer (unified): each takes the cells it uses, and a batch may mix them
    params.n_seq_max = (uint32_t)get_int(env, opts, "sequences", 1, 1, 64);
    params.kv_unified = true;
    params.n_threads = get_int(env, opts, "threads", 1, 1, MAX_THREADS);
    params.n_threads_batch = get_int(env, opts, "batchThreads", params.n_threads, 1, MAX_THREADS);
    params.no_perf = true;
    // a sliding-window model's windowed layers: a full-size cache, or the window plus one batch
    if (opts.Has("swaFull") && opts.Get("swaFull").IsBoolean()) params.swa_full = opts.Get("swaFull").As<Napi::Boolean>();
    int32_t fa = get_int(env, opts, "flashAttention", -1, -1, 1);
    params.flash_attn_type = (llama_flash_attn_type)fa;
    if (opts.Has("kvCacheType") && opts.Get("kvCacheType").IsString()) {
        std::string kv = opts.Get("kvCacheType").As<Napi::String>();
        ggml_type t = kv == "f32" ? GGML_TYPE_F32 : kv == "f16" ? GGML_TYPE_F16 : kv == "q8_0" ? GGML_TYPE_Q8_0 : GGML_TYPE_COUNT;
        if (t == GGML_TYPE_COUNT) throw_range(env, "kvCacheType must be 'f16', 'f32' or 'q8_0'");
        params.type_k = params.type_v = t;
    }

    llama_model * lm = model->get();
    // the model stays referenced by the arguments of this call until the Promise settles;
    // the new Context then holds its own reference
    auto model_ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(info[0].As<Napi::Object>()));
    model->retain();  // the weights may not be freed while the context is being created
    auto result = std::make_shared<llama_context *>(nullptr);
    return PromiseWorker::run(env,
        [lm, params, result]() {
            take_last_llama_error();
            *result = llama_init_from_model(lm, params);
            if (!*result) {
                std::string why = take_last_llama_error();
                throw std::runtime_error("failed to create a context of " + std::to_string(params.n_ctx) + " tokens" +
                    (why.empty() ? "" : ": " + why));
            }
        },
        [result, model_ref](Napi::Env env) -> Napi::Value {
            auto * data = env.GetInstanceData<AddonData>();
            try {
                return data->context_ctor.New({model_ref->Value(), Napi::External<llama_context>::New(env, *result)});
            } catch (...) {
                llama_free(*result);  // the wrapper did not take it: nothing else frees it
                throw;
            }
        },
        [model]() { model->release(); });
}

int32_t Context::seq_arg(Napi::Env env, const Napi::Object & o) const {
    return get_int(env, o, "sequence", 0, 0, n_seq_ - 1);
}

void Context::check_token_ids(Napi::Env env, const char * what, const std::vector<int32_t> & tokens) const {
    for (size_t i = 0; i < tokens.size(); ++i) {
        if (tokens[i] < 0 || tokens[i] >= n_vocab_) {
            throw_range(env, std::string(what) + ": token " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                " is outside the vocabulary [0, " + std::to_string(n_vocab_) + ")");
        }
    }
}

int32_t Context::cells_used() const {
    int32_t used = 0;
    for (const auto & s : seqs_) used += s->n_past();
    return used;
}

// new drafts at `layer` may follow pending drafts only if those exit at the same layer
void Context::check_draft_continues(Napi::Env env, const char * what, const SeqState & seq, int32_t layer) const {
    if (seq.n_full() < seq.n_past() && seq.draft_layer() != layer) {
        throw_error(env, std::string(what) + ": pending drafts were made with exit layer " + std::to_string(seq.draft_layer()) +
            ", not " + std::to_string(layer), codes::PENDING_DRAFT);
    }
}

// a decode that runs layers from 0 would attend to split-decoded positions, which have no KV there
void Context::check_no_split(Napi::Env env, const char * what, const SeqState & seq, int32_t seq_id) const {
    if (seq.split_from() < 0) return;
    throw_error(env, std::string(what) + ": positions [" + std::to_string(seq.split_from()) + ", " + std::to_string(seq.n_past()) +
        ") of sequence " + std::to_string(seq_id) + " came from split decodes (no KV below layer " + std::to_string(seq.split_layer()) +
        "); removeFrom(" + std::to_string(seq.split_from()) + ") before a decode that runs the layers below it", codes::SPLIT_DECODED);
}

void Context::check_room(Napi::Env env, const char * what, int32_t n) const {
    const int32_t used = cells_used();
    if (used + n > n_ctx_) {
        throw_error(env, std::string(what) + ": the context is full (" + std::to_string(n_ctx_) + " tokens; " + std::to_string(used) +
            " used, " + std::to_string(n) + " more requested)", codes::CONTEXT_FULL);
    }
}

// Runs `work` on the libuv pool with the context marked busy, keeping this object alive while the
// worker uses it (even if JavaScript drops it); a dispose during the work frees it afterwards.
Napi::Value Context::run_busy(Napi::Env env, PromiseWorker::Work work, PromiseWorker::Done done) {
    busy_ = true;
    abort_ = false;  // an abort() from here on stops this operation
    auto self = std::make_shared<Napi::ObjectReference>(Napi::Persistent(Value()));
    return PromiseWorker::run(env, std::move(work), std::move(done), [this, self]() {
        busy_ = false;
        if (disposed_) free_now();
    });
}

void Context::check_usable(Napi::Env env, const char * what) const {
    if (disposed_ || !ctx_) throw_error(env, std::string(what) + ": the context is disposed", codes::DISPOSED);
    if (busy_.load()) throw_error(env, std::string(what) + ": the context is busy with another operation", codes::BUSY);
}

// the sequence argument of removeFrom / clear / state: a number in [0, sequences), or undefined (0)
static int32_t seq_index(Napi::Env env, const Napi::CallbackInfo & info, size_t at, int32_t n_seq, const char * what) {
    if (info.Length() <= at || info[at].IsUndefined()) return 0;
    if (!info[at].IsNumber()) throw_type(env, std::string(what) + ": sequence must be a number");
    const double v = info[at].As<Napi::Number>().DoubleValue();
    if (v != std::floor(v) || v < 0 || v >= n_seq) {
        throw_range(env, std::string(what) + ": sequence must be an integer in [0, " + std::to_string(n_seq - 1) + "], got " + std::to_string(v));
    }
    return (int32_t)v;
}

// removeFrom(position, sequence?)
Napi::Value Context::remove_from(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_usable(env, "removeFrom");
    if (info.Length() < 1 || !info[0].IsNumber()) throw_type(env, "removeFrom: position must be a number");
    double p = info[0].As<Napi::Number>().DoubleValue();
    if (p != std::floor(p) || p < 0) throw_range(env, "removeFrom: position must be a non-negative integer");
    const int32_t seq = seq_index(env, info, 1, n_seq_, "removeFrom");
    SeqState & S = *seqs_[seq];
    const int32_t pos = (int32_t)std::min<double>(p, S.n_past());
    if (pos < S.n_past()) {
        drop_from(seq, pos);
        S.remove_from(pos);
    }
    return env.Undefined();
}

// markVerified(position, sequence?): the pending drafts before `position` were verified by another
// context (a pipelined generation verifies a draft context's drafts elsewhere): here they stop being
// pending and their cached states are dropped. Only for a context that never runs the layers above
// its drafts' exit, whose KV cells for those layers stay empty.
Napi::Value Context::mark_verified(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_usable(env, "markVerified");
    if (info.Length() < 1 || !info[0].IsNumber()) throw_type(env, "markVerified: position must be a number");
    const double p = info[0].As<Napi::Number>().DoubleValue();
    if (p != std::floor(p) || p < 0) throw_range(env, "markVerified: position must be a non-negative integer");
    SeqState & S = *seqs_[seq_index(env, info, 1, n_seq_, "markVerified")];
    const int32_t pos = (int32_t)std::min<double>(p, S.n_past());
    if (pos > S.n_full()) S.verified(pos - S.n_full());
    return env.Undefined();
}

// clear(sequence?): one sequence's cells, or every sequence's without an argument
Napi::Value Context::clear(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_usable(env, "clear");
    const bool all = info.Length() < 1 || info[0].IsUndefined();
    const int32_t seq = all ? 0 : seq_index(env, info, 0, n_seq_, "clear");
    if (all) llama_memory_clear(llama_get_memory(ctx_), true);
    else llama_memory_seq_rm(llama_get_memory(ctx_), seq, -1, -1);
    for (int32_t i = 0; i < n_seq_; ++i) {
        if (!all && i != seq) continue;
        seqs_[i]->clear();
    }
    return env.Undefined();
}

Napi::Value Context::set_threads(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_usable(env, "setThreads");
    if (info.Length() < 1 || !info[0].IsNumber()) throw_type(env, "setThreads: threads must be a number");
    int32_t t = info[0].As<Napi::Number>().Int32Value();
    int32_t tb = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : t;
    if (t < 1 || tb < 1 || t > MAX_THREADS || tb > MAX_THREADS) throw_range(env, "setThreads: thread counts must be in [1, " + std::to_string(MAX_THREADS) + "]");
    attach_threads(t, tb);
    return env.Undefined();
}

// state(sequence?): the sequence's positions, and the context's sizes
Napi::Value Context::state(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const SeqState & S = *seqs_[seq_index(env, info, 0, n_seq_, "state")];
    Napi::Object o = Napi::Object::New(env);
    o.Set("contextSize", n_ctx_);
    o.Set("batchSize", n_batch_);
    o.Set("sequences", n_seq_);
    o.Set("cellsUsed", cells_used());
    o.Set("nextPosition", S.n_past());
    o.Set("verifiedPosition", S.n_full());
    o.Set("draftLayer", S.draft_layer());
    o.Set("busy", busy_.load());
    o.Set("disposed", disposed_);
    return o;
}

// abort(): the running decode or draft stops between graph nodes and rejects (no-op when idle)
Napi::Value Context::abort(const Napi::CallbackInfo & info) {
    if (busy_.load()) abort_ = true;
    return info.Env().Undefined();
}

Napi::Value Context::dispose(const Napi::CallbackInfo & info) {
    if (!disposed_) {
        disposed_ = true;
        abort_ = true;  // a running operation stops early; its worker frees the context
        if (!busy_.load()) free_now();  // else freed when the running operation settles
    }
    return info.Env().Undefined();
}

}  // namespace layerskip
