#include "context.h"

#include "addon.h"
#include "common.h"
#include "llama-ext.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

namespace layerskip {

// Denormal floats are flushed to zero while llama.cpp computes: x86 handles them in microcode,
// and synthetic or heavily scaled weights produced enough of them to run 2.7x slower. MXCSR is
// per thread and inherited by threads created under it: set around decodes (on the libuv worker)
// and around creating the ggml thread pool, then restored, so JavaScript's own math is untouched.
#if defined(__x86_64__) || defined(_M_X64)
struct FlushDenormals {
    unsigned int saved = _mm_getcsr();
    FlushDenormals() { _mm_setcsr(saved | 0x8040); }  // FTZ | DAZ
    ~FlushDenormals() { _mm_setcsr(saved); }
};
#else
struct FlushDenormals {};
#endif

struct Context::DecodeJob {
    // inputs
    std::vector<int32_t> tokens;   // start == 0
    std::vector<float> hidden;     // start > 0 with explicit hidden states
    bool use_cached_hidden = false;
    int32_t pos0 = 0, n = 0, start = 0, end = 0;
    int outputs = 0;  // 0 last, 1 all, 2 none
    bool want_logits = false, want_probs = false, want_hidden = false;
    // outputs
    std::vector<int32_t> argmax;
    std::vector<float> max_prob;
    std::vector<float> logits;
    std::vector<float> hidden_out;
};

Napi::Function Context::define(Napi::Env env) {
    return DefineClass(env, "NativeContext", {
        InstanceMethod<&Context::decode>("decode"),
        InstanceMethod<&Context::remove_from>("removeFrom"),
        InstanceMethod<&Context::clear>("clear"),
        InstanceMethod<&Context::set_threads>("setThreads"),
        InstanceMethod<&Context::state>("state"),
        InstanceMethod<&Context::dispose>("dispose"),
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
    range_end_ = n_layer_;
    attach_threads(llama_n_threads(ctx_), llama_n_threads_batch(ctx_));
    tok_batch_ = llama_batch_init(n_batch_, 0, 1);
    embd_batch_ = llama_batch_init(n_batch_, n_embd_, 1);
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
    params.n_seq_max = 1;
    params.n_threads = get_int(env, opts, "threads", 1, 1, 1024);
    params.n_threads_batch = get_int(env, opts, "batchThreads", params.n_threads, 1, 1024);
    params.no_perf = true;
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
            return data->context_ctor.New({model_ref->Value(), Napi::External<llama_context>::New(env, *result)});
        },
        [model]() { model->release(); });
}

void Context::check_usable(Napi::Env env, const char * what) const {
    if (disposed_ || !ctx_) throw_error(env, std::string(what) + ": the context is disposed", "ERR_DISPOSED");
    if (busy_.load()) throw_error(env, std::string(what) + ": the context is busy with another operation", "ERR_BUSY");
}

// decode({ tokens?: Int32Array, hidden?: Float32Array, position?: number, layers?: [start, end],
//          outputs?: 'last' | 'all' | 'none', logits?: boolean, probs?: boolean, hidden?: boolean })
Napi::Value Context::decode(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_usable(env, "decode");
    if (info.Length() < 1 || !info[0].IsObject()) throw_type(env, "decode: options object expected");
    Napi::Object o = info[0].As<Napi::Object>();
    auto job = std::make_shared<DecodeJob>();

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

    std::string outputs = o.Has("outputs") && o.Get("outputs").IsString() ? o.Get("outputs").As<Napi::String>().Utf8Value() : "last";
    if (outputs == "last") job->outputs = 0;
    else if (outputs == "all") job->outputs = 1;
    else if (outputs == "none") job->outputs = 2;
    else throw_range(env, "decode: outputs must be 'last', 'all' or 'none'");
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
        for (int32_t i = 0; i < job->n; ++i) {
            if (job->tokens[i] < 0 || job->tokens[i] >= n_vocab_) {
                throw_range(env, "decode: token " + std::to_string(job->tokens[i]) + " at index " + std::to_string(i) +
                    " is outside the vocabulary [0, " + std::to_string(n_vocab_) + ")");
            }
        }
        if (o.Has("hidden") && !o.Get("hidden").IsUndefined()) throw_type(env, "decode: hidden states are input only for a range that starts above 0");
        job->pos0 = get_int(env, o, "position", n_past_, 0, INT32_MAX - 1);
        if (job->pos0 != n_past_) {
            throw_range(env, "decode: position " + std::to_string(job->pos0) + " does not continue the sequence (next position is " +
                std::to_string(n_past_) + "; remove positions with removeFrom() to rewind)");
        }
        if (job->end == n_layer_ && n_full_ < n_past_) {
            throw_error(env, "decode: positions [" + std::to_string(n_full_) + ", " + std::to_string(n_past_) +
                ") hold early-exit drafts; verify them or removeFrom(" + std::to_string(n_full_) + ") before a full decode", "ERR_PENDING_DRAFT");
        }
        if (job->end < n_layer_ && n_full_ < n_past_ && draft_layer_ != job->end) {
            throw_error(env, "decode: pending drafts were made with exit layer " + std::to_string(draft_layer_) +
                ", not " + std::to_string(job->end), "ERR_PENDING_DRAFT");
        }
    } else {
        if (o.Has("tokens") && !o.Get("tokens").IsUndefined()) throw_type(env, "decode: a range that starts above 0 takes hidden states, not tokens");
        if (n_full_ >= n_past_ || draft_layer_ != job->start) {
            throw_error(env, "decode: no early-exit drafts at layer " + std::to_string(job->start) + " to verify" +
                (n_full_ < n_past_ ? " (pending drafts exit at layer " + std::to_string(draft_layer_) + ")" : ""), "ERR_NO_DRAFT");
        }
        job->pos0 = get_int(env, o, "position", n_full_, 0, INT32_MAX - 1);
        if (job->pos0 != n_full_) {
            throw_range(env, "decode: verification must start at position " + std::to_string(n_full_) +
                " (the first unverified draft), got " + std::to_string(job->pos0));
        }
        Napi::Value hv = o.Get("hidden");
        if (hv.IsUndefined() || hv.IsNull()) {
            job->use_cached_hidden = true;
            job->n = get_int(env, o, "count", n_past_ - n_full_, 1, n_past_ - n_full_);
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
        if (job->pos0 + job->n > n_past_) {
            throw_range(env, "decode: positions [" + std::to_string(job->pos0) + ", " + std::to_string(job->pos0 + job->n) +
                ") have no early-layer KV (drafts end at " + std::to_string(n_past_) + ")");
        }
    }
    if (job->n <= 0) throw_range(env, "decode: nothing to decode");
    if (job->n > n_batch_) {
        throw_range(env, "decode: " + std::to_string(job->n) + " tokens exceed the batch size " + std::to_string(n_batch_));
    }
    if (job->start == 0 && job->pos0 + job->n > n_ctx_) {
        throw_error(env, "decode: the context is full (" + std::to_string(n_ctx_) + " tokens; " + std::to_string(n_past_) +
            " used, " + std::to_string(job->n) + " more requested)", "ERR_CONTEXT_FULL");
    }

    busy_ = true;
    // keep this object alive while the worker uses it, even if JavaScript drops it
    auto self = std::make_shared<Napi::ObjectReference>(Napi::Persistent(Value()));
    return PromiseWorker::run(env,
        [this, job]() { run_decode(*job); },
        [job](Napi::Env env) -> Napi::Value {
            Napi::Object r = Napi::Object::New(env);
            const size_t n_out = job->argmax.size();
            auto am = Napi::Int32Array::New(env, n_out);
            std::memcpy(am.Data(), job->argmax.data(), n_out * sizeof(int32_t));
            r.Set("argmax", am);
            if (job->want_probs) {
                auto mp = Napi::Float32Array::New(env, n_out);
                std::memcpy(mp.Data(), job->max_prob.data(), n_out * sizeof(float));
                r.Set("maxProb", mp);
            }
            if (job->want_logits) {
                auto lg = Napi::Float32Array::New(env, job->logits.size());
                std::memcpy(lg.Data(), job->logits.data(), job->logits.size() * sizeof(float));
                r.Set("logits", lg);
            }
            if (job->want_hidden) {
                auto hd = Napi::Float32Array::New(env, job->hidden_out.size());
                std::memcpy(hd.Data(), job->hidden_out.data(), job->hidden_out.size() * sizeof(float));
                r.Set("hidden", hd);
            }
            return r;
        },
        [this, self]() {
            busy_ = false;
            if (disposed_) free_now();
        });
}

void Context::run_decode(DecodeJob & job) {
    FlushDenormals ftz;
    const int32_t n = job.n;
    const bool draft = job.start == 0 && job.end < n_layer_;
    const bool verify = job.start > 0;

    if (job.start != range_start_ || job.end != range_end_) {
        if (llama_set_layer_range(ctx_, job.start, job.end == n_layer_ ? 0 : job.end) != 0) {
            throw std::runtime_error("layer ranges are not supported for this model: " + take_last_llama_error());
        }
        range_start_ = job.start;
        range_end_ = job.end;
    }
    // the draft's exit layer input is extracted by llama.cpp (one reserve when it changes)
    if (draft && hidden_layer_enabled_ != job.end) {
        if (hidden_layer_enabled_ >= 0) llama_set_embeddings_layer_inp(ctx_, hidden_layer_enabled_, false);
        llama_set_embeddings_layer_inp(ctx_, job.end, true);
        hidden_layer_enabled_ = job.end;
    }

    llama_batch & b = verify ? embd_batch_ : tok_batch_;
    b.n_tokens = n;
    for (int32_t i = 0; i < n; ++i) {
        if (!verify) b.token[i] = job.tokens[i];
        b.pos[i] = job.pos0 + i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = job.outputs == 1 || (job.outputs == 0 && i == n - 1);
    }
    if (verify) {
        const float * src = job.use_cached_hidden ? hidden_cache_.data() : job.hidden.data();
        std::memcpy(b.embd, src, (size_t)n * n_embd_ * sizeof(float));
    }

    // the final residual (before the norm) is extracted only for this call: every toggle costs a
    // scheduler reserve, and it is valid only when every token is an output
    const bool final_hidden = job.want_hidden && job.end == n_layer_;
    if (final_hidden) llama_set_embeddings_layer_inp(ctx_, n_layer_, true);
    take_last_llama_error();
    const int32_t ret = llama_decode(ctx_, b);
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
        // an aborted compute; positions past n_past_ are dropped either way
        llama_memory_seq_rm(llama_get_memory(ctx_), 0, verify ? n_past_ : job.pos0, -1);
        throw std::runtime_error("llama_decode failed (" + std::to_string(ret) + ")" + (why.empty() ? "" : ": " + why));
    }

    // outputs, in batch order
    for (int32_t i = 0; i < n; ++i) {
        if (!b.logits[i]) continue;
        const float * row = llama_get_logits_ith(ctx_, i);
        if (!row) throw std::runtime_error("no logits for output " + std::to_string(i));
        int32_t best = 0;
        float mx = row[0];
        for (int32_t t = 1; t < n_vocab_; ++t) {
            if (row[t] > mx) { mx = row[t]; best = t; }
        }
        job.argmax.push_back(best);
        if (job.want_probs) {
            double sum = 0;
            for (int32_t t = 0; t < n_vocab_; ++t) sum += std::exp((double)row[t] - mx);
            job.max_prob.push_back((float)(1.0 / sum));
        }
        if (job.want_logits) job.logits.insert(job.logits.end(), row, row + n_vocab_);
    }

    if (draft) {
        const float * h = llama_get_embeddings_layer_inp(ctx_, job.end);
        if (n_full_ == n_past_) hidden_cache_.clear();
        hidden_cache_.insert(hidden_cache_.end(), h, h + (size_t)n * n_embd_);
        if (job.want_hidden) job.hidden_out.assign(h, h + (size_t)n * n_embd_);
        draft_layer_ = job.end;
        n_past_ = job.pos0 + n;
    } else if (verify) {
        n_full_ = job.pos0 + n;
        hidden_cache_.erase(hidden_cache_.begin(), hidden_cache_.begin() + (size_t)n * n_embd_);
        if (n_full_ == n_past_) draft_layer_ = 0;
    } else {
        n_past_ = n_full_ = job.pos0 + n;
    }
}

Napi::Value Context::remove_from(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_usable(env, "removeFrom");
    if (info.Length() < 1 || !info[0].IsNumber()) throw_type(env, "removeFrom: position must be a number");
    double p = info[0].As<Napi::Number>().DoubleValue();
    if (p != std::floor(p) || p < 0) throw_range(env, "removeFrom: position must be a non-negative integer");
    const int32_t pos = (int32_t)std::min<double>(p, n_past_);
    if (pos < n_past_) {
        llama_memory_seq_rm(llama_get_memory(ctx_), 0, pos, -1);
        if (pos < n_full_) {
            n_full_ = pos;
            hidden_cache_.clear();
        } else {
            hidden_cache_.resize((size_t)(pos - n_full_) * n_embd_);
        }
        n_past_ = pos;
        if (n_full_ == n_past_) draft_layer_ = 0;
    }
    return env.Undefined();
}

Napi::Value Context::clear(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_usable(env, "clear");
    llama_memory_clear(llama_get_memory(ctx_), true);
    n_past_ = n_full_ = draft_layer_ = 0;
    hidden_cache_.clear();
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

Napi::Value Context::state(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("contextSize", n_ctx_);
    o.Set("batchSize", n_batch_);
    o.Set("nextPosition", n_past_);
    o.Set("verifiedPosition", n_full_);
    o.Set("draftLayer", draft_layer_);
    o.Set("busy", busy_.load());
    o.Set("disposed", disposed_);
    return o;
}

Napi::Value Context::dispose(const Napi::CallbackInfo & info) {
    if (!disposed_) {
        disposed_ = true;
        if (!busy_.load()) free_now();  // else freed when the running operation settles
    }
    return info.Env().Undefined();
}

}  // namespace layerskip
