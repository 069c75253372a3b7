// Grammar: one state of llama.cpp's grammar sampler (GBNF) over a model's vocabulary. The decoding
// loops mask logits rows with it, fork it to follow a round's drafts, and advance it with the
// tokens a generation emits. JSON schemas become GBNF through llama.cpp's own converter.
#pragma once

#include <napi.h>

#include "common.h"
#include "llama.h"
#include "model.h"

#include <vector>

namespace layerskip {

class Grammar : public Napi::ObjectWrap<Grammar> {
public:
    static Napi::Function define(Napi::Env env);
    // (model, gbnf, root) => NativeGrammar; a grammar that does not parse is a SyntaxError
    static Napi::Value create(const Napi::CallbackInfo & info);
    // (schema JSON text) => GBNF text, through common/json-schema-to-grammar
    static Napi::Value from_json_schema(const Napi::CallbackInfo & info);

    explicit Grammar(const Napi::CallbackInfo & info);
    ~Grammar() override;

private:
    LAYERSKIP_GUARDED_METHODS(Grammar)

    Napi::Value mask(const Napi::CallbackInfo & info);     // (row: Float32Array) => void: -Infinity where forbidden
    Napi::Value allows(const Napi::CallbackInfo & info);   // (token) => boolean
    Napi::Value accept(const Napi::CallbackInfo & info);   // (token) => void
    Napi::Value fork(const Napi::CallbackInfo & info);     // () => NativeGrammar in the same state
    Napi::Value dispose(const Napi::CallbackInfo & info);  // frees the state now (else at garbage collection)
    void check_live(Napi::Env env, const char * what) const;
    bool forbids(int32_t token) const;
    int32_t token_arg(const Napi::CallbackInfo & info, const char * what) const;
    void free_now();

    llama_sampler * sampler_ = nullptr;
    Model * model_ = nullptr;
    Napi::ObjectReference model_ref_;
    int32_t n_vocab_ = 0;
    std::vector<llama_token_data> cells_;  // mask()'s candidates (reused)
};

}  // namespace layerskip
