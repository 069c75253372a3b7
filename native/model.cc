#include "model.h"
#include "error-codes.h"

#include "addon.h"
#include "common.h"

#include "ggml-cpu.h"
#include "ggml-rpc.h"
#include "gguf.h"
#include "llama-model.h"  // llama_model::dev_layer(): which device holds each layer

#include <sys/stat.h>

#include <atomic>
#include <memory>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace layerskip {

// How a model is spread over RPC servers, prepared on the JavaScript thread, applied on the worker
struct RpcPlan {
    std::vector<std::string> endpoints;
    std::vector<float> split;
    bool output_local = true;
    uint32_t timeout_ms = 30000;
    uint32_t failures_at_load = 0;
    std::vector<ggml_backend_dev_t> devices;  // null-terminated for llama_model_params
    std::vector<float> tensor_split;
    llama_model_tensor_buft_override overrides[4] = {};  // null-terminated

    // connects to every server (throws with the reason when one cannot be reached) and fills params
    void apply(const std::string & path, llama_model_params & params) {
        const int32_t n_layer = block_count(path);  // 0: unknown
        ggml_backend_rpc_set_timeout(timeout_ms);
        for (const auto & e : endpoints) {
            const uint32_t before = ggml_backend_rpc_failures();
            ggml_backend_reg_t reg = ggml_backend_rpc_add_server(e.c_str());
            if (!reg || ggml_backend_rpc_failures() != before) {
                std::string why = take_last_llama_error();
                throw std::runtime_error("cannot use RPC server " + e + (why.empty() ? "" : ": " + why));
            }
            for (size_t i = 0; i < ggml_backend_reg_dev_count(reg); ++i) devices.push_back(ggml_backend_reg_dev_get(reg, i));
        }
        failures_at_load = ggml_backend_rpc_failures();
        devices.push_back(nullptr);
        params.devices = devices.data();
        const size_t n_dev = devices.size() - 1;
        if (!split.empty() && split.size() != n_dev) {
            throw std::runtime_error("tensorSplit has " + std::to_string(split.size()) + " values for " + std::to_string(n_dev) + " RPC devices");
        }
        // llama.cpp spreads the offloaded layers AND the output head (the last "layer") by the split;
        // with the head kept local its slot goes to the last device, so the layers split as asked
        // (evenly by default) instead of the last device getting only the head
        const int32_t remote = params.n_gpu_layers < 0 || n_layer == 0 ? n_layer : std::min(params.n_gpu_layers, n_layer);
        if (remote > 0 && (output_local || !split.empty())) {
            std::vector<double> share(n_dev, split.empty() ? 1.0 : 0.0);
            double sum = 0;
            for (size_t i = 0; i < n_dev; ++i) sum += (share[i] = split.empty() ? 1.0 : split[i]);
            tensor_split.assign(llama_max_devices(), 0.0f);
            for (size_t i = 0; i < n_dev; ++i) tensor_split[i] = (float)(share[i] / sum * remote);
            tensor_split[n_dev - 1] += 1.0f;  // the output head's slot
            params.tensor_split = tensor_split.data();
        }
        if (params.n_gpu_layers >= 0) params.n_gpu_layers += 1;  // llama.cpp counts the output as the last "layer"
        if (output_local) {
            overrides[0] = {"^output\\.weight$", ggml_backend_cpu_buffer_type()};
            overrides[1] = {"^output_norm\\.weight$", ggml_backend_cpu_buffer_type()};
            // a tied LM head is token_embd.weight duplicated onto the output's device: keep that copy here too
            overrides[2] = {"^token_embd\\.weight$", ggml_backend_cpu_buffer_type()};
            params.tensor_buft_overrides = overrides;
        }
    }

    // the layer split needs the block count before llama.cpp loads the file: gguf's own header reader
    static int32_t block_count(const std::string & path) {
        gguf_context * g = gguf_init_from_file(path.c_str(), {/*no_alloc =*/ true, /*ctx =*/ nullptr});
        if (!g) return 0;
        int32_t n = 0;
        const int64_t arch = gguf_find_key(g, "general.architecture");
        if (arch >= 0 && gguf_get_kv_type(g, arch) == GGUF_TYPE_STRING) {
            const int64_t k = gguf_find_key(g, (std::string(gguf_get_val_str(g, arch)) + ".block_count").c_str());
            if (k >= 0 && gguf_get_kv_type(g, k) == GGUF_TYPE_UINT32) n = (int32_t)gguf_get_val_u32(g, k);
        }
        gguf_free(g);
        return n;
    }
};

Napi::Function Model::define(Napi::Env env) {
    return DefineClass(env, "NativeModel", {
        InstanceMethod<&Model::guarded<&Model::info>>("info"),
        InstanceMethod<&Model::guarded<&Model::tokenize>>("tokenize"),
        InstanceMethod<&Model::guarded<&Model::tokenize_async>>("tokenizeAsync"),
        InstanceMethod<&Model::guarded<&Model::detokenize>>("detokenize"),
        InstanceMethod<&Model::guarded<&Model::token_piece>>("tokenPiece"),
        InstanceMethod<&Model::guarded<&Model::is_eog>>("isEog"),
        InstanceMethod<&Model::guarded<&Model::dispose>>("dispose"),
        InstanceMethod<&Model::guarded<&Model::layer_devices>>("layerDevices"),
        InstanceAccessor<&Model::disposed_getter>("disposed"),
    });
}

Model::Model(const Napi::CallbackInfo & info) : Napi::ObjectWrap<Model>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
        throw_type(info.Env(), "NativeModel cannot be constructed directly: use loadModel()");
    }
    model_ = info[0].As<Napi::External<llama_model>>().Data();
}

Model::~Model() { free_now(); }

void Model::free_now() {
    if (model_) {
        llama_model_free(model_);
        model_ = nullptr;
        release_free_memory();
    }
}

void Model::release() {
    if (--users_ == 0 && disposed_) free_now();
}

void Model::check_live(Napi::Env env, const char * what) const {
    if (disposed_) throw_error(env, std::string(what) + ": the model is disposed", codes::DISPOSED);
}

Model * Model::unwrap_live(Napi::Env env, Napi::Value value, const char * what) {
    auto * data = env.GetInstanceData<AddonData>();
    if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(data->model_ctor.Value())) {
        throw_type(env, std::string(what) + ": expected a native model");
    }
    Model * m = Model::Unwrap(value.As<Napi::Object>());
    m->check_live(env, what);
    return m;
}

Napi::Value Model::load(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw_type(env, "loadModel: path must be a string");
    std::string path = info[0].As<Napi::String>();
    Napi::Object opts = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);

    auto params = llama_model_default_params();
    params.n_gpu_layers = get_int(env, opts, "gpuLayers", -1, -1, 100000);

    // RPC servers (host:port): their devices hold the last `gpuLayers` layers; with `outputLocal`
    // the output norm and head stay on this machine (tensor override), so early exits never cross
    // the network. Connecting happens on the worker thread.
    auto rpc = std::make_shared<RpcPlan>();
    if (opts.Has("rpcServers") && opts.Get("rpcServers").IsArray()) {
        Napi::Array list = opts.Get("rpcServers").As<Napi::Array>();
        for (uint32_t i = 0; i < list.Length(); ++i) {
            if (!list.Get(i).IsString()) throw_type(env, "loadModel: rpcServers must be strings host:port");
            rpc->endpoints.push_back(list.Get(i).As<Napi::String>());
        }
        if (opts.Has("tensorSplit") && opts.Get("tensorSplit").IsArray()) {
            Napi::Array split = opts.Get("tensorSplit").As<Napi::Array>();
            for (uint32_t i = 0; i < split.Length(); ++i) rpc->split.push_back(split.Get(i).As<Napi::Number>().FloatValue());
        }
        rpc->output_local = get_bool(opts, "outputLocal", true);
        rpc->timeout_ms = (uint32_t)get_int(env, opts, "rpcTimeoutMs", 30000, 0, INT32_MAX);
        params.main_gpu = get_int(env, opts, "mainDevice", 0, 0, 1000);
    }
    params.load_mode = get_bool(opts, "mmap", true) ? LLAMA_LOAD_MODE_MMAP : LLAMA_LOAD_MODE_NONE;
    params.check_tensors = get_bool(opts, "checkTensors", false);

    // llama.cpp polls the progress callback while it reads tensors; false cancels the load
    auto cancelled = std::make_shared<std::atomic<bool>>(false);
    params.progress_callback = [](float, void * flag) { return !static_cast<std::atomic<bool> *>(flag)->load(); };
    params.progress_callback_user_data = cancelled.get();

    auto result = std::make_shared<llama_model *>(nullptr);
    Napi::Promise promise = PromiseWorker::run(env,
        [path, params, result, cancelled, rpc]() mutable {
            struct stat st;
            if (stat(path.c_str(), &st) != 0) throw std::runtime_error("model file not found: " + path);
            if (!S_ISREG(st.st_mode)) throw std::runtime_error("not a regular file: " + path);
            FILE * f = std::fopen(path.c_str(), "rb");
            if (!f) throw std::runtime_error("cannot open model file: " + path);
            char magic[4] = {0};
            size_t n = std::fread(magic, 1, 4, f);
            std::fclose(f);
            if (n != 4 || std::memcmp(magic, "GGUF", 4) != 0) {
                throw std::runtime_error("not a GGUF file (bad magic): " + path);
            }
            take_last_llama_error();
            if (!rpc->endpoints.empty()) rpc->apply(path, params);
            *result = llama_model_load_from_file(path.c_str(), params);
            if (!*result) {
                if (cancelled->load()) throw CodedError(codes::ABORTED, "loading " + path + " was aborted");
                std::string why = take_last_llama_error();
                throw std::runtime_error("failed to load model " + path + (why.empty() ? "" : ": " + why));
            }
        },
        [result, cancelled, rpc](Napi::Env env) -> Napi::Value {
            if (cancelled->load()) {  // cancelled after the last progress call: the model is not wanted
                llama_model_free(*result);
                throw CodedError(codes::ABORTED, "loading was aborted");
            }
            auto * data = env.GetInstanceData<AddonData>();
            try {
                Napi::Object m = data->model_ctor.New({Napi::External<llama_model>::New(env, *result)});
                Model * model = Model::Unwrap(m);
                model->rpc_ = !rpc->endpoints.empty();
                model->rpc_failures_at_load_ = rpc->failures_at_load;
                model->output_local_ = rpc->output_local;
                return m;
            } catch (...) {
                llama_model_free(*result);  // the wrapper did not take it: nothing else frees it
                throw;
            }
        });
    Napi::Object out = Napi::Object::New(env);
    out.Set("promise", promise);
    out.Set("cancel", Napi::Function::New(env, [cancelled](const Napi::CallbackInfo & ci) {
        cancelled->store(true);
        return ci.Env().Undefined();
    }));
    return out;
}

static std::string meta_string(const llama_model * model, const char * key) {
    std::vector<char> buf(256);
    int32_t n = llama_model_meta_val_str(model, key, buf.data(), buf.size());
    if (n < 0) return {};
    if ((size_t)n >= buf.size()) {
        buf.resize(n + 1);
        llama_model_meta_val_str(model, key, buf.data(), buf.size());
    }
    return std::string(buf.data());
}

Napi::Value Model::info(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_live(env, "info");
    const llama_vocab * v = vocab();
    Napi::Object o = Napi::Object::New(env);
    char desc[256];
    llama_model_desc(model_, desc, sizeof(desc));
    o.Set("architecture", meta_string(model_, "general.architecture"));
    o.Set("name", meta_string(model_, "general.name"));
    o.Set("description", std::string(desc));
    o.Set("layerCount", llama_model_n_layer(model_));
    o.Set("embeddingSize", llama_model_n_embd(model_));
    o.Set("headCount", llama_model_n_head(model_));
    o.Set("headCountKv", llama_model_n_head_kv(model_));
    o.Set("vocabularySize", llama_vocab_n_tokens(v));
    o.Set("trainContextLength", llama_model_n_ctx_train(model_));
    o.Set("slidingWindow", llama_model_n_swa(model_));
    o.Set("parameterCount", (double)llama_model_n_params(model_));
    o.Set("sizeBytes", (double)llama_model_size(model_));
    Napi::Object special = Napi::Object::New(env);
    special.Set("bos", llama_vocab_bos(v));
    special.Set("eos", llama_vocab_eos(v));
    special.Set("eot", llama_vocab_eot(v));
    special.Set("addBos", llama_vocab_get_add_bos(v));
    o.Set("specialTokens", special);
    const char * tmpl = llama_model_chat_template(model_, nullptr);
    o.Set("chatTemplate", tmpl ? Napi::Value(Napi::String::New(env, tmpl)) : env.Null());
    return o;
}

static std::vector<int32_t> tokenize_text(const llama_vocab * vocab, const std::string & text, bool add_special, bool parse_special) {
    if (text.size() >= INT32_MAX) throw std::runtime_error("tokenize: the text is longer than 2 GB");
    std::vector<llama_token> tokens(text.size() + 8);
    int32_t n = llama_tokenize(vocab, text.data(), (int32_t)text.size(), tokens.data(), (int32_t)tokens.size(), add_special, parse_special);
    if (n < 0) {
        tokens.resize(-(size_t)n);
        n = llama_tokenize(vocab, text.data(), (int32_t)text.size(), tokens.data(), (int32_t)tokens.size(), add_special, parse_special);
    }
    if (n < 0) throw std::runtime_error("tokenize failed");
    tokens.resize(n);
    return tokens;
}

Napi::Value Model::tokenize(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_live(env, "tokenize");
    if (info.Length() < 1 || !info[0].IsString()) throw_type(env, "tokenize: text must be a string");
    return to_js(env, tokenize_text(vocab(), info[0].As<Napi::String>(), info.Length() > 1 && info[1].ToBoolean(), info.Length() > 2 && info[2].ToBoolean()));
}

// tokenizeAsync(text, addSpecial, parseSpecial): the same on the libuv pool (a long prompt would
// hold the event loop for seconds); the weights stay alive until it settles
Napi::Value Model::tokenize_async(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_live(env, "tokenizeAsync");
    // a string, or its UTF-8 bytes (JavaScript encodes a long text in slices between event-loop turns)
    std::shared_ptr<std::string> text;
    if (info.Length() >= 1 && info[0].IsString()) {
        text = std::make_shared<std::string>(info[0].As<Napi::String>());
    } else if (info.Length() >= 1 && info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
        auto bytes = info[0].As<Napi::Uint8Array>();
        text = std::make_shared<std::string>((const char *)bytes.Data(), bytes.ElementLength());
    } else {
        throw_type(env, "tokenizeAsync: text must be a string or a Uint8Array of UTF-8");
    }
    const bool add_special = info.Length() > 1 && info[1].ToBoolean(), parse_special = info.Length() > 2 && info[2].ToBoolean();
    auto tokens = std::make_shared<std::vector<int32_t>>();
    const llama_vocab * v = vocab();
    retain();
    auto self = std::make_shared<Napi::ObjectReference>(Napi::Persistent(Value()));
    return PromiseWorker::run(env,
        [v, text, add_special, parse_special, tokens]() { *tokens = tokenize_text(v, *text, add_special, parse_special); },
        [tokens](Napi::Env env) -> Napi::Value { return to_js(env, *tokens); },
        [this, self]() { release(); });
}

static void check_tokens(Napi::Env env, const llama_vocab * v, const int32_t * t, size_t n, const char * what) {
    const int32_t n_vocab = llama_vocab_n_tokens(v);
    for (size_t i = 0; i < n; ++i) {
        if (t[i] < 0 || t[i] >= n_vocab) {
            throw_range(env, std::string(what) + ": token " + std::to_string(t[i]) + " at index " + std::to_string(i) +
                " is outside the vocabulary [0, " + std::to_string(n_vocab) + ")");
        }
    }
}

Napi::Value Model::detokenize(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_live(env, "detokenize");
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
        throw_type(env, "detokenize: tokens must be an Int32Array");
    }
    auto tokens = info[0].As<Napi::Int32Array>();
    bool special = info.Length() > 1 && info[1].ToBoolean();
    check_tokens(env, vocab(), tokens.Data(), tokens.ElementLength(), "detokenize");
    std::vector<char> buf(tokens.ElementLength() * 8 + 16);
    int32_t n = llama_detokenize(vocab(), tokens.Data(), (int32_t)tokens.ElementLength(), buf.data(), (int32_t)buf.size(), false, special);
    if (n < 0) {
        buf.resize(-n);
        n = llama_detokenize(vocab(), tokens.Data(), (int32_t)tokens.ElementLength(), buf.data(), (int32_t)buf.size(), false, special);
    }
    return Napi::String::New(env, buf.data(), n < 0 ? 0 : n);
}

// The bytes of one token (a UTF-8 character may span tokens, so the caller decodes a stream).
Napi::Value Model::token_piece(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_live(env, "tokenPiece");
    if (info.Length() < 1 || !info[0].IsNumber()) throw_type(env, "tokenPiece: token must be a number");
    int32_t t = info[0].As<Napi::Number>().Int32Value();
    bool special = info.Length() > 1 && info[1].ToBoolean();
    check_tokens(env, vocab(), &t, 1, "tokenPiece");
    char buf[256];
    int32_t n = llama_token_to_piece(vocab(), t, buf, sizeof(buf), 0, special);
    std::vector<char> big;
    const char * src = buf;
    if (n < 0) {
        big.resize(-n);
        n = llama_token_to_piece(vocab(), t, big.data(), (int32_t)big.size(), 0, special);
        src = big.data();
    }
    if (n < 0) n = 0;
    return Napi::Buffer<char>::Copy(env, src, n);
}

Napi::Value Model::is_eog(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_live(env, "isEog");
    int32_t t = info[0].As<Napi::Number>().Int32Value();
    return Napi::Boolean::New(env, llama_vocab_is_eog(vocab(), t));
}

Napi::Value Model::dispose(const Napi::CallbackInfo & info) {
    if (!disposed_) {
        disposed_ = true;
        if (users_ == 0) free_now();
    }
    return info.Env().Undefined();
}

Napi::Value Model::disposed_getter(const Napi::CallbackInfo & info) {
    return Napi::Boolean::New(info.Env(), disposed_);
}

// layerDevices(): the device of each layer ("CPU" or an RPC device's name with its endpoint), and of the output head
Napi::Value Model::layer_devices(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_live(env, "layerDevices");
    auto name = [](ggml_backend_dev_t dev) -> std::string {
        if (!dev) return "CPU";
        std::string n = ggml_backend_dev_name(dev), d = ggml_backend_dev_description(dev);
        return n == d || d.empty() ? n : n + " " + d;
    };
    const int32_t n_layer = llama_model_n_layer(model_);
    Napi::Array layers = Napi::Array::New(env, n_layer);
    for (int32_t il = 0; il < n_layer; ++il) layers.Set((uint32_t)il, name(model_->dev_layer(il)));
    Napi::Object o = Napi::Object::New(env);
    o.Set("layers", layers);
    o.Set("output", output_local_ || !rpc_ ? std::string("CPU") : name(model_->dev_output()));
    return o;
}

// a lost RPC server since this model loaded (its later results are not to be trusted)
bool Model::rpc_failed() const {
    return rpc_ && ggml_backend_rpc_failures() != rpc_failures_at_load_;
}

// rpcServe(host, port, threads, cacheDir?, device?): runs llama.cpp's RPC server on this thread and
// returns only if it cannot start (a port in use). For a process of its own (`layerskip rpc-server`).
// It serves `device` (a ggml device name, e.g. "CUDA0"), by default the first GPU, else the CPU.
Napi::Value Model::rpc_serve(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber()) {
        throw_type(env, "rpcServe(host, port, threads, cacheDir?, device?)");
    }
    const std::string endpoint = info[0].As<Napi::String>().Utf8Value() + ":" + std::to_string(info[1].As<Napi::Number>().Int32Value());
    const size_t threads = (size_t)info[2].As<Napi::Number>().Int32Value();
    std::string cache = info.Length() > 3 && info[3].IsString() ? info[3].As<Napi::String>().Utf8Value() : "";
    std::string wanted = info.Length() > 4 && info[4].IsString() ? info[4].As<Napi::String>().Utf8Value() : "";
    ggml_backend_dev_t dev = nullptr;
    std::string names;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        const std::string name = ggml_backend_dev_name(d);
        names += (names.empty() ? "" : ", ") + name;
        if (!wanted.empty() ? name == wanted : (!dev && ggml_backend_dev_type(d) == GGML_BACKEND_DEVICE_TYPE_GPU)) dev = d;
    }
    if (!wanted.empty() && !dev) throw_range(env, "rpcServe: no device " + wanted + " (devices: " + names + ")");
    if (!dev) dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    ggml_backend_rpc_start_server(endpoint.c_str(), cache.empty() ? nullptr : cache.c_str(), threads, 1, &dev);
    throw_error(env, "the RPC server could not start on " + endpoint + " (is the port in use?)", codes::RPC_SERVER);
}

Napi::Value Model::quantize(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsString()) {
        throw_type(env, "quantizeModel: (source, destination, type) must be strings");
    }
    std::string src = info[0].As<Napi::String>(), dst = info[1].As<Napi::String>(), type = info[2].As<Napi::String>();
    int32_t threads = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Int32Value() : 0;
    static const std::pair<const char *, llama_ftype> types[] = {
        {"F32", LLAMA_FTYPE_ALL_F32}, {"F16", LLAMA_FTYPE_MOSTLY_F16}, {"BF16", LLAMA_FTYPE_MOSTLY_BF16},
        {"Q8_0", LLAMA_FTYPE_MOSTLY_Q8_0}, {"Q4_0", LLAMA_FTYPE_MOSTLY_Q4_0}, {"Q4_1", LLAMA_FTYPE_MOSTLY_Q4_1},
        {"Q5_0", LLAMA_FTYPE_MOSTLY_Q5_0}, {"Q5_1", LLAMA_FTYPE_MOSTLY_Q5_1},
        {"Q2_K", LLAMA_FTYPE_MOSTLY_Q2_K}, {"Q3_K_M", LLAMA_FTYPE_MOSTLY_Q3_K_M},
        {"Q4_K_S", LLAMA_FTYPE_MOSTLY_Q4_K_S}, {"Q4_K_M", LLAMA_FTYPE_MOSTLY_Q4_K_M},
        {"Q5_K_S", LLAMA_FTYPE_MOSTLY_Q5_K_S}, {"Q5_K_M", LLAMA_FTYPE_MOSTLY_Q5_K_M}, {"Q6_K", LLAMA_FTYPE_MOSTLY_Q6_K},
    };
    llama_ftype ftype = LLAMA_FTYPE_GUESSED;
    std::string known;
    for (auto & [name, ft] : types) {
        if (type == name) ftype = ft;
        known += known.empty() ? name : std::string(", ") + name;
    }
    if (ftype == LLAMA_FTYPE_GUESSED) throw_range(env, "quantizeModel: unknown type " + type + " (known: " + known + ")");
    return PromiseWorker::run(env,
        [src, dst, ftype, threads]() {
            struct stat st;
            if (stat(src.c_str(), &st) != 0) throw std::runtime_error("model file not found: " + src);
            auto qp = llama_model_quantize_default_params();
            qp.ftype = ftype;
            qp.nthread = threads;
            take_last_llama_error();
            if (llama_model_quantize(src.c_str(), dst.c_str(), &qp) != 0) {
                std::string why = take_last_llama_error();
                throw std::runtime_error("quantization of " + src + " failed" + (why.empty() ? "" : ": " + why));
            }
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
}

}  // namespace layerskip
