// Entry point of the layerskip N-API module: initializes llama.cpp's backends once per process
// and exports the native Model / Context classes plus the free functions.
#include <napi.h>

#include "adapter-trainer.h"
#include "addon.h"
#include "common.h"
#include "context.h"
#include "model.h"

#include "llama.h"
#include "ggml-backend.h"

#include <mutex>

namespace layerskip {

static Napi::Value system_info(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("llamaSystemInfo", llama_print_system_info());
    Napi::Array devices = Napi::Array::New(env);
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        Napi::Object d = Napi::Object::New(env);
        d.Set("name", ggml_backend_dev_name(dev));
        d.Set("description", ggml_backend_dev_description(dev));
        devices.Set((uint32_t)i, d);
    }
    o.Set("devices", devices);
    o.Set("gpuOffload", llama_supports_gpu_offload());
    return o;
}

static Napi::Object init(Napi::Env env, Napi::Object exports) {
    static std::once_flag once;
    std::call_once(once, [] {
        install_log_callback();
        llama_backend_init();
    });
    auto * data = new AddonData();
    Napi::Function model = Model::define(env);
    Napi::Function context = Context::define(env);
    data->model_ctor = Napi::Persistent(model);
    data->context_ctor = Napi::Persistent(context);
    env.SetInstanceData<AddonData>(data);

    exports.Set("NativeModel", model);
    exports.Set("NativeContext", context);
    exports.Set("loadModel", Napi::Function::New<Model::load>(env, "loadModel"));
    exports.Set("createContext", Napi::Function::New<Context::create>(env, "createContext"));
    exports.Set("quantizeModel", Napi::Function::New<Model::quantize>(env, "quantizeModel"));
    exports.Set("systemInfo", Napi::Function::New<system_info>(env, "systemInfo"));
    exports.Set("trainExitAdapter", Napi::Function::New<train_exit_adapter>(env, "trainExitAdapter"));
    exports.Set("dequantizeRows", Napi::Function::New<dequantize_rows>(env, "dequantizeRows"));
    return exports;
}

}  // namespace layerskip

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return layerskip::init(env, exports); }

NODE_API_MODULE(layerskip_addon, InitAddon)
