// Exit-adapter training with ggml-opt, and row dequantization for it (see adapter-trainer.cc).
#pragma once

#include <napi.h>

namespace layerskip {

Napi::Value train_exit_adapter(const Napi::CallbackInfo & info);  // (options, onProgress?) => Promise<{ adapter, bias, losses }>
Napi::Value dequantize_rows(const Napi::CallbackInfo & info);     // (rows, type, rowLength) => Float32Array

}  // namespace layerskip
