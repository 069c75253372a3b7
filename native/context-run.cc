// decodeRun: several plain greedy steps in one call. A one-token decode of a small model takes
// about as long as the hand-off between the JavaScript thread and the libuv pool (~50 us), so plain
// decoding that pays it per token runs at half of native speed on stories260K. The loop here pays
// it once per run; the caller sizes runs so that streaming and abort stay prompt, and keeps stop
// strings, token limits and the prompt cache in TypeScript (it removes what it does not keep).
// With `lookup` the run also takes free rounds among its steps (run_rounds): drafts from a context
// lookup, from the caller's prediction, or both; with `earlyExit`, early-exit rounds at a fixed
// draft length, so that a round pays no hand-off either (lib/decoding/addon-run.ts).
#include "context-jobs.h"
#include "context.h"
#include "error-codes.h"
#include "lookup-index.h"
#include "lookup-policy.h"
#include "prediction-cursor.h"

#include "common.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

namespace layerskip {

// the free sources of decodeRun's rounds, in the order the TypeScript loop weighs them (its
// prediction first: of two drafts at the same rate, the caller's)
enum FreeSource : int { kLookup = 0, kPrediction = 1 };
// decodeRun's roundSource of an early-exit round
constexpr int kEarlyExit = 2;

struct Context::RunJob {
    int32_t seq = 0, token = 0, max_tokens = 0;
    std::vector<int32_t> stop_tokens;  // end the run after producing one (as after an end-of-generation token)
    // whether `tok` ends the run: an end-of-generation token or one of stop_tokens
    bool stops_at(const llama_vocab * vocab, int32_t tok) const {
        return llama_vocab_is_eog(vocab, tok) || std::binary_search(stop_tokens.begin(), stop_tokens.end(), tok);
    }
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
    // lookup: free rounds inside the run: after a match of m tokens of the context (lookup-index.h)
    // or of the prediction (prediction-cursor.h), the drafts its policy chooses (lookup-policy.h)
    // verified in one batch, or a plain step where neither source's drafts pay
    bool lookup = false;
    bool has_context = false;
    std::vector<int32_t> context;      // the sequence's tokens, ending with `token`
    bool has_prediction = false;
    PredictionCursor prediction;
    LookupPolicy policy[2];            // per source (kLookup, kPrediction): acceptance, and the same costs
    int32_t force = 0;                 // drafts of the run's first round, whatever the policy (a probe)
    int32_t max_rounds = 0;            // 0: no limit
    // the run ends once it produced this many tokens (0: max_tokens); its last round may pass them,
    // up to max_tokens: a round cut at a run's end cost a round more of the same drafts
    int32_t run_tokens = 0;
    // early exit: rounds of up to early_drafts drafts from layers [0, early_layer) (and the context's
    // draft head), verified from their cached layer-E states (run_rounds)
    int32_t early_layer = 0;           // 0: none
    int32_t early_drafts = 0;
    float early_min_prob = 0;
    double early_rate = 0;             // tokens per ms of early-exit rounds (0: not measured), updated by each round
    double last_draft_ms = 0;          // the latest early-exit round's drafting time (early_round)
    std::vector<int32_t> round_source, round_match, round_drafts, round_accepted, round_at;
    std::vector<double> round_draft_ms;  // early exit: each round's draft part of round_ms
    // what the policies counted, in order: [kind (0: a round, 1: a declined draft checked against the
    // output), source, match, drafts, accepted] per entry, for TypeScript to count the same
    std::vector<int32_t> observed;
    std::vector<double> round_ms;
    int32_t plain_steps = 0;           // plain steps that did not follow a round, and their time
    double plain_ms = 0;
    int32_t switch_steps = 0;          // plain steps right after a round (their graph is built again)
    double switch_ms = 0;
};

// The n-gram hash lib/decoding/ngram-filter.ts computes (FNV-1a over 32-bit tokens, then a
// multiplicative mix whose top bits index the filter); the two must agree bit for bit.
static uint32_t ngram_hash(const int32_t * t, int32_t n) {
    uint32_t h = 2166136261u;
    for (int32_t i = 0; i < n; ++i) h = (h ^ static_cast<uint32_t>(t[i])) * 16777619u;
    return h * 2654435761u;
}

// decodeRun's lookup.policy: { counts: Float64Array [accepted, rejected] x 5 buckets, priors:
// Float64Array(5), priorWeight, decay, ageing, roundBase, roundRow, roundCosts?: Float64Array(66),
// plainMs, stepSlope?, plainMargin?, limit, maxDrafts }
static LookupPolicy parse_lookup_policy(Napi::Env env, const Napi::Value & v, const std::string & name) {
    if (!v.IsObject()) throw_type(env, "decodeRun: " + name + " must be an object");
    Napi::Object o = v.As<Napi::Object>();
    auto f64 = [&](const char * key, size_t n) {
        Napi::Value a = o.Get(key);
        if (!a.IsTypedArray() || a.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array || a.As<Napi::Float64Array>().ElementLength() != n) {
            throw_type(env, "decodeRun: " + name + "." + key + " must be a Float64Array of " + std::to_string(n));
        }
        return a.As<Napi::Float64Array>();
    };
    auto num = [&](const char * key, double lo, double hi) {
        Napi::Value x = o.Get(key);
        const double d = x.IsNumber() ? x.As<Napi::Number>().DoubleValue() : NAN;
        if (!(d >= lo && d <= hi)) throw_range(env, "decodeRun: " + name + "." + key + " must be a number from " + std::to_string(lo) + " to " + std::to_string(hi));
        return d;
    };
    LookupPolicy p;
    auto counts = f64("counts", 2 * LookupPolicy::kBuckets);
    auto priors = f64("priors", LookupPolicy::kBuckets);
    for (int b = 0; b < LookupPolicy::kBuckets; ++b) {
        p.accepted[b] = counts[2 * b];
        p.rejected[b] = counts[2 * b + 1];
        p.prior[b] = priors[b];
        if (!(p.accepted[b] >= 0 && p.rejected[b] >= 0 && p.accepted[b] < 1e9 && p.rejected[b] < 1e9)) throw_range(env, "decodeRun: " + name + ".counts must be finite and non-negative");
        if (!(p.prior[b] >= 0 && p.prior[b] <= 1)) throw_range(env, "decodeRun: " + name + ".priors must be from 0 to 1");
    }
    p.prior_weight = num("priorWeight", 1e-9, 1e9);
    p.decay = num("decay", 0, 1);
    p.ageing = num("ageing", 0, 1);
    p.round_base = num("roundBase", -1e9, 1e9);
    p.round_row = num("roundRow", 1e-12, 1e9);
    p.plain_ms = num("plainMs", 1e-12, 1e9);
    if (!o.Get("stepSlope").IsUndefined()) p.step_slope = num("stepSlope", 0, 1e6);
    if (!o.Get("plainMargin").IsUndefined()) p.plain_margin = num("plainMargin", 1, 100);
    p.limit = static_cast<int32_t>(num("limit", 0, LookupIndex::kMaxMatch));
    p.max_drafts = static_cast<int32_t>(num("maxDrafts", 1, LookupIndex::kMaxMatch));
    if (!o.Get("roundCosts").IsUndefined()) {
        auto costs = f64("roundCosts", LookupPolicy::kCostRows);
        for (int32_t r = 0; r < LookupPolicy::kCostRows; ++r) {
            if (!(costs[r] >= 0 && costs[r] < 1e9)) throw_range(env, "decodeRun: " + name + ".roundCosts must be finite and non-negative");
            p.round_costs[r] = costs[r];
        }
    }
    return p;
}

// decodeRun's lookup.prediction: { tokens: Int32Array, cursor, agreed, run, recent: Int32Array,
// policy } (PredictionDrafts.addonState() with its policy)
// (its token ids are checked against the vocabulary by the caller)
static PredictionCursor parse_prediction(Napi::Env env, const Napi::Object & o) {
    auto tokens = [&](const char * key, size_t most) {
        Napi::Value a = o.Get(key);
        if (!a.IsTypedArray() || a.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) throw_type(env, std::string("decodeRun: lookup.prediction.") + key + " must be an Int32Array");
        auto t = a.As<Napi::Int32Array>();
        if (t.ElementLength() > most) throw_range(env, std::string("decodeRun: lookup.prediction.") + key + " holds more than " + std::to_string(most) + " tokens");
        return std::vector<int32_t>(t.Data(), t.Data() + t.ElementLength());
    };
    PredictionCursor c;
    c.prediction = tokens("tokens", size_t{1} << 24);
    c.recent = tokens("recent", PredictionCursor::kRecent);
    const int32_t n = static_cast<int32_t>(c.prediction.size());
    for (const char * key : {"cursor", "agreed", "run"}) {
        if (!o.Has(key) || o.Get(key).IsUndefined()) throw_type(env, std::string("decodeRun: lookup.prediction.") + key + " is required");
    }
    c.cursor = get_int(env, o, "cursor", -1, -1, n);
    c.agreed = get_int(env, o, "agreed", -1, 0, n);
    c.run = get_int(env, o, "run", -1, 0, 1 << 24);
    return c;
}

// decodeRun({ token, maxTokens, stopTokens?: Int32Array, repeat?: { filter: Uint8Array, n, history: Int32Array }, sequence? })
//   or with lookup?: { context?: Int32Array, policy?, prediction?: { tokens, cursor, agreed, run,
//   recent, policy }, force?, maxRounds?, runTokens? } instead of repeat
//   => Promise<{ tokens, nativeMs, firstStepMs, repeat }>, with lookup also { roundMatch,
//   roundDrafts, roundAccepted, roundMs, roundAt, observed, plainSteps, plainMs, switchSteps,
//   switchMs } (lib/native/contract.ts)
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
    if (o.Has("lookup") && !o.Get("lookup").IsUndefined()) {
        Napi::Value lv = o.Get("lookup");
        if (!lv.IsObject()) throw_type(env, "decodeRun: lookup must be an object");
        Napi::Object l = lv.As<Napi::Object>();
        Napi::Value cv = l.Get("context");
        if (!cv.IsUndefined()) {
            if (!cv.IsTypedArray() || cv.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) throw_type(env, "decodeRun: lookup.context must be an Int32Array");
            auto ca = cv.As<Napi::Int32Array>();
            if (ca.ElementLength() < 1 || ca.Data()[ca.ElementLength() - 1] != job->token) throw_range(env, "decodeRun: lookup.context must end with token");
            job->context.assign(ca.Data(), ca.Data() + ca.ElementLength());
            check_token_ids(env, "decodeRun: lookup.context", job->context);
            job->policy[kLookup] = parse_lookup_policy(env, l.Get("policy"), "lookup.policy");
            job->has_context = true;
        }
        Napi::Value pv = l.Get("prediction");
        if (!pv.IsUndefined()) {
            if (!pv.IsObject()) throw_type(env, "decodeRun: lookup.prediction must be an object");
            Napi::Object po = pv.As<Napi::Object>();
            job->prediction = parse_prediction(env, po);
            check_token_ids(env, "decodeRun: lookup.prediction.tokens", job->prediction.prediction);
            check_token_ids(env, "decodeRun: lookup.prediction.recent", job->prediction.recent);
            job->policy[kPrediction] = parse_lookup_policy(env, po.Get("policy"), "lookup.prediction.policy");
            job->has_prediction = true;
        }
        if (!job->has_context && !job->has_prediction) throw_type(env, "decodeRun: lookup needs a context, a prediction or both");
        job->force = get_int(env, l, "force", 0, 0, LookupIndex::kMaxMatch);
        job->max_rounds = get_int(env, l, "maxRounds", 0, 0, n_ctx_);
        job->run_tokens = get_int(env, l, "runTokens", 0, 0, n_ctx_);
        if (job->repeat_n > 0) throw_range(env, "decodeRun: repeat and lookup exclude each other");
        job->lookup = true;
    }
    if (o.Has("earlyExit") && !o.Get("earlyExit").IsUndefined()) {
        Napi::Value ev = o.Get("earlyExit");
        if (!ev.IsObject()) throw_type(env, "decodeRun: earlyExit must be an object");
        Napi::Object e = ev.As<Napi::Object>();
        for (const char * key : {"layer", "draftTokens"}) {
            if (!e.Has(key) || e.Get(key).IsUndefined()) throw_type(env, std::string("decodeRun: earlyExit.") + key + " is required");
        }
        job->early_layer = get_int(env, e, "layer", 0, 1, n_layer_ - 1);
        job->early_drafts = get_int(env, e, "draftTokens", 0, 1, n_batch_ - 1);
        if (e.Has("minProbability") && !e.Get("minProbability").IsUndefined()) {
            if (!e.Get("minProbability").IsNumber()) throw_type(env, "decodeRun: earlyExit.minProbability must be a number");
            job->early_min_prob = e.Get("minProbability").As<Napi::Number>().FloatValue();
            if (!(job->early_min_prob >= 0 && job->early_min_prob <= 1)) throw_range(env, "decodeRun: earlyExit.minProbability must be in [0, 1]");
        }
        if (e.Has("rate") && !e.Get("rate").IsUndefined()) {
            if (!e.Get("rate").IsNumber()) throw_type(env, "decodeRun: earlyExit.rate must be a number");
            job->early_rate = e.Get("rate").As<Napi::Number>().DoubleValue();
            if (!(job->early_rate >= 0 && std::isfinite(job->early_rate))) throw_range(env, "decodeRun: earlyExit.rate must be a finite number >= 0");
        }
        // (with lookup, lookup.runTokens ends the run)
        if (!job->lookup) job->run_tokens = get_int(env, e, "runTokens", 0, 0, n_ctx_);
        if (job->repeat_n > 0) throw_range(env, "decodeRun: earlyExit excludes repeat");
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
            if (job->lookup || job->early_layer > 0) {
                r.Set("roundSource", to_js(env, job->round_source));
                r.Set("roundMatch", to_js(env, job->round_match));
                r.Set("roundDrafts", to_js(env, job->round_drafts));
                r.Set("roundAccepted", to_js(env, job->round_accepted));
                r.Set("roundMs", to_js(env, job->round_ms));
                r.Set("roundDraftMs", to_js(env, job->round_draft_ms));
                r.Set("roundAt", to_js(env, job->round_at));
                r.Set("observed", to_js(env, job->observed));
                r.Set("plainSteps", job->plain_steps);
                r.Set("plainMs", job->plain_ms);
                r.Set("switchSteps", job->switch_steps);
                r.Set("switchMs", job->switch_ms);
                if (job->early_layer > 0) r.Set("earlyRate", job->early_rate);
            }
            return r;
        });
}

void Context::run_greedy(RunJob & job) {
    FlushDenormals ftz;
    if (job.lookup || job.early_layer > 0) {
        run_rounds(job);
        return;
    }
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
        if (job.stops_at(vocab, tok)) break;
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

// run_greedy with rounds: at each step where a free source has a match (the newest tokens occurred
// before in the sequence, LookupIndex, or follow the caller's prediction, PredictionCursor; m
// tokens), as many of its next tokens as its policy chooses for m (LookupPolicy, updated by each
// round) are verified with every layer in one batch, and the longest prefix the argmax agrees with
// is kept with the next argmax. Of two sources, the one whose drafts yield more tokens per ms; a
// free round is taken where it beats the alternative: an early-exit round (with `earlyExit`, at the
// tokens per ms its rounds measure) or a plain step. An early-exit round drafts with layers [0, E)
// (run_drafts, with the context's draft head) and verifies from the cached layer-E states with
// layers [E, N) (run_decode), as draftVerify and the TypeScript loop's commit() do.
// Every row is computed as a one-token decode computes it (patches 0015, 0018, 0019, 0021), so the
// output is plain greedy output. The rounds pay no hand-off of their own: on the 12-layer copy
// model a round with its JavaScript and hand-off cost about 0.25 ms beyond its decode.
void Context::run_rounds(RunJob & job) {
    SeqState & S = *seqs_[job.seq];
    const llama_vocab * vocab = model_->vocab();
    llama_batch & b = tok_batch_;
    LookupIndex * index = nullptr;
    if (job.has_context) {
        if (lookups_.size() < seqs_.size()) lookups_.resize(seqs_.size());
        if (!lookups_[job.seq]) lookups_[job.seq] = std::make_unique<LookupIndex>();
        index = lookups_[job.seq].get();
        index->sync(job.context.data(), job.context.size());
    }
    auto is_stop = [&](int32_t tok) { return job.stops_at(vocab, tok); };
    const bool has[2] = {job.has_context, job.has_prediction};
    // per source at this step: the match its drafts follow, how many it can propose, and (the
    // lookup) where the earlier occurrence ended. The drafts themselves are copied only for a round
    // or a shadow, not at every step
    int32_t match[2] = {0, 0}, size[2] = {0, 0}, found_at = -1;
    auto propose = [&](int src, int32_t n, std::vector<int32_t> & out) {
        if (src == kPrediction) {
            job.prediction.draft(n, out);
            return;
        }
        // past the sequence's end the continuation repeats with the match's period (a loop)
        const std::vector<int32_t> & h = index->tokens();
        const int32_t period = static_cast<int32_t>(h.size()) - 1 - found_at;
        out.clear();
        for (int32_t i = 0; i < n; ++i) out.push_back(i < period ? h[found_at + 1 + i] : out[i - period]);
    };
    // a declined draft, checked against the output instead of verified (free-rounds.ts, ShadowDraft):
    // whether the output followed it is what a verification would have found, so the policy learns
    // whether drafts it declines would have held (without, a bucket whose estimate fell below paying
    // was never tried again, and a copied text ran as plain steps). One at a time per source.
    std::vector<int32_t> shadow[2];
    int32_t shadow_match[2] = {0, 0}, shadow_seen[2] = {0, 0};
    auto observe = [&](int kind, int src, int32_t m, int32_t drafted, int32_t accepted_drafts) {
        job.policy[src].observe(m, drafted, accepted_drafts);
        if (kind == 0) {
            for (auto & p : job.policy) p.age();  // (FreeAcceptance.age: every source's counts)
        }
        job.observed.insert(job.observed.end(), {kind, src, m, drafted, accepted_drafts});
    };
    auto shadow_sees = [&](int src, int32_t tok) {
        std::vector<int32_t> & d = shadow[src];
        int32_t & seen = shadow_seen[src];
        if (d.empty()) return;
        if (tok == d[seen] && ++seen < static_cast<int32_t>(d.size())) return;
        const bool followed = seen == static_cast<int32_t>(d.size());
        observe(1, src, shadow_match[src], followed ? seen : seen + 1, seen);
        d.clear();
    };
    const bool early = job.early_layer > 0;
    int32_t feed = job.token;
    int32_t produced = 0;
    int32_t rounds = 0;
    bool after_round = false;
    std::vector<int32_t> drafts, out;
    const int32_t run_end = job.run_tokens > 0 ? std::min(job.run_tokens, job.max_tokens) : job.max_tokens;
    while (produced < run_end) {
        // between steps: abort() was called (llama.cpp polls the flag only inside a compute)
        if (produced > 0 && abort_.load()) throw CodedError(codes::ABORTED, "the operation was aborted");
        if (cells_used() + 1 > n_ctx_) break;
        const int32_t pos = S.n_past();
        // drafts that fit: the token budget (a round produces its accepted drafts and one more), the
        // cells and the batch
        const int32_t room = std::min({job.max_tokens - produced - 1, n_ctx_ - cells_used() - 1, n_batch_ - 1});
        int chosen = -1;
        int32_t n_drafts = 0;
        if (job.lookup && room > 0 && (job.max_rounds == 0 || rounds < job.max_rounds)) {
            const bool probe = job.force > 0 && rounds == 0;
            double best_rate = 0;
            for (const int src : {kPrediction, kLookup}) {
                match[src] = size[src] = 0;
                if (!has[src]) continue;
                const int32_t most = std::min(job.policy[src].max_drafts, room);
                if (src == kLookup) {
                    const auto found = index->match();
                    match[src] = found.first;
                    found_at = found.second;
                    size[src] = found.first > 0 ? most : 0;
                } else {
                    match[src] = job.prediction.match_length();
                    size[src] = match[src] > 0 ? std::min(most, job.prediction.remaining()) : 0;
                }
                if (size[src] <= 0) continue;
                if (probe) {
                    // a probe: the source whose first draft is likeliest accepted
                    const double a = job.policy[src].estimate(match[src]);
                    if (a > best_rate) {
                        best_rate = a;
                        chosen = src;
                        n_drafts = std::min(job.force, size[src]);
                    }
                    continue;
                }
                // what a free round must beat: an early-exit round at its measured rate (a plain step's
                // before one was measured), or a plain step (free-rounds.ts, alternativeRate)
                job.policy[src].position = pos;
                const double alternative = early && job.early_rate > 0 ? job.early_rate : job.policy[src].plain_rate();
                const auto [n, rate] = job.policy[src].best(match[src], size[src]);
                if (n > 0 && rate > alternative && rate > best_rate) {
                    best_rate = rate;
                    chosen = src;
                    n_drafts = n;
                }
            }
            for (const int src : {kPrediction, kLookup}) {
                if (src == chosen || size[src] <= 0 || !shadow[src].empty()) continue;
                propose(src, size[src], shadow[src]);
                shadow_match[src] = match[src];
                shadow_seen[src] = 0;
            }
            if (chosen >= 0) propose(chosen, n_drafts, drafts);
        }
        const auto t0 = std::chrono::steady_clock::now();
        out.clear();
        // an early-exit round where no free draft was taken and drafts fit (`feed`, the drafts and
        // the last one's decode in the cells, their rows in the batch)
        const int32_t early_want = early && chosen < 0 ? std::min({job.early_drafts, room, n_ctx_ - cells_used() - 2, n_batch_ - 2}) : 0;
        if (early_want > 0) {
            const auto [drafted, accepted] = early_round(job, feed, early_want, out);
            const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            job.early_rate = job.early_rate > 0 ? 0.8 * job.early_rate + 0.2 * (out.size() / ms) : out.size() / ms;
            job.round_at.push_back(produced);
            job.round_source.push_back(kEarlyExit);
            job.round_match.push_back(0);
            job.round_drafts.push_back(drafted);
            job.round_accepted.push_back(accepted);
            job.round_ms.push_back(ms);
            job.round_draft_ms.push_back(job.last_draft_ms);
            after_round = true;
        } else {
            b.n_tokens = n_drafts + 1;
            b.token[0] = feed;
            put_row(b, 0, pos, job.seq, true);
            for (int32_t i = 0; i < n_drafts; ++i) {
                b.token[i + 1] = drafts[i];
                put_row(b, i + 1, pos + 1 + i, job.seq, true);
            }
            use_layer_range(0, n_layer_);
            decode_or_throw(b, [&] { drop_from(job.seq, pos); });
            // the drafts the argmax agrees with, and the argmax after them
            int32_t accepted = 0;
            int32_t next = 0;
            try {
                for (;; ++accepted) {
                    next = row_best(output_row(accepted), false, nullptr);
                    if (accepted == n_drafts || next != drafts[accepted]) break;
                }
            } catch (...) {
                drop_from(job.seq, pos);  // as a failed decode() leaves it
                throw;
            }
            // produced: drafts[0, accepted) and next; an end token among the drafts ends the run there
            // (the drafts through it are what the round yields). The last produced token is not decoded
            // (as after a plain step): its row, if a draft's, goes
            int32_t produce = accepted + 1;
            for (int32_t i = 0; i < accepted; ++i) {
                if (is_stop(drafts[i])) {
                    produce = i + 1;
                    accepted = produce;
                    break;
                }
            }
            if (n_drafts > 0) drop_from(job.seq, pos + produce);
            S.full_decoded(pos + produce);
            const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            if (n_drafts > 0) {
                ++rounds;
                observe(0, chosen, match[chosen], n_drafts, accepted);
                // a round of r rows measured: rounds may now grow to 2r - 1 drafts (bestFreeLength's limit,
                // which the TypeScript loop raises after each round; fixed for the call, the first calls of
                // a context ran rounds of 1, 2, 4, 5 and 11 drafts where the TypeScript loop ran 1, 3, 6, 13)
                for (auto & p : job.policy) {
                    if (p.limit > 0) p.limit = std::min(LookupIndex::kMaxMatch, std::max(p.limit, 2 * (n_drafts + 1) - 1));
                }
                job.round_at.push_back(produced);
                job.round_source.push_back(chosen);
                job.round_match.push_back(match[chosen]);
                job.round_drafts.push_back(n_drafts);
                job.round_accepted.push_back(accepted);
                job.round_ms.push_back(ms);
                job.round_draft_ms.push_back(0);
            } else if (after_round) {
                ++job.switch_steps;
                job.switch_ms += ms;
            } else {
                ++job.plain_steps;
                job.plain_ms += ms;
            }
            if (produced == 0) job.first_step_ms = ms;
            after_round = n_drafts > 0;
            for (int32_t i = 0; i < produce; ++i) out.push_back(i < accepted ? drafts[i] : next);
        }
        for (const int32_t tok : out) {
            job.tokens.push_back(tok);
            if (index) index->push(tok);
            if (job.has_prediction) job.prediction.push(tok);
            for (const int src : {kPrediction, kLookup}) shadow_sees(src, tok);
        }
        produced += static_cast<int32_t>(out.size());
        if (job.tokens.empty() || is_stop(job.tokens.back())) break;
        feed = job.tokens.back();
    }
    // the run ends inside a declined draft the output has followed so far: counted as followed so far
    for (const int src : {kPrediction, kLookup}) {
        if (!shadow[src].empty() && shadow_seen[src] > 0) observe(1, src, shadow_match[src], shadow_seen[src], shadow_seen[src]);
    }
}

// One early-exit round of run_rounds from `feed` at the sequence's next position: up to `want`
// drafts from layers [0, E) (run_drafts, with the context's draft head), their verification from
// the cached layer-E states with layers [E, N) (run_decode), the longest prefix the argmax agrees
// with kept with the next argmax, and the rest of the round's cells dropped, as draftVerify and the
// TypeScript loop's commit() make a round. `out`: the tokens produced (the accepted drafts, then
// the full model's own token where its row was computed). Returns the drafts and the accepted ones.
std::pair<int32_t, int32_t> Context::early_round(RunJob & job, int32_t feed, int32_t want, std::vector<int32_t> & out) {
    SeqState & S = *seqs_[job.seq];
    const int32_t pos = S.n_past();
    const llama_vocab * vocab = model_->vocab();
    auto is_stop = [&](int32_t tok) { return job.stops_at(vocab, tok); };
    const auto t0 = std::chrono::steady_clock::now();
    auto draft = std::make_shared<DraftJob>();
    draft->seq = job.seq;
    draft->token = feed;
    draft->layer = job.early_layer;
    draft->max_tokens = want;
    draft->min_prob = job.early_min_prob;
    draft->finish = true;
    DecodeJob verify;
    try {
        run_drafts({draft});
        job.last_draft_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        verify.seq = job.seq;
        verify.start = job.early_layer;
        verify.end = n_layer_;
        verify.use_cached_hidden = true;
        verify.outputs = 1;
        verify.pos0 = S.n_full();
        verify.n = S.pending();  // `feed`, the drafts, and the last one when it was decoded
        run_decode(verify);
    } catch (...) {
        // the round leaves nothing behind: its drafts' cells and cached states go
        drop_from(job.seq, pos);
        S.remove_from(pos);
        throw;
    }
    const std::vector<int32_t> & drafts = draft->tokens;
    const int32_t k = static_cast<int32_t>(drafts.size());
    const int32_t rows = static_cast<int32_t>(verify.argmax.size());
    // row j: the full model's token after position pos + j (`feed`, then the drafts)
    int32_t accepted = 0;
    while (accepted < k && accepted < rows && verify.argmax[accepted] == drafts[accepted]) ++accepted;
    for (int32_t i = 0; i < accepted; ++i) {
        if (is_stop(drafts[i])) {  // an end token among the accepted drafts ends the run there
            accepted = i + 1;
            break;
        }
    }
    const bool stopped = accepted > 0 && is_stop(drafts[accepted - 1]);
    // the full model's own token after the accepted drafts, where its row was computed (not after
    // every draft was accepted and the last one not decoded, nor after an end token)
    const bool has_next = !stopped && accepted < rows;
    // positions kept: `feed` and the accepted drafts that have a successor produced here
    const int32_t keep = pos + (has_next ? accepted + 1 : accepted);
    drop_from(job.seq, keep);
    S.remove_from(keep);
    out.assign(drafts.begin(), drafts.begin() + accepted);
    if (has_next) out.push_back(verify.argmax[accepted]);
    return {k, accepted};
}

}  // namespace layerskip
