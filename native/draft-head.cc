// setDraftHead: installs a fitted draft head (adapter and draft vocabulary) on the early exit
// through the patch's llama_set_exit_head.
#include "context.h"
#include "llama-ext.h"

#include <stdexcept>
#include <string>

namespace layerskip {


// setDraftHead({ adapter?: Float32Array (n_embd x n_embd, row-major), adapterType?: number (ggml type
//                it is stored as: F32, F16 (default) or Q8_0), bias?: Float32Array (n_embd),
//                tokenIds?: Int32Array, rows?: Uint8Array (those tokens' LM-head rows), rowType?: number })
// Installs (or with no parts, removes) the early exit's draft head; see llama_set_exit_head.
Napi::Value Context::set_draft_head(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_usable(env, "setDraftHead");
    if (info.Length() < 1 || !info[0].IsObject()) throw_type(env, "setDraftHead: options object expected");
    Napi::Object o = info[0].As<Napi::Object>();
    struct HeadJob {
        std::vector<float> adapter, bias;
        std::vector<int32_t> ids;
        std::vector<uint8_t> rows;
        int32_t type = -1;
        int32_t adapter_type = GGML_TYPE_F16;
    };
    auto job = std::make_shared<HeadJob>();
    auto floats = [&](const char * key, size_t n, std::vector<float> & out) {
        Napi::Value v = o.Get(key);
        if (v.IsUndefined() || v.IsNull()) return;
        if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
            throw_type(env, std::string("setDraftHead: ") + key + " must be a Float32Array");
        }
        auto a = v.As<Napi::Float32Array>();
        if (a.ElementLength() != n) {
            throw_range(env, std::string("setDraftHead: ") + key + " has " + std::to_string(a.ElementLength()) + " values, expected " + std::to_string(n));
        }
        out.assign(a.Data(), a.Data() + n);
    };
    floats("adapter", (size_t)n_embd_ * n_embd_, job->adapter);
    floats("bias", (size_t)n_embd_, job->bias);
    job->adapter_type = get_int(env, o, "adapterType", GGML_TYPE_F16, 0, GGML_TYPE_COUNT - 1);
    Napi::Value iv = o.Get("tokenIds");
    if (!iv.IsUndefined() && !iv.IsNull()) {
        if (!iv.IsTypedArray() || iv.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) throw_type(env, "setDraftHead: tokenIds must be an Int32Array");
        auto ia = iv.As<Napi::Int32Array>();
        if (ia.ElementLength() == 0) throw_range(env, "setDraftHead: the draft vocabulary is empty");
        job->ids.assign(ia.Data(), ia.Data() + ia.ElementLength());
        for (int32_t t : job->ids) {
            if (t < 0 || t >= n_vocab_) throw_range(env, "setDraftHead: token id " + std::to_string(t) + " is outside the vocabulary [0, " + std::to_string(n_vocab_) + ")");
        }
        job->type = get_int(env, o, "rowType", -1, 0, GGML_TYPE_COUNT - 1);
        Napi::Value rv = o.Get("rows");
        if (!rv.IsTypedArray() || rv.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) throw_type(env, "setDraftHead: rows must be a Uint8Array");
        auto ra = rv.As<Napi::Uint8Array>();
        const size_t want = job->ids.size() * ggml_row_size((ggml_type)job->type, n_embd_);
        if (ggml_blck_size((ggml_type)job->type) <= 0 || ra.ElementLength() != want) {
            throw_range(env, "setDraftHead: rows has " + std::to_string(ra.ElementLength()) + " bytes, expected " + std::to_string(want) +
                " (" + std::to_string(job->ids.size()) + " rows of type " + ggml_type_name((ggml_type)job->type) + ")");
        }
        job->rows.assign(ra.Data(), ra.Data() + ra.ElementLength());
    }

    return run_busy(env,
        [this, job]() {
            take_last_llama_error();
            const int32_t ret = llama_set_exit_head(ctx_, job->adapter.empty() ? nullptr : job->adapter.data(),
                job->bias.empty() ? nullptr : job->bias.data(), (ggml_type)job->adapter_type, job->rows.empty() ? nullptr : job->rows.data(),
                (int32_t)job->ids.size(), job->type < 0 ? GGML_TYPE_F32 : (ggml_type)job->type);
            if (ret != 0) {
                draft_vocab_.clear();
                throw std::runtime_error("failed to install the draft head: " + take_last_llama_error());
            }
            draft_vocab_ = job->ids;
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
}

}  // namespace layerskip
