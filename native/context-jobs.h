// The jobs a context's calls hand to the worker thread, and the parsing and result helpers that
// decode.cc and draft.cc share. Internal to the addon (context.h declares the methods).
#pragma once

#include <napi.h>

#include "common.h"
#include "context.h"

#include <chrono>
#include <string>
#include <vector>

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

// row i of a batch: one token (or embedding) of sequence `seq` at `pos`, with logits when `output`
inline void put_row(llama_batch & b, int32_t i, int32_t pos, int32_t seq, bool output) {
    b.pos[i] = pos;
    b.n_seq_id[i] = 1;
    b.seq_id[i][0] = seq;
    b.logits[i] = output;
}

}  // namespace layerskip
