// Entry point of the layerskip N-API module: initializes llama.cpp's backends once per process
// and exports the native Model / Context classes plus the free functions.
#include <napi.h>

#include "adapter-trainer.h"
#include "error-codes.h"
#include "addon.h"
#include "common.h"
#include "context.h"
#include "grammar.h"
#include "model.h"
#include "trainer.h"

#include "llama.h"
#include "ggml-backend.h"

#include <mutex>
#include <string>
#include <vector>

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
    // a local GPU. Not llama_supports_gpu_offload(): it is also true for any build with the RPC
    // backend, which made CPU-only builds default to flash attention (F16 casts of the whole KV
    // cache in every layer: stories260K decoded at half speed)
    o.Set("gpuOffload", ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_GPU) != nullptr ||
                        ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_IGPU) != nullptr);
    return o;
}

// chatApplyBuiltinTemplate(template, messages: { role, content }[], addAssistant): llama.cpp's own
// renderer (llama_chat_apply_template: a fixed list of known templates, no Jinja). The library renders
// with Jinja; this is the reference its tests compare with. Throws for a template it does not know.
static Napi::Value chat_apply_builtin_template(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsString() || !info[1].IsArray() || !info[2].IsBoolean()) {
        throw_type(env, "chatApplyBuiltinTemplate(template, messages, addAssistant)");
    }
    std::string tmpl = info[0].As<Napi::String>();
    Napi::Array list = info[1].As<Napi::Array>();
    std::vector<std::string> texts;  // roles and contents, alive while llama.cpp reads them
    texts.reserve(list.Length() * 2);
    size_t total = tmpl.size();
    for (uint32_t i = 0; i < list.Length(); ++i) {
        Napi::Value m = list.Get(i);
        if (!m.IsObject() || !m.As<Napi::Object>().Get("role").IsString() || !m.As<Napi::Object>().Get("content").IsString()) {
            throw_type(env, "chatApplyBuiltinTemplate: message " + std::to_string(i) + " needs string role and content");
        }
        texts.push_back(m.As<Napi::Object>().Get("role").As<Napi::String>());
        texts.push_back(m.As<Napi::Object>().Get("content").As<Napi::String>());
        total += texts[texts.size() - 1].size() + texts[texts.size() - 2].size();
    }
    std::vector<llama_chat_message> chat(list.Length());
    for (size_t i = 0; i < chat.size(); ++i) chat[i] = {texts[2 * i].c_str(), texts[2 * i + 1].c_str()};
    std::vector<char> buf(2 * total + 256);
    int32_t n = llama_chat_apply_template(tmpl.c_str(), chat.data(), chat.size(), info[2].As<Napi::Boolean>(), buf.data(), (int32_t)buf.size());
    if (n > (int32_t)buf.size()) {
        buf.resize(n);
        n = llama_chat_apply_template(tmpl.c_str(), chat.data(), chat.size(), info[2].As<Napi::Boolean>(), buf.data(), (int32_t)buf.size());
    }
    if (n < 0) throw_error(env, "llama.cpp's built-in renderer does not support this chat template", codes::UNSUPPORTED_TEMPLATE);
    return Napi::String::New(env, buf.data(), n);
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
    Napi::Function grammar = Grammar::define(env);
    data->grammar_ctor = Napi::Persistent(grammar);
    Napi::Function trainer = Trainer::define(env);
    data->trainer_ctor = Napi::Persistent(trainer);
    env.SetInstanceData<AddonData>(data);

    exports.Set("NativeModel", model);
    exports.Set("NativeContext", context);
    exports.Set("NativeTrainer", trainer);
    exports.Set("createTrainer", Napi::Function::New<Trainer::create>(env, "createTrainer"));
    exports.Set("loadModel", Napi::Function::New<Model::load>(env, "loadModel"));
    exports.Set("createContext", Napi::Function::New<Context::create>(env, "createContext"));
    exports.Set("NativeGrammar", grammar);
    exports.Set("createGrammar", Napi::Function::New<Grammar::create>(env, "createGrammar"));
    exports.Set("jsonSchemaToGrammar", Napi::Function::New<Grammar::from_json_schema>(env, "jsonSchemaToGrammar"));
    exports.Set("quantizeModel", Napi::Function::New<Model::quantize>(env, "quantizeModel"));
    exports.Set("rpcServe", Napi::Function::New(env, [](const Napi::CallbackInfo & info) {
        return guard_call(info, [&] { return Model::rpc_serve(info); });
    }, "rpcServe"));
    exports.Set("systemInfo", Napi::Function::New<system_info>(env, "systemInfo"));
    exports.Set("trainExitAdapter", Napi::Function::New<train_exit_adapter>(env, "trainExitAdapter"));
    exports.Set("dequantizeRows", Napi::Function::New<dequantize_rows>(env, "dequantizeRows"));
    exports.Set("chatApplyBuiltinTemplate", Napi::Function::New(env, [](const Napi::CallbackInfo & info) {
        return guard_call(info, [&] { return chat_apply_builtin_template(info); });
    }, "chatApplyBuiltinTemplate"));
    return exports;
}

}  // namespace layerskip

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return layerskip::init(env, exports); }

NODE_API_MODULE(layerskip_addon, InitAddon)
