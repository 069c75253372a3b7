// Shared helpers of the addon: llama.cpp log capture (so errors carry llama.cpp's own reason),
// a Promise-returning worker for work that must stay off the main thread, and argument checks.
#pragma once

#include <napi.h>

#include <functional>
#include <string>

namespace layerskip {

// The last error-level message llama.cpp logged on this thread (cleared by take).
std::string take_last_llama_error();
void install_log_callback();

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
};

// Throws a JavaScript TypeError/RangeError with a message that names the argument.
[[noreturn]] void throw_type(Napi::Env env, const std::string & message);
[[noreturn]] void throw_range(Napi::Env env, const std::string & message);
[[noreturn]] void throw_error(Napi::Env env, const std::string & message, const char * code = nullptr);

int32_t get_int(Napi::Env env, const Napi::Object & obj, const char * key, int32_t fallback, int32_t lo, int32_t hi);
bool get_bool(const Napi::Object & obj, const char * key, bool fallback);

}  // namespace layerskip
