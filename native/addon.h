#pragma once
#include <napi.h>

namespace layerskip {
// Per-environment data (one per Node realm / worker thread).
struct AddonData {
    Napi::FunctionReference model_ctor;
    Napi::FunctionReference context_ctor;
    Napi::FunctionReference trainer_ctor;
    Napi::FunctionReference grammar_ctor;
};
}  // namespace layerskip
