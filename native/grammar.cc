#include "grammar.h"

#include "addon.h"
#include "error-codes.h"
#include "json-schema-to-grammar.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace layerskip {

Napi::Function Grammar::define(Napi::Env env) {
    return DefineClass(env, "NativeGrammar", {
        InstanceMethod<&Grammar::guarded<&Grammar::mask>>("mask"),
        InstanceMethod<&Grammar::guarded<&Grammar::allows>>("allows"),
        InstanceMethod<&Grammar::guarded<&Grammar::accept>>("accept"),
        InstanceMethod<&Grammar::guarded<&Grammar::fork>>("fork"),
        InstanceMethod<&Grammar::guarded<&Grammar::dispose>>("dispose"),
    });
}

// constructed by create() and fork() only: (model, External<llama_sampler>)
Grammar::Grammar(const Napi::CallbackInfo & info) : Napi::ObjectWrap<Grammar>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 2 || !info[0].IsObject() || !info[1].IsExternal()) {
        throw_type(env, "NativeGrammar cannot be constructed directly: use createGrammar()");
    }
    model_ = Model::Unwrap(info[0].As<Napi::Object>());
    model_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
    model_->retain();  // the vocabulary the grammar reads lives with the model
    sampler_ = info[1].As<Napi::External<llama_sampler>>().Data();
    n_vocab_ = llama_vocab_n_tokens(model_->vocab());
}

Grammar::~Grammar() { free_now(); }

void Grammar::free_now() {
    if (!sampler_) return;
    llama_sampler_free(sampler_);
    sampler_ = nullptr;
    model_->release();
    model_ref_.Reset();
}

void Grammar::check_live(Napi::Env env, const char * what) const {
    if (!sampler_) throw_error(env, std::string(what) + ": the grammar is disposed", codes::DISPOSED);
}

static Napi::Object wrap(Napi::Env env, Napi::Object model, llama_sampler * s) {
    auto * data = env.GetInstanceData<AddonData>();
    try {
        return data->grammar_ctor.New({model, Napi::External<llama_sampler>::New(env, s)});
    } catch (...) {
        llama_sampler_free(s);  // the wrapper did not take it
        throw;
    }
}

Napi::Value Grammar::create(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Model * model = Model::unwrap_live(env, info[0], "createGrammar");
    if (info.Length() < 3 || !info[1].IsString() || !info[2].IsString()) throw_type(env, "createGrammar: (model, grammar, root) expected");
    const std::string text = info[1].As<Napi::String>();
    const std::string root = info[2].As<Napi::String>();
    take_last_llama_error();
    llama_sampler * s = llama_sampler_init_grammar(model->vocab(), text.c_str(), root.c_str());
    if (!s) {
        const std::string why = take_last_llama_error();
        Napi::Error e = Napi::Error::New(env, "the grammar does not parse" + (why.empty() ? std::string() : ": " + why));
        e.Set("name", Napi::String::New(env, "SyntaxError"));
        throw e;
    }
    return wrap(env, info[0].As<Napi::Object>(), s);
}

Napi::Value Grammar::from_json_schema(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw_type(env, "jsonSchemaToGrammar: the schema must be JSON text");
    try {
        const common_json schema = common_json::parse(info[0].As<Napi::String>().Utf8Value());
        return Napi::String::New(env, json_schema_to_grammar(schema));
    } catch (const std::exception & e) {
        throw_range(env, std::string("jsonSchemaToGrammar: ") + e.what());
    }
}

Napi::Value Grammar::mask(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_live(env, "mask");
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
        throw_type(env, "mask: row must be a Float32Array");
    }
    auto row = info[0].As<Napi::Float32Array>();
    if ((int32_t)row.ElementLength() != n_vocab_) throw_range(env, "mask: the row must have one value per vocabulary token");
    float * v = row.Data();
    cells_.resize(n_vocab_);
    for (int32_t t = 0; t < n_vocab_; ++t) cells_[t] = {t, v[t], 0.0f};
    llama_token_data_array arr = {cells_.data(), cells_.size(), -1, false};
    llama_sampler_apply(sampler_, &arr);
    // the grammar sets a forbidden candidate's logit to -INFINITY and keeps the order
    for (size_t i = 0; i < arr.size; ++i) {
        if (std::isinf(arr.data[i].logit) && arr.data[i].logit < 0) v[arr.data[i].id] = -INFINITY;
    }
    return env.Undefined();
}

// the grammar's verdict on one token: a one-candidate pass of its sampler
bool Grammar::forbids(int32_t token) const {
    llama_token_data one = {token, 0.0f, 0.0f};
    llama_token_data_array arr = {&one, 1, -1, false};
    llama_sampler_apply(sampler_, &arr);
    return std::isinf(one.logit) && one.logit < 0;
}

// the token argument of allows() and accept(), inside the vocabulary
int32_t Grammar::token_arg(const Napi::CallbackInfo & info, const char * what) const {
    const int32_t t = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : -1;
    if (t < 0 || t >= n_vocab_) throw_range(info.Env(), std::string(what) + ": token outside the vocabulary");
    return t;
}

Napi::Value Grammar::allows(const Napi::CallbackInfo & info) {
    check_live(info.Env(), "allows");
    return Napi::Boolean::New(info.Env(), !forbids(token_arg(info, "allows")));
}

Napi::Value Grammar::accept(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_live(env, "accept");
    const int32_t t = token_arg(info, "accept");
    // llama.cpp aborts the process on an end-of-generation token the grammar does not allow yet:
    // every forbidden token is refused here first
    if (forbids(t)) throw_range(env, "accept: token " + std::to_string(t) + " is not allowed by the grammar here");
    try {
        llama_sampler_accept(sampler_, t);  // throws when the token leaves the grammar
    } catch (const std::exception & e) {
        throw_range(env, std::string("accept: token ") + std::to_string(t) + " is not allowed by the grammar here (" + e.what() + ")");
    }
    return env.Undefined();
}

Napi::Value Grammar::fork(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_live(env, "fork");
    llama_sampler * s = llama_sampler_clone(sampler_);
    if (!s) throw_error(env, "fork: the grammar state could not be copied");
    return wrap(env, model_ref_.Value(), s);
}

Napi::Value Grammar::dispose(const Napi::CallbackInfo & info) {
    free_now();
    return info.Env().Undefined();
}

}  // namespace layerskip

// common/json-schema-to-grammar.cpp uses these three of common.cpp's string helpers; the addon does
// not build the rest of common/ (LLAMA_BUILD_COMMON=OFF), so they are defined here as common.cpp does
std::string string_join(const std::vector<std::string> & values, const std::string & separator) {
    std::string out;
    for (size_t i = 0; i < values.size(); ++i) {
        if (i > 0) out += separator;
        out += values[i];
    }
    return out;
}

std::vector<std::string> string_split(const std::string & str, const std::string & delimiter) {
    std::vector<std::string> parts;
    size_t start = 0, end;
    while ((end = str.find(delimiter, start)) != std::string::npos) {
        parts.push_back(str.substr(start, end - start));
        start = end + delimiter.length();
    }
    parts.push_back(str.substr(start));
    return parts;
}

std::string string_repeat(const std::string & str, size_t n) {
    if (n == 0) return "";
    std::string out;
    out.reserve(str.length() * n);
    for (size_t i = 0; i < n; ++i) out += str;
    return out;
}
