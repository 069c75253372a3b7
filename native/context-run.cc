// decodeRun: several plain greedy steps in one call. A one-token decode of a small model takes
// about as long as the hand-off between the JavaScript thread and the libuv pool (~50 us), so plain
// decoding that pays it per token runs at half of native speed on stories260K. The loop here pays
// it once per run; the caller sizes runs so that streaming and abort stay prompt, and keeps stop
// strings, token limits and the prompt cache in TypeScript (it removes what it does not keep).
#include "context-jobs.h"
#include "context.h"
#include "error-codes.h"

#include "common.h"

#include <algorithm>
#include <chrono>

namespace layerskip {

struct Context::RunJob {
    int32_t seq = 0, token = 0, max_tokens = 0;
    std::vector<int32_t> stop_tokens;  // end the run after producing one (as after an end-of-generation token)
    std::vector<int32_t> tokens;       // produced: each but the last is also decoded
    // repeat: end the run after producing a token whose n-gram (with the n - 1 tokens before it) is
    // marked in `filter` (a bit per hashed n-gram of the context, lib/decoding/ngram-filter.ts) or
    // occurred earlier in the run: there the caller's context lookup has a draft
    int32_t repeat_n = 0;              // 0: no repeat check
    std::vector<uint8_t> filter;       // copied: the run reads it off the JavaScript thread
    uint32_t filter_shift = 0;         // 32 - log2(bits)
    std::vector<int32_t> window;       // the n - 1 tokens before the next produced one
    bool repeat = false;
    double native_ms = 0;
    double first_step_ms = 0;          // after a decode of another shape it may build its graph again
};

// The n-gram hash lib/decoding/ngram-filter.ts computes (FNV-1a over 32-bit tokens, then a
// multiplicative mix whose top bits index the filter); the two must agree bit for bit.
static uint32_t ngram_hash(const int32_t * t, int32_t n) {
    uint32_t h = 2166136261u;
    for (int32_t i = 0; i < n; ++i) h = (h ^ static_cast<uint32_t>(t[i])) * 16777619u;
    return h * 2654435761u;
}

// decodeRun({ token, maxTokens, stopTokens?: Int32Array, repeat?: { filter: Uint8Array, n, history: Int32Array }, sequence? })
//   => Promise<{ tokens, nativeMs, firstStepMs, repeat }>
// Decodes `token` at the sequence's next position with all layers, takes the argmax as the next
// token, feeds it back, and repeats: up to maxTokens tokens, ending early after an end-of-generation
// or stop token, or when the context is full. The last produced token is not decoded (as after a
// plain step): positions [next, next + tokens.length) hold `token` and tokens[0 .. length-1).
Napi::Value Context::decode_run(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_usable(env, "decodeRun");
    if (info.Length() < 1 || !info[0].IsObject()) throw_type(env, "decodeRun: options object expected");
    Napi::Object o = info[0].As<Napi::Object>();
    auto job = std::make_shared<RunJob>();
    job->seq = seq_arg(env, o);
    const SeqState & S = *seqs_[job->seq];
    for (const char * key : {"token", "maxTokens"}) {
        if (!o.Has(key) || o.Get(key).IsUndefined()) throw_type(env, std::string("decodeRun: ") + key + " is required");
    }
    job->token = get_int(env, o, "token", -1, 0, n_vocab_ - 1);
    job->max_tokens = get_int(env, o, "maxTokens", -1, 1, n_ctx_);
    if (o.Has("stopTokens") && !o.Get("stopTokens").IsUndefined()) {
        Napi::Value sv = o.Get("stopTokens");
        if (!sv.IsTypedArray() || sv.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) throw_type(env, "decodeRun: stopTokens must be an Int32Array");
        auto sa = sv.As<Napi::Int32Array>();
        job->stop_tokens.assign(sa.Data(), sa.Data() + sa.ElementLength());
        std::sort(job->stop_tokens.begin(), job->stop_tokens.end());
    }
    if (o.Has("repeat") && !o.Get("repeat").IsUndefined()) {
        Napi::Value rv = o.Get("repeat");
        if (!rv.IsObject()) throw_type(env, "decodeRun: repeat must be an object");
        Napi::Object r = rv.As<Napi::Object>();
        job->repeat_n = get_int(env, r, "n", -1, 2, 64);
        Napi::Value fv = r.Get("filter");
        Napi::Value hv = r.Get("history");
        if (!fv.IsTypedArray() || fv.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) throw_type(env, "decodeRun: repeat.filter must be a Uint8Array");
        if (!hv.IsTypedArray() || hv.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) throw_type(env, "decodeRun: repeat.history must be an Int32Array");
        auto fa = fv.As<Napi::Uint8Array>();
        auto ha = hv.As<Napi::Int32Array>();
        const size_t bytes = fa.ElementLength();
        if (bytes < 8 || bytes > (size_t{1} << 26) || (bytes & (bytes - 1)) != 0) throw_range(env, "decodeRun: repeat.filter's length must be a power of two from 8 to 2^26 bytes");
        if (ha.ElementLength() != static_cast<size_t>(job->repeat_n - 1)) throw_range(env, "decodeRun: repeat.history must hold n - 1 tokens");
        job->filter.assign(fa.Data(), fa.Data() + bytes);
        uint32_t log2 = 3;
        while ((size_t{1} << log2) < bytes * 8) ++log2;
        job->filter_shift = 32 - log2;
        job->window.assign(ha.Data(), ha.Data() + ha.ElementLength());
    }
    check_no_split(env, "decodeRun", S, job->seq);
    if (S.n_full() < S.n_past()) {
        throw_error(env, "decodeRun: positions [" + std::to_string(S.n_full()) + ", " + std::to_string(S.n_past()) +
            ") hold early-exit drafts; verify them or removeFrom(" + std::to_string(S.n_full()) + ") first", codes::PENDING_DRAFT);
    }
    check_room(env, "decodeRun", 1);
    return run_busy(env,
        [this, job]() {
            const auto t0 = std::chrono::steady_clock::now();
            run_greedy(*job);
            job->native_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        },
        [job](Napi::Env env) -> Napi::Value {
            Napi::Object r = Napi::Object::New(env);
            r.Set("tokens", to_js(env, job->tokens));
            r.Set("nativeMs", job->native_ms);
            r.Set("firstStepMs", job->first_step_ms);
            r.Set("repeat", job->repeat);
            return r;
        });
}

void Context::run_greedy(RunJob & job) {
    FlushDenormals ftz;
    use_layer_range(0, n_layer_);
    SeqState & S = *seqs_[job.seq];
    const llama_vocab * vocab = model_->vocab();
    llama_batch & b = tok_batch_;
    int32_t feed = job.token;
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<uint32_t> run_ngrams;  // the hashes of the n-grams this run produced
    for (int32_t i = 0; i < job.max_tokens; ++i) {
        // between steps: abort() was called (llama.cpp polls the flag only inside a compute)
        if (i > 0 && abort_.load()) throw CodedError(codes::ABORTED, "the operation was aborted");
        if (cells_used() + 1 > n_ctx_) break;
        const int32_t pos = S.n_past();
        b.n_tokens = 1;
        b.token[0] = feed;
        put_row(b, 0, pos, job.seq, true);
        decode_or_throw(b, [&] { drop_from(job.seq, pos); });
        int32_t tok = 0;
        try {
            tok = row_best(output_row(0), false, nullptr);
        } catch (...) {
            drop_from(job.seq, pos);  // as a failed decode() leaves it
            throw;
        }
        S.full_decoded(pos + 1);
        if (i == 0) job.first_step_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        job.tokens.push_back(tok);
        if (llama_vocab_is_eog(vocab, tok) || std::binary_search(job.stop_tokens.begin(), job.stop_tokens.end(), tok)) break;
        feed = tok;
        if (job.repeat_n > 0) {
            job.window.push_back(tok);
            const uint32_t h = ngram_hash(job.window.data(), job.repeat_n);
            job.window.erase(job.window.begin());
            const uint32_t bit = h >> job.filter_shift;
            if (((job.filter[bit >> 3] >> (bit & 7)) & 1) || std::find(run_ngrams.begin(), run_ngrams.end(), h) != run_ngrams.end()) {
                job.repeat = true;
                break;
            }
            run_ngrams.push_back(h);
        }
    }
}

}  // namespace layerskip
