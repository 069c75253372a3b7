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

struct Context::DecodeJob {
    // inputs
    std::vector<int32_t> tokens;   // start == 0
    std::vector<float> hidden;     // start > 0 with explicit hidden states
    bool use_cached_hidden = false;
    bool split = false;  // start > 0 at new positions (their layers [0, start) ran in another context)
    int32_t seq = 0;  // the sequence
    int32_t pos0 = 0, n = 0, start = 0, end = 0;
    int outputs = 0;  // 0 last, 1 all, 2 none
    bool want_logits = false, want_probs = false, want_hidden = false;
    // outputs
    std::vector<int32_t> argmax;
    std::vector<float> max_prob;
    std::vector<float> logits;
    std::vector<float> hidden_out;
    double native_ms = 0;  // time spent in run_decode on the worker thread
};

struct Context::DraftJob {
    // inputs
    int32_t seq = 0;
    int32_t token = 0, layer = 0, max_tokens = 0;
    std::vector<int32_t> prefix; // forced drafts after `token` (a lookup draft that early exit continues)
    float min_prob = 0;          // stop when a draft's top probability falls below (not for the first)
    bool finish = false;         // run the last draft through layers [0, layer) too (unless it is EOG)
    bool want_hidden = false;    // return the layer-`layer` states of the tokens this call decoded
    double temperature = 0;      // 0: argmax; else sample softmax(logits / T) with `uniforms`
    std::vector<double> uniforms;
    // outputs
    std::vector<int32_t> tokens;
    std::vector<float> max_prob;
    std::vector<float> logits;   // sampled drafts' rows, n_vocab wide (-inf outside a draft vocabulary)
    bool last_decoded = false;   // the last draft's layers [0, layer) are in the KV cache
    std::vector<float> hidden;   // with want_hidden: one row per decoded token (`token`, then drafts)
    double native_ms = 0;        // time of the run_drafts call that served it (shared by a draftMany)
};

// the outputs of one sequence's part of a batched call (decodeMany, verifyMany)
struct SeqRows {
    bool want_logits = false;
    std::vector<int32_t> argmax;
    std::vector<float> logits;
};

// { results: [{ argmax, logits? }], nativeMs } of a batched call
template <typename Job>
static Napi::Value batch_result(Napi::Env env, const Job & job) {
    Napi::Array results = Napi::Array::New(env, job.entries.size());
    for (size_t i = 0; i < job.entries.size(); ++i) {
        const SeqRows & rows = job.entries[i];
        Napi::Object r = Napi::Object::New(env);
        r.Set("argmax", to_js(env, rows.argmax));
        if (rows.want_logits) r.Set("logits", to_js(env, rows.logits));
        results.Set((uint32_t)i, r);
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("results", results);
    out.Set("nativeMs", job.native_ms);
    return out;
}

// the wall time of `work` in milliseconds (the nativeMs of results)
template <typename F>
static double timed_ms(F && work) {
    const auto t0 = std::chrono::steady_clock::now();
    work();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// decodeMany: full-model token decodes of several sequences in one batch (one llama_decode)
struct Context::ManyJob {
    struct Entry : SeqRows {
        int32_t seq = 0, pos0 = 0;
        std::vector<int32_t> tokens;
        int outputs = 0;  // 0 last, 1 all, 2 none
    };
    std::vector<Entry> entries;
    double native_ms = 0;
};

// verifyMany: verifications of several sequences' drafts (one exit layer) in one batch
struct Context::VerifyJob {
    struct Entry : SeqRows {
        int32_t seq = 0, pos0 = 0, n = 0;
    };
    int32_t layer = 0;
    std::vector<Entry> entries;
    double native_ms = 0;
};

Napi::Function Context::define(Napi::Env env) {
    return DefineClass(env, "NativeContext", {
        InstanceMethod<&Context::guarded<&Context::decode>>("decode"),
        InstanceMethod<&Context::guarded<&Context::decode_many>>("decodeMany"),
        InstanceMethod<&Context::guarded<&Context::draft>>("draft"),
        InstanceMethod<&Context::guarded<&Context::draft_many>>("draftMany"),
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
    for (int32_t i = 0; i < n_seq_; ++i) seqs_.push_back(std::make_unique<SeqState>());
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
    params.n_threads = get_int(env, opts, "threads", 1, 1, 1024);
    params.n_threads_batch = get_int(env, opts, "batchThreads", params.n_threads, 1, 1024);
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

// `outputs` of a decode entry: 0 'last' (default), 1 'all', 2 'none'
static int parse_outputs(Napi::Env env, const Napi::Object & o, const char * what) {
    const std::string v = o.Has("outputs") && o.Get("outputs").IsString() ? o.Get("outputs").As<Napi::String>().Utf8Value() : "last";
    if (v == "last") return 0;
    if (v == "all") return 1;
    if (v == "none") return 2;
    throw_range(env, std::string(what) + ": outputs must be 'last', 'all' or 'none'");
}

// the entries of a batched call (decodeMany, verifyMany, draftMany): objects, each parsed by
// `parse` into the sequence it serves, no sequence twice
template <typename Parse>
static void each_entry(Napi::Env env, const Napi::Array & list, const char * what, int32_t n_seq, Parse && parse) {
    std::vector<bool> seen(n_seq, false);
    for (uint32_t i = 0; i < list.Length(); ++i) {
        if (!list.Get(i).IsObject()) throw_type(env, std::string(what) + ": entry " + std::to_string(i) + " must be an object");
        const int32_t seq = parse(list.Get(i).As<Napi::Object>());
        if (seen[seq]) throw_range(env, std::string(what) + ": sequence " + std::to_string(seq) + " appears twice");
        seen[seq] = true;
    }
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
    for (const auto & s : seqs_) used += s->n_past.load();
    return used;
}

// new drafts at `layer` may follow pending drafts only if those exit at the same layer
void Context::check_draft_continues(Napi::Env env, const char * what, const SeqState & seq, int32_t layer) const {
    if (seq.n_full < seq.n_past && seq.draft_layer != layer) {
        throw_error(env, std::string(what) + ": pending drafts were made with exit layer " + std::to_string(seq.draft_layer) +
            ", not " + std::to_string(layer), codes::PENDING_DRAFT);
    }
}

// a decode that runs layers from 0 would attend to split-decoded positions, which have no KV there
void Context::check_no_split(Napi::Env env, const char * what, const SeqState & seq, int32_t seq_id) const {
    if (seq.split_from < 0) return;
    throw_error(env, std::string(what) + ": positions [" + std::to_string(seq.split_from) + ", " + std::to_string(seq.n_past) +
        ") of sequence " + std::to_string(seq_id) + " came from split decodes (no KV below layer " + std::to_string(seq.split_layer) +
        "); removeFrom(" + std::to_string(seq.split_from) + ") before a decode that runs the layers below it", codes::SPLIT_DECODED);
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

// decode({ tokens?: Int32Array, hidden?: Float32Array, count?: number, position?: number,
//          layers?: [start, end], outputs?: 'last' | 'all' | 'none', logits?: boolean, probs?: boolean,
//          returnHidden?: boolean })
Napi::Value Context::decode(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_usable(env, "decode");
    if (info.Length() < 1 || !info[0].IsObject()) throw_type(env, "decode: options object expected");
    Napi::Object o = info[0].As<Napi::Object>();
    auto job = std::make_shared<DecodeJob>();
    job->seq = seq_arg(env, o);
    SeqState & S = *seqs_[job->seq];

    job->start = 0;
    job->end = n_layer_;
    if (o.Has("layers") && !o.Get("layers").IsUndefined()) {
        Napi::Value lv = o.Get("layers");
        if (!lv.IsArray() || lv.As<Napi::Array>().Length() != 2) throw_type(env, "decode: layers must be [start, end]");
        Napi::Array la = lv.As<Napi::Array>();
        if (!la.Get(0u).IsNumber() || !la.Get(1u).IsNumber()) throw_type(env, "decode: layers must be two integers");
        double s = la.Get(0u).As<Napi::Number>().DoubleValue(), e = la.Get(1u).As<Napi::Number>().DoubleValue();
        if (s != std::floor(s) || e != std::floor(e) || s < 0 || e > n_layer_ || s >= e) {
            throw_range(env, "decode: layer range [" + std::to_string((long long)s) + ", " + std::to_string((long long)e) +
                ") is invalid: need 0 <= start < end <= " + std::to_string(n_layer_));
        }
        job->start = (int32_t)s;
        job->end = (int32_t)e;
    }
    if (job->start > 0 && job->end != n_layer_) {
        throw_range(env, "decode: a layer range must start at 0 (draft) or end at the last layer (verify)");
    }

    job->outputs = parse_outputs(env, o, "decode");
    job->want_logits = get_bool(o, "logits", false);
    job->want_probs = get_bool(o, "probs", false);
    job->want_hidden = get_bool(o, "returnHidden", false);
    if (job->want_hidden && job->end == n_layer_ && job->outputs != 1) {
        throw_range(env, "decode: the final hidden states are returned only with outputs: 'all'");
    }

    if (job->start == 0) {
        Napi::Value tv = o.Get("tokens");
        if (!tv.IsTypedArray() || tv.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
            throw_type(env, "decode: tokens must be an Int32Array");
        }
        auto ta = tv.As<Napi::Int32Array>();
        job->tokens.assign(ta.Data(), ta.Data() + ta.ElementLength());
        job->n = (int32_t)job->tokens.size();
        check_token_ids(env, "decode", job->tokens);
        if (o.Has("hidden") && !o.Get("hidden").IsUndefined()) throw_type(env, "decode: hidden states are input only for a range that starts above 0");
        check_no_split(env, "decode", S, job->seq);
        job->pos0 = get_int(env, o, "position", S.n_past, 0, INT32_MAX - 1);
        if (job->pos0 != S.n_past) {
            throw_range(env, "decode: position " + std::to_string(job->pos0) + " does not continue the sequence (next position is " +
                std::to_string(S.n_past) + "; remove positions with removeFrom() to rewind)");
        }
        if (job->end == n_layer_ && S.n_full < S.n_past) {
            throw_error(env, "decode: positions [" + std::to_string(S.n_full) + ", " + std::to_string(S.n_past) +
                ") hold early-exit drafts; verify them or removeFrom(" + std::to_string(S.n_full) + ") before a full decode", codes::PENDING_DRAFT);
        }
        if (job->end < n_layer_) check_draft_continues(env, "decode", S, job->end);
    } else {
        if (o.Has("tokens") && !o.Get("tokens").IsUndefined()) throw_type(env, "decode: a range that starts above 0 takes hidden states, not tokens");
        Napi::Value hv = o.Get("hidden");
        // a split decode: layers [start, N) of new positions whose layers [0, start) ran in another
        // context (the draft context of a pipelined generation); this one holds no pending drafts
        job->split = !hv.IsUndefined() && !hv.IsNull() && S.n_full == S.n_past;
        if (job->split && S.split_from >= 0 && S.split_layer != job->start) {
            throw_error(env, "decode: positions from " + std::to_string(S.split_from) + " were split-decoded from layer " +
                std::to_string(S.split_layer) + ", not " + std::to_string(job->start) + "; removeFrom(" + std::to_string(S.split_from) + ") first",
                codes::SPLIT_DECODED);
        }
        if (!job->split && (S.n_full >= S.n_past || S.draft_layer != job->start)) {
            throw_error(env, "decode: no early-exit drafts at layer " + std::to_string(job->start) + " to verify" +
                (S.n_full < S.n_past ? " (pending drafts exit at layer " + std::to_string(S.draft_layer) + ")" : ""), codes::NO_DRAFT);
        }
        job->pos0 = get_int(env, o, "position", S.n_full, 0, INT32_MAX - 1);
        if (job->pos0 != S.n_full) {
            throw_range(env, "decode: verification must start at position " + std::to_string(S.n_full) +
                " (the first unverified draft), got " + std::to_string(job->pos0));
        }
        if (hv.IsUndefined() || hv.IsNull()) {
            job->use_cached_hidden = true;
            job->n = get_int(env, o, "count", S.n_past - S.n_full, 1, S.n_past - S.n_full);
        } else {
            if (!hv.IsTypedArray() || hv.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
                throw_type(env, "decode: hidden must be a Float32Array");
            }
            auto ha = hv.As<Napi::Float32Array>();
            if (ha.ElementLength() == 0 || ha.ElementLength() % n_embd_ != 0) {
                throw_range(env, "decode: hidden has " + std::to_string(ha.ElementLength()) + " values, not a multiple of the embedding size " +
                    std::to_string(n_embd_));
            }
            job->hidden.assign(ha.Data(), ha.Data() + ha.ElementLength());
            job->n = (int32_t)(ha.ElementLength() / n_embd_);
        }
        if (!job->split && job->pos0 + job->n > S.n_past) {
            throw_range(env, "decode: positions [" + std::to_string(job->pos0) + ", " + std::to_string(job->pos0 + job->n) +
                ") have no early-layer KV (drafts end at " + std::to_string(S.n_past) + ")");
        }
    }
    if (job->n <= 0) throw_range(env, "decode: nothing to decode");
    if (job->n > n_batch_) {
        throw_range(env, "decode: " + std::to_string(job->n) + " tokens exceed the batch size " + std::to_string(n_batch_));
    }
    if (job->start == 0 || job->split) check_room(env, "decode", job->n);

    return run_busy(env,
        [this, job]() {
            job->native_ms = timed_ms([&] { run_decode(*job); });
        },
        [job](Napi::Env env) -> Napi::Value {
            Napi::Object r = Napi::Object::New(env);
            r.Set("argmax", to_js(env, job->argmax));
            r.Set("nativeMs", job->native_ms);
            if (job->want_probs) r.Set("maxProb", to_js(env, job->max_prob));
            if (job->want_logits) r.Set("logits", to_js(env, job->logits));
            if (job->want_hidden) r.Set("hidden", to_js(env, job->hidden_out));
            return r;
        });
}

// llama_decode, then whether the model's RPC servers are still there: a lost server completes its
// calls with zeroed data (patches/0005), so a decode that "succeeded" after one is a failure
static constexpr int32_t DECODE_RPC_LOST = -100;

int32_t Context::decode_checked(llama_batch & b) {
    const int32_t ret = llama_decode(ctx_, b);
    return ret == 0 && model_->rpc_failed() ? DECODE_RPC_LOST : ret;
}

// llama_decode's status 2 is an aborted compute (abort() or dispose() during the call)
[[noreturn]] void throw_decode_failure(int32_t ret, const std::string & why) {
    if (ret == 2) throw CodedError(codes::ABORTED, "the operation was aborted");
    if (ret == DECODE_RPC_LOST) {
        throw CodedError(codes::RPC, "an RPC server of this model was lost or timed out (rpcTimeoutMs)" + (why.empty() ? std::string() : ": " + why));
    }
    throw std::runtime_error("llama_decode failed (" + std::to_string(ret) + ")" + (why.empty() ? "" : ": " + why));
}

// decodeMany([{ sequence, tokens: Int32Array, outputs?: 'last' | 'all' | 'none', logits?: boolean }])
//   => Promise<{ results: [{ argmax, logits? }], nativeMs }>
// Full-model decodes of several sequences in one llama_decode: the plain steps and prompt chunks of
// concurrent generations share one pass over the weights. Each sequence continues at its next
// position and may appear once.
Napi::Value Context::decode_many(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_usable(env, "decodeMany");
    if (info.Length() < 1 || !info[0].IsArray()) throw_type(env, "decodeMany: an array of { sequence, tokens } expected");
    Napi::Array list = info[0].As<Napi::Array>();
    auto job = std::make_shared<ManyJob>();
    int32_t total = 0;
    each_entry(env, list, "decodeMany", n_seq_, [&](const Napi::Object & o) {
        ManyJob::Entry e;
        e.seq = seq_arg(env, o);
        const SeqState & S = *seqs_[e.seq];
        Napi::Value tv = o.Get("tokens");
        if (!tv.IsTypedArray() || tv.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) throw_type(env, "decodeMany: tokens must be an Int32Array");
        auto ta = tv.As<Napi::Int32Array>();
        if (ta.ElementLength() == 0) throw_range(env, "decodeMany: an entry has no tokens");
        e.tokens.assign(ta.Data(), ta.Data() + ta.ElementLength());
        check_token_ids(env, "decodeMany", e.tokens);
        e.outputs = parse_outputs(env, o, "decodeMany");
        e.want_logits = get_bool(o, "logits", false);
        if (S.n_full < S.n_past) {
            throw_error(env, "decodeMany: sequence " + std::to_string(e.seq) + " holds early-exit drafts; verify or remove them first", codes::PENDING_DRAFT);
        }
        check_no_split(env, "decodeMany", S, e.seq);
        e.pos0 = S.n_past;
        total += (int32_t)e.tokens.size();
        job->entries.push_back(std::move(e));
        return job->entries.back().seq;
    });
    if (job->entries.empty()) throw_range(env, "decodeMany: nothing to decode");
    if (total > n_batch_) throw_range(env, "decodeMany: " + std::to_string(total) + " tokens exceed the batch size " + std::to_string(n_batch_));
    check_room(env, "decodeMany", total);

    return run_busy(env,
        [this, job]() { job->native_ms = timed_ms([&] { run_decode_many(*job); }); },
        [job](Napi::Env env) -> Napi::Value { return batch_result(env, *job); });
}

void Context::run_decode_many(ManyJob & job) {
    FlushDenormals ftz;
    use_layer_range(0, n_layer_);
    llama_batch & b = tok_batch_;
    int32_t n = 0;
    for (const auto & e : job.entries) {
        for (size_t i = 0; i < e.tokens.size(); ++i, ++n) {
            b.token[n] = e.tokens[i];
            b.pos[n] = e.pos0 + (int32_t)i;
            b.n_seq_id[n] = 1;
            b.seq_id[n][0] = e.seq;
            b.logits[n] = e.outputs == 1 || (e.outputs == 0 && i + 1 == e.tokens.size());
        }
    }
    b.n_tokens = n;
    auto rollback = [&] {
        for (const auto & e : job.entries) llama_memory_seq_rm(llama_get_memory(ctx_), e.seq, e.pos0, -1);
    };
    take_last_llama_error();
    const int32_t ret = decode_checked(b);
    if (ret != 0) {
        std::string why = take_last_llama_error();
        rollback();
        throw_decode_failure(ret, why);
    }
    try {
        int32_t at = 0;
        for (auto & e : job.entries) {
            for (size_t i = 0; i < e.tokens.size(); ++i, ++at) {
                if (!b.logits[at]) continue;
                const float * row = llama_get_logits_ith(ctx_, at);
                if (!row) throw std::runtime_error("no logits for output " + std::to_string(at));
                e.argmax.push_back(row_best(row, false, nullptr));
                if (e.want_logits) e.logits.insert(e.logits.end(), row, row + n_vocab_);
            }
        }
    } catch (...) {
        rollback();  // a non-finite row: none of this batch stays
        throw;
    }
    for (const auto & e : job.entries) {
        SeqState & S = *seqs_[e.seq];
        S.n_past = S.n_full = e.pos0 + (int32_t)e.tokens.size();
    }
}


void Context::run_decode(DecodeJob & job) {
    FlushDenormals ftz;
    const int32_t n = job.n;
    const bool draft = job.start == 0 && job.end < n_layer_;
    const bool verify = job.start > 0;
    SeqState & S = *seqs_[job.seq];

    use_layer_range(job.start, job.end);
    if (draft) use_exit_layer(job.end);

    llama_batch & b = verify ? embd_batch_ : tok_batch_;
    b.n_tokens = n;
    for (int32_t i = 0; i < n; ++i) {
        if (!verify) b.token[i] = job.tokens[i];
        b.pos[i] = job.pos0 + i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = job.seq;
        b.logits[i] = job.outputs == 1 || (job.outputs == 0 && i == n - 1);
    }
    if (verify) {
        const float * src = job.use_cached_hidden ? S.hidden_cache.data() : job.hidden.data();
        std::memcpy(b.embd, src, (size_t)n * n_embd_ * sizeof(float));
    }

    // the final residual (before the norm) is extracted only for this call: every toggle costs a
    // scheduler reserve, and it is valid only when every token is an output
    const bool final_hidden = job.want_hidden && job.end == n_layer_;
    if (final_hidden) llama_set_embeddings_layer_inp(ctx_, n_layer_, true);
    take_last_llama_error();
    const int32_t ret = decode_checked(b);
    if (final_hidden) {
        if (ret == 0) {
            const float * h = llama_get_embeddings_layer_inp(ctx_, n_layer_);
            job.hidden_out.assign(h, h + (size_t)n * n_embd_);
        }
        llama_set_embeddings_layer_inp(ctx_, n_layer_, false);
    }
    if (ret != 0) {
        std::string why = take_last_llama_error();
        // a failed decode leaves no cells for this batch (the KV cache restores them), except for
        // an aborted compute; positions past S.n_past are dropped either way
        llama_memory_seq_rm(llama_get_memory(ctx_), job.seq, verify ? S.n_past.load() : job.pos0, -1);
        throw_decode_failure(ret, why);
    }

    // outputs, in batch order; a non-finite row rolls this call back (the KV cells it wrote are dropped)
    try {
    for (int32_t i = 0; i < n; ++i) {
        if (!b.logits[i]) continue;
        const float * row = llama_get_logits_ith(ctx_, i);
        if (!row) throw std::runtime_error("no logits for output " + std::to_string(i));
        float max_prob = 0;
        job.argmax.push_back(row_best(row, draft, job.want_probs ? &max_prob : nullptr));
        if (job.want_probs) job.max_prob.push_back(max_prob);
        if (job.want_logits) {
            if (draft && !draft_vocab_.empty()) expand_draft_row(row, job.logits);
            else job.logits.insert(job.logits.end(), row, row + n_vocab_);
        }
    }
    } catch (...) {
        // a verification leaves its drafts pending (a retry overwrites the same cells)
        if (!verify || job.split) llama_memory_seq_rm(llama_get_memory(ctx_), job.seq, job.pos0, -1);
        throw;
    }

    if (draft) {
        const float * h = llama_get_embeddings_layer_inp(ctx_, job.end);
        if (S.n_full == S.n_past) S.hidden_cache.clear();
        S.hidden_cache.insert(S.hidden_cache.end(), h, h + (size_t)n * n_embd_);
        if (job.want_hidden) job.hidden_out.assign(h, h + (size_t)n * n_embd_);
        S.draft_layer = job.end;
        S.n_past = job.pos0 + n;
    } else if (job.split) {
        if (S.split_from < 0) {
            S.split_from = job.pos0;
            S.split_layer = job.start;
        }
        S.n_past = S.n_full = job.pos0 + n;
    } else if (verify) {
        S.n_full = job.pos0 + n;
        S.hidden_cache.erase(S.hidden_cache.begin(), S.hidden_cache.begin() + (size_t)n * n_embd_);
        if (S.n_full == S.n_past) S.draft_layer = 0;
    } else {
        S.n_past = S.n_full = job.pos0 + n;
    }
}

void Context::use_layer_range(int32_t start, int32_t end) {
    if (start == range_start_ && end == range_end_) return;
    if (llama_set_layer_range(ctx_, start, end == n_layer_ ? 0 : end) != 0) {
        throw std::runtime_error("layer ranges are not supported for this model: " + take_last_llama_error());
    }
    range_start_ = start;
    range_end_ = end;
}

// the draft's exit layer input is extracted by llama.cpp (one reserve when it changes)
void Context::use_exit_layer(int32_t layer) {
    if (hidden_layer_enabled_ == layer) return;
    if (hidden_layer_enabled_ >= 0) llama_set_embeddings_layer_inp(ctx_, hidden_layer_enabled_, false);
    llama_set_embeddings_layer_inp(ctx_, layer, true);
    hidden_layer_enabled_ = layer;
}

int32_t Context::row_best(const float * row, bool draft, float * max_prob) const {
    const bool narrow = draft && !draft_vocab_.empty();
    const int32_t width = narrow ? (int32_t)draft_vocab_.size() : n_vocab_;
    int32_t best = 0;
    float mx = row[0];
    double total = row[0];  // NaN or Inf anywhere in the row makes it non-finite
    for (int32_t t = 1; t < width; ++t) {
        total += row[t];
        if (row[t] > mx) { mx = row[t]; best = t; }
    }
    if (!std::isfinite(total)) {
        throw std::runtime_error("the model produced non-finite logits (NaN or Inf): its weights or hyper-parameters are likely corrupt");
    }
    if (max_prob) {
        double sum = 0;
        for (int32_t t = 0; t < width; ++t) sum += std::exp((double)row[t] - mx);
        *max_prob = (float)(1.0 / sum);
    }
    return narrow ? draft_vocab_[best] : best;
}

void Context::expand_draft_row(const float * row, std::vector<float> & out) const {
    const size_t at = out.size();
    out.resize(at + n_vocab_, -INFINITY);
    for (size_t j = 0; j < draft_vocab_.size(); ++j) out[at + draft_vocab_[j]] = row[j];
}

// verifyMany({ layer, entries: [{ sequence, count?, logits? }] }) => Promise<{ results: [{ argmax, logits? }], nativeMs }>
// Verification of several sequences' pending drafts in one batch: layers [layer, N) from each
// sequence's cached layer-`layer` hidden states, into the KV cells its drafts wrote; every row an output.
Napi::Value Context::verify_many(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_usable(env, "verifyMany");
    if (info.Length() < 1 || !info[0].IsObject()) throw_type(env, "verifyMany: { layer, entries } expected");
    Napi::Object o = info[0].As<Napi::Object>();
    auto job = std::make_shared<VerifyJob>();
    job->layer = get_int(env, o, "layer", -1, 1, n_layer_ - 1);
    if (!o.Get("entries").IsArray()) throw_type(env, "verifyMany: entries must be an array");
    Napi::Array list = o.Get("entries").As<Napi::Array>();
    int32_t total = 0;
    each_entry(env, list, "verifyMany", n_seq_, [&](const Napi::Object & e) {
        VerifyJob::Entry v;
        v.seq = seq_arg(env, e);
        const SeqState & S = *seqs_[v.seq];
        if (S.n_full >= S.n_past || S.draft_layer != job->layer) {
            throw_error(env, "verifyMany: sequence " + std::to_string(v.seq) + " has no early-exit drafts at layer " + std::to_string(job->layer), codes::NO_DRAFT);
        }
        v.pos0 = S.n_full;
        v.n = get_int(env, e, "count", S.n_past - S.n_full, 1, S.n_past - S.n_full);
        v.want_logits = get_bool(e, "logits", false);
        total += v.n;
        job->entries.push_back(std::move(v));
        return job->entries.back().seq;
    });
    if (job->entries.empty()) throw_range(env, "verifyMany: nothing to verify");
    if (total > n_batch_) throw_range(env, "verifyMany: " + std::to_string(total) + " rows exceed the batch size " + std::to_string(n_batch_));
    return run_busy(env,
        [this, job]() { job->native_ms = timed_ms([&] { run_verify_many(*job); }); },
        [job](Napi::Env env) -> Napi::Value { return batch_result(env, *job); });
}

void Context::run_verify_many(VerifyJob & job) {
    FlushDenormals ftz;
    use_layer_range(job.layer, n_layer_);
    llama_batch & b = embd_batch_;
    int32_t n = 0;
    for (const auto & e : job.entries) {
        const SeqState & S = *seqs_[e.seq];
        std::memcpy(b.embd + (size_t)n * n_embd_, S.hidden_cache.data(), (size_t)e.n * n_embd_ * sizeof(float));
        for (int32_t i = 0; i < e.n; ++i, ++n) {
            b.pos[n] = e.pos0 + i;
            b.n_seq_id[n] = 1;
            b.seq_id[n][0] = e.seq;
            b.logits[n] = true;
        }
    }
    b.n_tokens = n;
    take_last_llama_error();
    const int32_t ret = decode_checked(b);
    if (ret != 0) {
        // the drafts stay pending (a retry overwrites the same cells); positions past them are dropped
        std::string why = take_last_llama_error();
        for (const auto & e : job.entries) llama_memory_seq_rm(llama_get_memory(ctx_), e.seq, seqs_[e.seq]->n_past, -1);
        throw_decode_failure(ret, why);
    }
    int32_t at = 0;
    for (auto & e : job.entries) {
        for (int32_t i = 0; i < e.n; ++i, ++at) {
            const float * row = llama_get_logits_ith(ctx_, at);
            if (!row) throw std::runtime_error("no logits for output " + std::to_string(at));
            e.argmax.push_back(row_best(row, false, nullptr));
            if (e.want_logits) e.logits.insert(e.logits.end(), row, row + n_vocab_);
        }
    }
    for (const auto & e : job.entries) {
        SeqState & S = *seqs_[e.seq];
        S.n_full = e.pos0 + e.n;
        S.hidden_cache.erase(S.hidden_cache.begin(), S.hidden_cache.begin() + (size_t)e.n * n_embd_);
        if (S.n_full == S.n_past) S.draft_layer = 0;
    }
}

// one draft call's options (the object draft() takes; draftMany takes an array of them)
std::shared_ptr<Context::DraftJob> Context::parse_draft(Napi::Env env, const Napi::Object & o) {
    auto job = std::make_shared<DraftJob>();
    job->seq = seq_arg(env, o);
    const SeqState & S = *seqs_[job->seq];
    const bool has_prefix = o.Has("prefix") && !o.Get("prefix").IsUndefined();
    for (const char * key : {"token", "layer", "maxTokens"}) {
        if (has_prefix && std::string(key) == "token") continue;  // a prefix may continue drafts already decoded
        if (!o.Has(key) || o.Get(key).IsUndefined()) throw_type(env, std::string("draft: ") + key + " is required");
    }
    job->token = get_int(env, o, "token", -1, 0, n_vocab_ - 1);
    job->layer = get_int(env, o, "layer", -1, 1, n_layer_ - 1);
    job->max_tokens = get_int(env, o, "maxTokens", -1, has_prefix ? 0 : 1, n_batch_);
    if (o.Has("minProbability") && !o.Get("minProbability").IsUndefined()) {
        if (!o.Get("minProbability").IsNumber()) throw_type(env, "draft: minProbability must be a number");
        job->min_prob = o.Get("minProbability").As<Napi::Number>().FloatValue();
        if (!(job->min_prob >= 0 && job->min_prob <= 1)) throw_range(env, "draft: minProbability must be in [0, 1]");
    }
    job->finish = get_bool(o, "finish", false);
    job->want_hidden = get_bool(o, "returnHidden", false);
    if (o.Has("prefix") && !o.Get("prefix").IsUndefined()) {
        Napi::Value pv = o.Get("prefix");
        if (!pv.IsTypedArray() || pv.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) throw_type(env, "draft: prefix must be an Int32Array");
        auto pa = pv.As<Napi::Int32Array>();
        job->prefix.assign(pa.Data(), pa.Data() + pa.ElementLength());
        if (job->prefix.empty()) throw_range(env, "draft: the prefix is empty");
        check_token_ids(env, "draft", job->prefix);
        // without `token` the prefix follows the sequence's decoded drafts at this exit layer
        if (job->token < 0 && (S.n_full == S.n_past || S.draft_layer != job->layer)) {
            throw_error(env, "draft: a prefix without a token continues pending drafts at layer " + std::to_string(job->layer) + ", and there are none",
                codes::NO_DRAFT);
        }
        if ((int32_t)job->prefix.size() + 1 > n_batch_) throw_range(env, "draft: the prefix and its token exceed the batch size");
    }
    if (o.Has("temperature") && !o.Get("temperature").IsUndefined()) {
        if (!o.Get("temperature").IsNumber()) throw_type(env, "draft: temperature must be a number");
        job->temperature = o.Get("temperature").As<Napi::Number>().DoubleValue();
        if (!(job->temperature >= 0 && std::isfinite(job->temperature))) throw_range(env, "draft: temperature must be >= 0");
    }
    if (job->temperature > 0) {
        Napi::Value uv = o.Get("uniforms");
        if (!uv.IsTypedArray() || uv.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
            throw_type(env, "draft: sampling needs uniforms (a Float64Array)");
        }
        auto ua = uv.As<Napi::Float64Array>();
        if ((int32_t)ua.ElementLength() < job->max_tokens) throw_range(env, "draft: sampling needs one uniform per draft");
        job->uniforms.assign(ua.Data(), ua.Data() + job->max_tokens);
    }
    check_draft_continues(env, "draft", S, job->layer);
    check_no_split(env, "draft", S, job->seq);
    return job;
}

static Napi::Object draft_result(Napi::Env env, const Context::DraftJob & job) {
    Napi::Object r = Napi::Object::New(env);
    r.Set("tokens", to_js(env, job.tokens));
    r.Set("maxProb", to_js(env, job.max_prob));
    if (job.temperature > 0) r.Set("logits", to_js(env, job.logits));
    r.Set("lastDecoded", job.last_decoded);
    r.Set("nativeMs", job.native_ms);
    if (job.want_hidden) r.Set("hidden", to_js(env, job.hidden));
    return r;
}

// draft({ token, layer, maxTokens, minProbability?, finish?, temperature?, uniforms?, sequence? })
// Early-exit drafting with layers [0, layer) in one call: decodes `token` at the next position,
// takes the draft's token (argmax, or a sample of softmax(logits / temperature) with the next
// uniform), feeds it back, and repeats up to maxTokens drafts. It stops early at an end-of-generation
// draft, or when a draft after the first has a top probability below minProbability (that draft is
// dropped). With `finish`, the last draft goes through layers [0, layer) too, unless it ends the
// generation, so a verification can score the position after it. Returns { tokens, maxProb,
// logits? (sampled drafts' rows, n_vocab wide), lastDecoded }.
// With `prefix` (forced drafts, e.g. from a context lookup), `token` and the prefix go through
// layers [0, layer) in one batch first and drafting continues after them (maxTokens may then be 0);
// `tokens` holds only the drafts that follow the prefix, and lastDecoded refers to the last of all
// of them. Without `token`, the prefix continues the sequence's pending drafts at `layer` whose last
// one is already decoded (a lookup continuing early-exit drafts).
Napi::Value Context::draft(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_usable(env, "draft");
    if (info.Length() < 1 || !info[0].IsObject()) throw_type(env, "draft: options object expected");
    auto job = parse_draft(env, info[0].As<Napi::Object>());
    check_room(env, "draft", job->max_tokens + (int32_t)job->prefix.size());
    return run_busy(env,
        [this, job]() { run_drafts({job}); },
        [job](Napi::Env env) -> Napi::Value { return draft_result(env, *job); });
}

// draftMany([draft options with distinct sequences and one exit layer]): the same loop for several
// sequences at once, each step one early-exit batch with the next draft of every sequence still drafting
Napi::Value Context::draft_many(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_usable(env, "draftMany");
    if (info.Length() < 1 || !info[0].IsArray()) throw_type(env, "draftMany: an array of draft options expected");
    Napi::Array list = info[0].As<Napi::Array>();
    std::vector<std::shared_ptr<DraftJob>> jobs;
    int32_t total = 0;
    each_entry(env, list, "draftMany", n_seq_, [&](const Napi::Object & o) {
        auto job = parse_draft(env, o);
        if (!job->prefix.empty()) throw_range(env, "draftMany: a prefix is for draft() alone");
        if (!jobs.empty() && job->layer != jobs[0]->layer) throw_range(env, "draftMany: every entry must draft from the same exit layer");
        total += job->max_tokens;
        jobs.push_back(job);
        return job->seq;
    });
    if (jobs.empty()) throw_range(env, "draftMany: nothing to draft");
    if ((int32_t)jobs.size() > n_batch_) throw_range(env, "draftMany: more sequences than the batch size");
    check_room(env, "draftMany", total);
    return run_busy(env,
        [this, jobs]() { run_drafts(jobs); },
        [jobs](Napi::Env env) -> Napi::Value {
            Napi::Array out = Napi::Array::New(env, jobs.size());
            for (size_t i = 0; i < jobs.size(); ++i) out.Set((uint32_t)i, draft_result(env, *jobs[i]));
            return out;
        });
}

void Context::run_drafts(const std::vector<std::shared_ptr<DraftJob>> & jobs) {
    const auto t0 = std::chrono::steady_clock::now();
    FlushDenormals ftz;
    const int32_t layer = jobs[0]->layer;
    use_layer_range(0, layer);
    use_exit_layer(layer);
    const llama_vocab * vocab = model_->vocab();
    struct Live {
        DraftJob * job;
        SeqState * S;
        int32_t feed;
        bool pending = true;  // `feed` still has to go through layers [0, layer)
        bool done = false;
        size_t cached = 0;    // the sequence's cached states before this call (returnHidden)
    };
    std::vector<Live> live;
    for (const auto & j : jobs) {
        SeqState & S = *seqs_[j->seq];
        if (S.n_full == S.n_past) S.hidden_cache.clear();
        live.push_back({j.get(), &S, j->token, true, false, S.hidden_cache.size()});
    }

    // one batch: the feed token of each listed sequence at its next position through layers
    // [0, layer); their hidden states join the sequences' caches
    auto step = [&](const std::vector<Live *> & batch, bool output) {
        llama_batch & b = tok_batch_;
        b.n_tokens = (int32_t)batch.size();
        for (size_t k = 0; k < batch.size(); ++k) {
            b.token[k] = batch[k]->feed;
            b.pos[k] = batch[k]->S->n_past;
            b.n_seq_id[k] = 1;
            b.seq_id[k][0] = batch[k]->job->seq;
            b.logits[k] = output;
        }
        take_last_llama_error();
        const int32_t ret = decode_checked(b);
        if (ret != 0) {
            std::string why = take_last_llama_error();
            for (const Live * l : batch) llama_memory_seq_rm(llama_get_memory(ctx_), l->job->seq, l->S->n_past, -1);
            throw_decode_failure(ret, why);
        }
        const float * h = llama_get_embeddings_layer_inp(ctx_, layer);
        for (size_t k = 0; k < batch.size(); ++k) {
            SeqState & S = *batch[k]->S;
            S.hidden_cache.insert(S.hidden_cache.end(), h + k * n_embd_, h + (k + 1) * n_embd_);
            S.draft_layer = layer;
            ++S.n_past;
        }
    };

    // the draft after `row` (the logits after the newest fed token) for draft number i of the job;
    // false when drafting stops without one (not confident enough)
    auto take = [&](Live & l, const float * row, int32_t i) {
        DraftJob & job = *l.job;
        l.pending = false;
        const bool want_probs = job.min_prob > 0;
        float max_prob = 0;
        int32_t tok = row_best(row, true, want_probs ? &max_prob : nullptr);
        // the first draft is always taken, unless forced drafts came before it
        if (want_probs && (i > 0 || !job.prefix.empty()) && max_prob < job.min_prob) {  // not confident: verify what we have
            l.done = true;
            return;
        }
        if (job.temperature > 0) {
            // q = softmax(logits / T) over the draft's vocabulary, computed as the TypeScript
            // sampler computes it (distribution(): exp((l - max) * (1 / T))); the verification
            // accepts with min(1, p/q) against exactly this q (the rows go back to JavaScript)
            const int32_t width = draft_vocab_.empty() ? n_vocab_ : (int32_t)draft_vocab_.size();
            const double inv_t = 1.0 / job.temperature;
            double mx = row[0];
            for (int32_t j = 1; j < width; ++j) mx = std::max(mx, (double)row[j]);
            weights_.resize(width);
            double sum = 0;
            for (int32_t j = 0; j < width; ++j) sum += (weights_[j] = std::exp(((double)row[j] - mx) * inv_t));
            const double target = job.uniforms[i] * sum;
            double acc = 0;
            int32_t pick = -1, last_nonzero = 0;
            for (int32_t j = 0; j < width && pick < 0; ++j) {
                if (weights_[j] <= 0) continue;
                last_nonzero = j;
                acc += weights_[j];
                if (acc > target) pick = j;
            }
            if (pick < 0) pick = last_nonzero;  // rounding at the top end
            tok = draft_vocab_.empty() ? pick : draft_vocab_[pick];
            if (!draft_vocab_.empty()) expand_draft_row(row, job.logits);
            else job.logits.insert(job.logits.end(), row, row + n_vocab_);
        }
        job.tokens.push_back(tok);
        job.max_prob.push_back(max_prob);
        l.feed = tok;
        l.pending = true;
        if (llama_vocab_is_eog(vocab, tok)) l.done = true;  // drafting further is wasted
    };

    // forced drafts (draft() alone): `token` and the prefix through layers [0, layer) in one batch,
    // whose last row gives the first drafted token
    int32_t first = 0;
    if (jobs.size() == 1 && !jobs[0]->prefix.empty()) {
        Live & l = live[0];
        SeqState & S = *l.S;
        const std::vector<int32_t> & pre = l.job->prefix;
        const int32_t lead = l.feed >= 0 ? 1 : 0;  // `token`, when given, goes first
        llama_batch & b = tok_batch_;
        b.n_tokens = (int32_t)pre.size() + lead;
        for (int32_t k = 0; k < b.n_tokens; ++k) {
            b.token[k] = k < lead ? l.feed : pre[k - lead];
            b.pos[k] = S.n_past + k;
            b.n_seq_id[k] = 1;
            b.seq_id[k][0] = l.job->seq;
            b.logits[k] = k == b.n_tokens - 1;
        }
        take_last_llama_error();
        const int32_t ret = decode_checked(b);
        if (ret != 0) {
            std::string why = take_last_llama_error();
            llama_memory_seq_rm(llama_get_memory(ctx_), l.job->seq, S.n_past, -1);
            throw_decode_failure(ret, why);
        }
        const float * row = llama_get_logits_ith(ctx_, b.n_tokens - 1);
        if (!row) throw std::runtime_error("no logits for the draft");
        const float * h = llama_get_embeddings_layer_inp(ctx_, layer);
        S.hidden_cache.insert(S.hidden_cache.end(), h, h + (size_t)b.n_tokens * n_embd_);
        S.draft_layer = layer;
        S.n_past += b.n_tokens;
        l.feed = pre.back();
        if (llama_vocab_is_eog(vocab, l.feed) || l.job->max_tokens == 0) {
            l.pending = false;
            l.done = true;
        } else {
            take(l, row, 0);
        }
        first = 1;
    }

    std::vector<Live *> batch;  // reused by every step
    for (int32_t i = first;; ++i) {
        batch.clear();
        for (Live & l : live) {
            if (!l.done && i >= l.job->max_tokens) l.done = true;
            if (!l.done) batch.push_back(&l);
        }
        if (batch.empty() || cells_used() + (int32_t)batch.size() > n_ctx_) break;
        step(batch, true);
        for (size_t k = 0; k < batch.size(); ++k) {
            const float * row = llama_get_logits_ith(ctx_, (int32_t)k);
            if (!row) throw std::runtime_error("no logits for the draft");
            take(*batch[k], row, i);
        }
    }
    std::vector<Live *> finish;
    for (Live & l : live) {
        if (l.job->finish && l.pending && !l.job->tokens.empty() && !llama_vocab_is_eog(vocab, l.feed)) finish.push_back(&l);
    }
    if (!finish.empty() && cells_used() + (int32_t)finish.size() <= n_ctx_) {
        step(finish, false);
        for (Live * l : finish) l->pending = false;
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    for (Live & l : live) {
        l.job->last_decoded = !l.pending;
        l.job->native_ms = ms;
        if (l.job->want_hidden) l.job->hidden.assign(l.S->hidden_cache.begin() + l.cached, l.S->hidden_cache.end());
    }
}

// setDraftHead({ adapter?: Float32Array (n_embd x n_embd, row-major), adapterType?: number (ggml type
//                it is stored as: F32, F16 (default) or Q8_0), bias?: Float32Array (n_embd),
//                tokenIds?: Int32Array, rows?: Uint8Array (those tokens' LM-head rows), rowType?: number })
// Installs (or with no parts, removes) the early exit's draft head; see llama_set_exit_head.
Napi::Value Context::set_draft_head(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_usable(env, "setDraftHead");
    if (info.Length() < 1 || !info[0].IsObject()) throw_type(env, "setDraftHead: options object expected");
    Napi::Object o = info[0].As<Napi::Object>();
    struct HeadJob {
        std::vector<float> adapter, bias;
        std::vector<int32_t> ids;
        std::vector<uint8_t> rows;
        int32_t type = -1;
        int32_t adapter_type = GGML_TYPE_F16;
    };
    auto job = std::make_shared<HeadJob>();
    auto floats = [&](const char * key, size_t n, std::vector<float> & out) {
        Napi::Value v = o.Get(key);
        if (v.IsUndefined() || v.IsNull()) return;
        if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
            throw_type(env, std::string("setDraftHead: ") + key + " must be a Float32Array");
        }
        auto a = v.As<Napi::Float32Array>();
        if (a.ElementLength() != n) {
            throw_range(env, std::string("setDraftHead: ") + key + " has " + std::to_string(a.ElementLength()) + " values, expected " + std::to_string(n));
        }
        out.assign(a.Data(), a.Data() + n);
    };
    floats("adapter", (size_t)n_embd_ * n_embd_, job->adapter);
    floats("bias", (size_t)n_embd_, job->bias);
    job->adapter_type = get_int(env, o, "adapterType", GGML_TYPE_F16, 0, GGML_TYPE_COUNT - 1);
    Napi::Value iv = o.Get("tokenIds");
    if (!iv.IsUndefined() && !iv.IsNull()) {
        if (!iv.IsTypedArray() || iv.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) throw_type(env, "setDraftHead: tokenIds must be an Int32Array");
        auto ia = iv.As<Napi::Int32Array>();
        if (ia.ElementLength() == 0) throw_range(env, "setDraftHead: the draft vocabulary is empty");
        job->ids.assign(ia.Data(), ia.Data() + ia.ElementLength());
        for (int32_t t : job->ids) {
            if (t < 0 || t >= n_vocab_) throw_range(env, "setDraftHead: token id " + std::to_string(t) + " is outside the vocabulary [0, " + std::to_string(n_vocab_) + ")");
        }
        job->type = get_int(env, o, "rowType", -1, 0, GGML_TYPE_COUNT - 1);
        Napi::Value rv = o.Get("rows");
        if (!rv.IsTypedArray() || rv.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) throw_type(env, "setDraftHead: rows must be a Uint8Array");
        auto ra = rv.As<Napi::Uint8Array>();
        const size_t want = job->ids.size() * ggml_row_size((ggml_type)job->type, n_embd_);
        if (ggml_blck_size((ggml_type)job->type) <= 0 || ra.ElementLength() != want) {
            throw_range(env, "setDraftHead: rows has " + std::to_string(ra.ElementLength()) + " bytes, expected " + std::to_string(want) +
                " (" + std::to_string(job->ids.size()) + " rows of type " + ggml_type_name((ggml_type)job->type) + ")");
        }
        job->rows.assign(ra.Data(), ra.Data() + ra.ElementLength());
    }

    return run_busy(env,
        [this, job]() {
            take_last_llama_error();
            const int32_t ret = llama_set_exit_head(ctx_, job->adapter.empty() ? nullptr : job->adapter.data(),
                job->bias.empty() ? nullptr : job->bias.data(), (ggml_type)job->adapter_type, job->rows.empty() ? nullptr : job->rows.data(),
                (int32_t)job->ids.size(), job->type < 0 ? GGML_TYPE_F32 : (ggml_type)job->type);
            if (ret != 0) {
                draft_vocab_.clear();
                throw std::runtime_error("failed to install the draft head: " + take_last_llama_error());
            }
            draft_vocab_ = job->ids;
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
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
    const int32_t pos = (int32_t)std::min<double>(p, S.n_past);
    if (pos < S.n_past) {
        llama_memory_seq_rm(llama_get_memory(ctx_), seq, pos, -1);
        if (pos < S.n_full) {
            S.n_full = pos;
            S.hidden_cache.clear();
        } else {
            S.hidden_cache.resize((size_t)(pos - S.n_full) * n_embd_);
        }
        S.n_past = pos;
        if (S.n_full == S.n_past) S.draft_layer = 0;
        if (pos <= S.split_from) S.split_from = -1;
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
    const int32_t pos = (int32_t)std::min<double>(p, S.n_past);
    if (pos > S.n_full) {
        S.hidden_cache.erase(S.hidden_cache.begin(), S.hidden_cache.begin() + (size_t)(pos - S.n_full) * n_embd_);
        S.n_full = pos;
        if (S.n_full == S.n_past) S.draft_layer = 0;
    }
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
        SeqState & S = *seqs_[i];
        S.n_past = S.n_full = S.draft_layer = 0;
        S.split_from = -1;
        S.hidden_cache.clear();
    }
    return env.Undefined();
}

Napi::Value Context::set_threads(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_usable(env, "setThreads");
    if (info.Length() < 1 || !info[0].IsNumber()) throw_type(env, "setThreads: threads must be a number");
    int32_t t = info[0].As<Napi::Number>().Int32Value();
    int32_t tb = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : t;
    if (t < 1 || tb < 1 || t > 1024 || tb > 1024) throw_range(env, "setThreads: thread counts must be in [1, 1024]");
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
    o.Set("nextPosition", S.n_past.load());
    o.Set("verifiedPosition", S.n_full.load());
    o.Set("draftLayer", S.draft_layer.load());
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
