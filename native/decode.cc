// The context's decodes on the worker thread: full and layer-range decodes of one sequence
// (decode), full decodes of several (decodeMany) and verifications of several (verifyMany), with
// one batch fill and one decode-or-roll-back for all of them.
#include "context-jobs.h"
#include "context.h"
#include "error-codes.h"
#include "llama-ext.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace layerskip {

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
        job->pos0 = get_int(env, o, "position", S.n_past(), 0, INT32_MAX - 1);
        if (job->pos0 != S.n_past()) {
            throw_range(env, "decode: position " + std::to_string(job->pos0) + " does not continue the sequence (next position is " +
                std::to_string(S.n_past()) + "; remove positions with removeFrom() to rewind)");
        }
        if (job->end == n_layer_ && S.n_full() < S.n_past()) {
            throw_error(env, "decode: positions [" + std::to_string(S.n_full()) + ", " + std::to_string(S.n_past()) +
                ") hold early-exit drafts; verify them or removeFrom(" + std::to_string(S.n_full()) + ") before a full decode", codes::PENDING_DRAFT);
        }
        if (job->end < n_layer_) check_draft_continues(env, "decode", S, job->end);
    } else {
        if (o.Has("tokens") && !o.Get("tokens").IsUndefined()) throw_type(env, "decode: a range that starts above 0 takes hidden states, not tokens");
        Napi::Value hv = o.Get("hidden");
        // a split decode: layers [start, N) of new positions whose layers [0, start) ran in another
        // context (the draft context of a pipelined generation); this one holds no pending drafts
        job->split = !hv.IsUndefined() && !hv.IsNull() && S.n_full() == S.n_past();
        if (job->split && S.split_from() >= 0 && S.split_layer() != job->start) {
            throw_error(env, "decode: positions from " + std::to_string(S.split_from()) + " were split-decoded from layer " +
                std::to_string(S.split_layer()) + ", not " + std::to_string(job->start) + "; removeFrom(" + std::to_string(S.split_from()) + ") first",
                codes::SPLIT_DECODED);
        }
        if (!job->split && (S.n_full() >= S.n_past() || S.draft_layer() != job->start)) {
            throw_error(env, "decode: no early-exit drafts at layer " + std::to_string(job->start) + " to verify" +
                (S.n_full() < S.n_past() ? " (pending drafts exit at layer " + std::to_string(S.draft_layer()) + ")" : ""), codes::NO_DRAFT);
        }
        job->pos0 = get_int(env, o, "position", S.n_full(), 0, INT32_MAX - 1);
        if (job->pos0 != S.n_full()) {
            throw_range(env, "decode: verification must start at position " + std::to_string(S.n_full()) +
                " (the first unverified draft), got " + std::to_string(job->pos0));
        }
        if (hv.IsUndefined() || hv.IsNull()) {
            job->use_cached_hidden = true;
            job->n = get_int(env, o, "count", S.n_past() - S.n_full(), 1, S.n_past() - S.n_full());
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
        if (!job->split && job->pos0 + job->n > S.n_past()) {
            throw_range(env, "decode: positions [" + std::to_string(job->pos0) + ", " + std::to_string(job->pos0 + job->n) +
                ") have no early-layer KV (drafts end at " + std::to_string(S.n_past()) + ")");
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
        [job](Napi::Env env) -> Napi::Value { return decode_result(env, *job); });
}

Napi::Object Context::decode_result(Napi::Env env, const DecodeJob & job) {
    Napi::Object r = Napi::Object::New(env);
    r.Set("argmax", to_js(env, job.argmax));
    r.Set("nativeMs", job.native_ms);
    if (job.want_probs) r.Set("maxProb", to_js(env, job.max_prob));
    if (job.want_logits) r.Set("logits", to_js(env, job.logits));
    if (job.want_hidden) r.Set("hidden", to_js(env, job.hidden_out));
    return r;
}

// llama_decode, then whether the model's RPC servers are still there: a lost server completes its
// calls with zeroed data (patches/0005), so a decode that "succeeded" after one is a failure
static constexpr int32_t DECODE_RPC_LOST = -100;

int32_t Context::decode_checked(llama_batch & b) {
    const int32_t ret = llama_decode(ctx_, b);
    return ret == 0 && model_->rpc_failed() ? DECODE_RPC_LOST : ret;
}

const float * Context::output_row(int32_t i) const {
    const float * row = llama_get_logits_ith(ctx_, i);
    if (!row) throw std::runtime_error("no logits for output " + std::to_string(i));
    return row;
}

void Context::take_row(SeqRows & rows, int32_t i) const {
    const float * row = output_row(i);
    rows.argmax.push_back(row_best(row, false, nullptr));
    if (rows.want_logits) rows.logits.insert(rows.logits.end(), row, row + n_vocab_);
}

void Context::drop_from(int32_t seq, int32_t pos) { llama_memory_seq_rm(llama_get_memory(ctx_), seq, pos, -1); }

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
        if (S.n_full() < S.n_past()) {
            throw_error(env, "decodeMany: sequence " + std::to_string(e.seq) + " holds early-exit drafts; verify or remove them first", codes::PENDING_DRAFT);
        }
        check_no_split(env, "decodeMany", S, e.seq);
        e.pos0 = S.n_past();
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
            put_row(b, n, e.pos0 + (int32_t)i, e.seq, e.outputs == 1 || (e.outputs == 0 && i + 1 == e.tokens.size()));
        }
    }
    b.n_tokens = n;
    auto rollback = [&] {
        for (const auto & e : job.entries) drop_from(e.seq, e.pos0);
    };
    decode_or_throw(b, rollback);
    try {
        int32_t at = 0;
        for (auto & e : job.entries) {
            for (size_t i = 0; i < e.tokens.size(); ++i, ++at) {
                if (!b.logits[at]) continue;
                take_row(e, at);
            }
        }
    } catch (...) {
        rollback();  // a non-finite row: none of this batch stays
        throw;
    }
    for (const auto & e : job.entries) {
        SeqState & S = *seqs_[e.seq];
        seqs_[e.seq]->full_decoded(e.pos0 + (int32_t)e.tokens.size());
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
        put_row(b, i, job.pos0 + i, job.seq, job.outputs == 1 || (job.outputs == 0 && i == n - 1));
    }
    if (verify) {
        const float * src = job.use_cached_hidden ? S.hidden().data() : job.hidden.data();
        std::memcpy(b.embd, src, (size_t)n * n_embd_ * sizeof(float));
    }

    // the final residual (before the norm) is extracted only for this call: every toggle costs a
    // scheduler reserve, and it is valid only when every token is an output
    const bool final_hidden = job.want_hidden && job.end == n_layer_;
    if (final_hidden) llama_set_embeddings_layer_inp(ctx_, n_layer_, true);
    decode_or_throw(b, [&] {
        if (final_hidden) llama_set_embeddings_layer_inp(ctx_, n_layer_, false);
        // a failed decode leaves no cells for this batch (the KV cache restores them), except for
        // an aborted compute; positions past the sequence's end are dropped either way
        drop_from(job.seq, verify ? S.n_past() : job.pos0);
    });
    if (final_hidden) {
        const float * h = llama_get_embeddings_layer_inp(ctx_, n_layer_);
        job.hidden_out.assign(h, h + (size_t)n * n_embd_);
        llama_set_embeddings_layer_inp(ctx_, n_layer_, false);
    }

    // outputs, in batch order; a non-finite row rolls this call back (the KV cells it wrote are dropped)
    try {
    for (int32_t i = 0; i < n; ++i) {
        if (!b.logits[i]) continue;
        const float * row = output_row(i);
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
        if (!verify || job.split) drop_from(job.seq, job.pos0);
        throw;
    }

    if (draft) {
        const float * h = llama_get_embeddings_layer_inp(ctx_, job.end);
        if (job.want_hidden) job.hidden_out.assign(h, h + (size_t)n * n_embd_);
        S.drafts_decoded(job.end, h, n);
    } else if (job.split) {
        S.split_decoded(job.start, n);
    } else if (verify) {
        S.verified(n);
    } else {
        S.full_decoded(job.pos0 + n);
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
        if (S.n_full() >= S.n_past() || S.draft_layer() != job->layer) {
            throw_error(env, "verifyMany: sequence " + std::to_string(v.seq) + " has no early-exit drafts at layer " + std::to_string(job->layer), codes::NO_DRAFT);
        }
        v.pos0 = S.n_full();
        v.n = get_int(env, e, "count", S.n_past() - S.n_full(), 1, S.n_past() - S.n_full());
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
        std::memcpy(b.embd + (size_t)n * n_embd_, S.hidden().data(), (size_t)e.n * n_embd_ * sizeof(float));
        for (int32_t i = 0; i < e.n; ++i, ++n) put_row(b, n, e.pos0 + i, e.seq, true);
    }
    b.n_tokens = n;
    decode_or_throw(b, [&] {
        // the drafts stay pending (a retry overwrites the same cells); positions past them are dropped
        for (const auto & e : job.entries) drop_from(e.seq, seqs_[e.seq]->n_past());
    });
    int32_t at = 0;
    for (auto & e : job.entries) {
        for (int32_t i = 0; i < e.n; ++i, ++at) {
            take_row(e, at);
        }
    }
    for (const auto & e : job.entries) {
        seqs_[e.seq]->verified(e.n);
    }
}

}  // namespace layerskip
