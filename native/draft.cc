// Early-exit drafting on the worker thread: draft() and draftMany() run layers [0, E) token by
// token, take each draft from the exit's logits (argmax or a sample) and feed it back, in one call.
#include "context-jobs.h"
#include "context.h"
#include "error-codes.h"
#include "llama-ext.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>

namespace layerskip {

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
        if (job->token < 0 && (S.n_full() == S.n_past() || S.draft_layer() != job->layer)) {
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

// draftVerify({ ...draft options, logits? }) => Promise<{ draft, verification }>
// One self-speculative round's two calls in one: draft() as above, then, on the same worker, the
// verification of every pending draft of the sequence from its cached layer-E states (layers
// [E, N), one row per pending position, as decode({ layers: [E, N], outputs: 'all' }) returns it).
// A hand-off between JavaScript and the libuv pool costs about 50 us, as much as a decode of a
// small model, so a round that pays one instead of two runs faster wherever drafts are cheap. The
// caller keeps the rows it needs (a stop string or a grammar may cut the drafts) and removes the
// positions it does not accept, as after a separate verification.
Napi::Value Context::draft_verify(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_usable(env, "draftVerify");
    if (info.Length() < 1 || !info[0].IsObject()) throw_type(env, "draftVerify: options object expected");
    const Napi::Object o = info[0].As<Napi::Object>();
    auto job = parse_draft(env, o);
    const SeqState & S = *seqs_[job->seq];
    // the verification's rows: pending drafts, `token`, the prefix and every draft (with `finish`)
    const int32_t rows = S.pending() + (job->token >= 0 ? 1 : 0) + (int32_t)job->prefix.size() + job->max_tokens;
    if (rows > n_batch_) {
        throw_range(env, "draftVerify: up to " + std::to_string(rows) + " rows to verify exceed the batch size " + std::to_string(n_batch_));
    }
    check_room(env, "draftVerify", job->max_tokens + (int32_t)job->prefix.size());
    auto verify = std::make_shared<DecodeJob>();
    verify->seq = job->seq;
    verify->start = job->layer;
    verify->end = n_layer_;
    verify->use_cached_hidden = true;
    verify->outputs = 1;
    verify->want_logits = get_bool(o, "logits", false);
    return run_busy(env,
        [this, job, verify]() {
            run_drafts({job});
            const SeqState & S = *seqs_[job->seq];
            verify->pos0 = S.n_full();
            verify->n = S.pending();  // at least `token`'s row: run_drafts decodes it or throws
            verify->native_ms = timed_ms([&] { run_decode(*verify); });
        },
        [job, verify](Napi::Env env) -> Napi::Value {
            Napi::Object r = Napi::Object::New(env);
            r.Set("draft", draft_result(env, *job));
            r.Set("verification", decode_result(env, *verify));
            return r;
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
        S.begin_drafts();
        live.push_back({j.get(), &S, j->token, true, false, S.hidden().size()});
    }

    // one batch: the feed token of each listed sequence at its next position through layers
    // [0, layer); their hidden states join the sequences' caches
    auto step = [&](const std::vector<Live *> & batch, bool output) {
        llama_batch & b = tok_batch_;
        b.n_tokens = (int32_t)batch.size();
        for (size_t k = 0; k < batch.size(); ++k) {
            b.token[k] = batch[k]->feed;
            put_row(b, (int32_t)k, batch[k]->S->n_past(), batch[k]->job->seq, output);
        }
        decode_or_throw(b, [&] {
            for (const Live * l : batch) drop_from(l->job->seq, l->S->n_past());
        });
        const float * h = llama_get_embeddings_layer_inp(ctx_, layer);
        for (size_t k = 0; k < batch.size(); ++k) batch[k]->S->drafts_decoded(layer, h + k * n_embd_, 1);
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
            put_row(b, k, S.n_past() + k, l.job->seq, k == b.n_tokens - 1);
        }
        decode_or_throw(b, [&] { drop_from(l.job->seq, S.n_past()); });
        const float * row = output_row(b.n_tokens - 1);
        const float * h = llama_get_embeddings_layer_inp(ctx_, layer);
        S.drafts_decoded(layer, h, b.n_tokens);
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
            const float * row = output_row((int32_t)k);
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
        if (l.job->want_hidden) l.job->hidden.assign(l.S->hidden().begin() + l.cached, l.S->hidden().end());
    }
}

}  // namespace layerskip
