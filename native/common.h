// Shared helpers of the addon: llama.cpp log capture (so errors carry llama.cpp's own reason),
// a Promise-returning worker for work that must stay off the main thread, and argument checks.
#pragma once

#include <napi.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

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

// The error-level messages llama.cpp logged on this thread since the last take, the reason first
// and generic "failed to load model" lines left out (cleared by take).
std::string take_last_llama_error();
void install_log_callback();

// An error from worker-thread code that the rejection carries as `code` (e.g. ERR_ABORTED).
struct CodedError : std::runtime_error {
    const char * code;
    CodedError(const char * code_, const std::string & message) : std::runtime_error(message), code(code_) {}
};

// Runs `work` on the libuv thread pool and settles a Promise: resolves with `done(env)`,
// or rejects with the std::exception message `work` threw.
class PromiseWorker : public Napi::AsyncWorker {
public:
    using Work = std::function<void()>;
    using Done = std::function<Napi::Value(Napi::Env)>;
    using Finally = std::function<void()>;

    static Napi::Promise run(Napi::Env env, Work work, Done done, Finally finally = nullptr);

protected:
    PromiseWorker(Napi::Env env, Work work, Done done, Finally finally);
    void Execute() override;
    void OnOK() override;
    void OnError(const Napi::Error & e) override;

private:
    Napi::Promise::Deferred deferred_;
    Work work_;
    Done done_;
    Finally finally_;
    const char * code_ = nullptr;  // of a CodedError thrown by work_
};

// Throws a JavaScript TypeError/RangeError with a message that names the argument.
[[noreturn]] void throw_type(Napi::Env env, const std::string & message);
[[noreturn]] void throw_range(Napi::Env env, const std::string & message);
[[noreturn]] void throw_error(Napi::Env env, const std::string & message, const char * code = nullptr);

// Runs a synchronous method body so that its C++ exceptions become JavaScript errors (llama.cpp
// throws from some vocabulary paths; an uncaught exception would terminate the host process).
template <typename F>
Napi::Value guard_call(const Napi::CallbackInfo & info, F && body) {
    try {
        return body();
    } catch (const Napi::Error &) {
        throw;
    } catch (const std::exception & e) {
        throw Napi::Error::New(info.Env(), std::string("native error: ") + e.what());
    }
}

// In a Napi::ObjectWrap class: a member `guarded<&Class::method>` to register with InstanceMethod
// (N-API needs a member function pointer of the class itself, hence the macro).
#define LAYERSKIP_GUARDED_METHODS(Class)                                               \
    template <Napi::Value (Class::*Method)(const Napi::CallbackInfo &)>                \
    Napi::Value guarded(const Napi::CallbackInfo & info) {                             \
        return ::layerskip::guard_call(info, [&] { return (this->*Method)(info); });   \
    }

// A copy of a result vector as a JavaScript typed array.
inline Napi::Int32Array to_js(Napi::Env env, const std::vector<int32_t> & v) {
    auto a = Napi::Int32Array::New(env, v.size());
    std::copy(v.begin(), v.end(), a.Data());
    return a;
}
inline Napi::Float32Array to_js(Napi::Env env, const std::vector<float> & v) {
    auto a = Napi::Float32Array::New(env, v.size());
    std::copy(v.begin(), v.end(), a.Data());
    return a;
}
inline Napi::Float64Array to_js(Napi::Env env, const std::vector<double> & v) {
    auto a = Napi::Float64Array::New(env, v.size());
    std::copy(v.begin(), v.end(), a.Data());
    return a;
}

// Returns the C heap's free pages to the system after a model or context is freed: llama.cpp's many
// small allocations (vocabulary maps, graphs) interleave across libuv threads, and without a trim
// glibc keeps the holes, so a load -> dispose loop grew resident memory by ~15 KB a cycle.
void release_free_memory();

int32_t get_int(Napi::Env env, const Napi::Object & obj, const char * key, int32_t fallback, int32_t lo, int32_t hi);
bool get_bool(const Napi::Object & obj, const char * key, bool fallback);

}  // namespace layerskip
