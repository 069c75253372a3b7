#include "common.h"

#include "llama.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cstdio>
#include <cstdlib>
#include <exception>

namespace layerskip {

namespace {
// error lines llama.cpp logged on this thread since the last take: a failed load logs its reason
// first ("wrong number of tensors; expected 49, got 48") and a generic "failed to load model" last
thread_local std::vector<std::string> error_lines;

// lines that only say that something failed, not why
bool is_generic(const std::string & line) {
    static const std::string tail = ": failed to load model";
    return line.size() >= tail.size() && line.compare(line.size() - tail.size(), tail.size(), tail) == 0;
}

void log_callback(ggml_log_level level, const char * text, void *) {
    if (level == GGML_LOG_LEVEL_ERROR && text) {
        std::string msg(text);
        while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
        static const std::string prefix = "llama_model_load: error loading model: ";
        if (msg.compare(0, prefix.size(), prefix) == 0) msg.erase(0, prefix.size());
        if (!msg.empty() && error_lines.size() < 8) error_lines.push_back(msg);
    }
    static const bool verbose = [] {
        const char * v = std::getenv("LAYERSKIP_LOG");
        return v && v[0] && v[0] != '0';
    }();
    if (verbose && text) {
        std::fputs(text, stderr);
    }
}
}  // namespace

std::string take_last_llama_error() {
    std::string out, generic;
    for (const auto & line : error_lines) {
        if (is_generic(line) || line.find("failed to load model from") != std::string::npos) {
            if (generic.empty()) generic = line;
            continue;
        }
        const bool said = out == line || (out.size() >= line.size() + 2 && out.compare(out.size() - line.size(), line.size(), line) == 0);
        if (said) continue;  // the same line again (a retried call logs it once more)
        out += (out.empty() ? "" : "; ") + line;
    }
    error_lines.clear();
    return out.empty() ? generic : out;
}

void install_log_callback() {
    llama_log_set(log_callback, nullptr);
}

Napi::Promise PromiseWorker::run(Napi::Env env, Work work, Done done, Finally finally) {
    auto * worker = new PromiseWorker(env, std::move(work), std::move(done), std::move(finally));
    auto promise = worker->deferred_.Promise();
    worker->Queue();
    return promise;
}

PromiseWorker::PromiseWorker(Napi::Env env, Work work, Done done, Finally finally)
    : Napi::AsyncWorker(env, "layerskip"), deferred_(Napi::Promise::Deferred::New(env)),
      work_(std::move(work)), done_(std::move(done)), finally_(std::move(finally)) {}

void PromiseWorker::Execute() {
    try {
        work_();
    } catch (const CodedError & e) {
        code_ = e.code;
        SetError(e.what());
    } catch (const std::exception & e) {
        SetError(e.what());
    } catch (...) {
        SetError("unknown native error");
    }
}

// `finally` runs after `done`: a release in it must not free what `done` still wraps (a context
// created for a model disposed meanwhile takes its own reference first)
void PromiseWorker::OnOK() {
    Napi::Env env = Env();
    try {
        deferred_.Resolve(done_(env));
    } catch (const Napi::Error & e) {
        deferred_.Reject(e.Value());
    }
    if (finally_) finally_();
}

void PromiseWorker::OnError(const Napi::Error & e) {
    if (finally_) finally_();
    if (code_) e.Value().Set("code", Napi::String::New(Env(), code_));
    deferred_.Reject(e.Value());
}

void throw_type(Napi::Env env, const std::string & message) {
    throw Napi::TypeError::New(env, message);
}

void throw_range(Napi::Env env, const std::string & message) {
    throw Napi::RangeError::New(env, message);
}

void throw_error(Napi::Env env, const std::string & message, const char * code) {
    auto err = Napi::Error::New(env, message);
    if (code) err.Set("code", Napi::String::New(env, code));
    throw err;
}

void release_free_memory() {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}

int32_t get_int(Napi::Env env, const Napi::Object & obj, const char * key, int32_t fallback, int32_t lo, int32_t hi) {
    if (!obj.Has(key)) return fallback;
    Napi::Value v = obj.Get(key);
    if (v.IsUndefined()) return fallback;
    if (!v.IsNumber()) throw_type(env, std::string(key) + " must be a number");
    double d = v.As<Napi::Number>().DoubleValue();
    if (d != (double)(int64_t)d || d < lo || d > hi) {
        throw_range(env, std::string(key) + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(d));
    }
    return (int32_t)d;
}

bool get_bool(const Napi::Object & obj, const char * key, bool fallback) {
    if (!obj.Has(key)) return fallback;
    Napi::Value v = obj.Get(key);
    if (v.IsUndefined()) return fallback;
    return v.ToBoolean().Value();
}

}  // namespace layerskip
