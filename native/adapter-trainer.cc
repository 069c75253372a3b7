// Refines an exit adapter (h' = W·h + b before the final norm and LM head) against the full
// model's next-token distributions with ggml's optimizer (ggml-opt, AdamW), on the CPU backend.
// The forward graph is the draft head's own: the adapter, then the model's tail exactly as
// llama.cpp's graph for its architecture applies it (lib/draft-head/base-weights.ts reads it):
//   x = W·h + b;  y = norm(x) * norm_weight (+ norm_bias);  logits = head · y
//   (+ output_bias) (* logit_factor) (then c · tanh(logits / c), final softcapping)
// and the loss is the cross-entropy to the full model's (draft-vocabulary) probabilities, i.e. the
// KL divergence up to a constant. Policy (data, vocabulary, step counts) lives in TypeScript.
// ggml has no backward pass for ggml_norm or ggml_tanh, so the graph builds them from ops that
// have one: LayerNorm = rms_norm(x − mean(x)) (the same value: var is the mean square of x − mean),
// and tanh(z) = 2·sigmoid(2z) − 1 with sigmoid(u) = exp(−softplus(−u)) (no overflow: the
// exponent is never positive).
#include "adapter-trainer.h"

#include "common.h"

#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml-opt.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace layerskip {

namespace {

struct TrainJob {
    int64_t n_embd = 0, n_vocab = 0, n_rows = 0, batch = 0, steps = 0;
    int32_t threads = 1;
    float eps = 1e-5f, learning_rate = 1e-3f;
    bool layer_norm = false;          // LayerNorm (else RMS norm)
    float logit_factor = 0.0f;        // 0: none
    float softcap = 0.0f;             // 0: none
    std::vector<float> hidden;   // [n_rows][n_embd]
    std::vector<float> targets;  // [n_rows][n_vocab], each row a probability distribution
    std::vector<float> head;     // [n_vocab][n_embd], F32 rows of the (draft-vocabulary) LM head
    std::vector<float> norm;     // [n_embd]
    std::vector<float> norm_b;   // [n_embd] or empty
    std::vector<float> out_b;    // [n_vocab] or empty: the output bias's draft-vocabulary rows
    std::vector<float> w, b;     // in: the start (ridge) solution; out: the refined one
    std::vector<double> losses;  // mean training loss per reported chunk of steps
};

struct Progress {
    int64_t step;
    double loss;
};

std::vector<float> get_floats(Napi::Env env, const Napi::Object & o, const char * key, size_t n) {
    Napi::Value v = o.Get(key);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
        throw_type(env, std::string("trainExitAdapter: ") + key + " must be a Float32Array");
    }
    auto a = v.As<Napi::Float32Array>();
    if (a.ElementLength() != n) {
        throw_range(env, std::string("trainExitAdapter: ") + key + " has " + std::to_string(a.ElementLength()) + " values, expected " + std::to_string(n));
    }
    return std::vector<float>(a.Data(), a.Data() + n);
}

void train(TrainJob & job, const std::function<void(const Progress &)> & report) {
    const int64_t D = job.n_embd, V = job.n_vocab, B = job.batch;
    const int64_t n_data = job.n_rows - job.n_rows % B;  // whole batches

    ggml_backend_t backend = ggml_backend_cpu_init();
    if (!backend) throw std::runtime_error("no CPU backend");
    std::unique_ptr<ggml_backend, decltype(&ggml_backend_free)> backend_guard(backend, ggml_backend_free);
    ggml_backend_cpu_set_n_threads(backend, job.threads);

    // parameters and inputs: allocated once
    ggml_init_params sp = { 8 * ggml_tensor_overhead(), nullptr, true };
    std::unique_ptr<ggml_context, decltype(&ggml_free)> ctx_static(ggml_init(sp), ggml_free);
    ggml_tensor * inputs = ggml_new_tensor_2d(ctx_static.get(), GGML_TYPE_F32, D, B);
    ggml_tensor * w = ggml_new_tensor_2d(ctx_static.get(), GGML_TYPE_F32, D, D);
    ggml_tensor * b = ggml_new_tensor_1d(ctx_static.get(), GGML_TYPE_F32, D);
    ggml_tensor * norm = ggml_new_tensor_1d(ctx_static.get(), GGML_TYPE_F32, D);
    ggml_tensor * head = ggml_new_tensor_2d(ctx_static.get(), GGML_TYPE_F32, D, V);
    ggml_tensor * norm_b = job.norm_b.empty() ? nullptr : ggml_new_tensor_1d(ctx_static.get(), GGML_TYPE_F32, D);
    ggml_tensor * out_b = job.out_b.empty() ? nullptr : ggml_new_tensor_1d(ctx_static.get(), GGML_TYPE_F32, V);
    ggml_set_name(inputs, "inputs");
    ggml_set_input(inputs);
    ggml_set_param(w);
    ggml_set_param(b);
    std::unique_ptr<ggml_backend_buffer, decltype(&ggml_backend_buffer_free)> buf(
        ggml_backend_alloc_ctx_tensors(ctx_static.get(), backend), ggml_backend_buffer_free);
    if (!buf) throw std::runtime_error("failed to allocate the training tensors");
    ggml_backend_tensor_set(w, job.w.data(), 0, ggml_nbytes(w));
    ggml_backend_tensor_set(b, job.b.data(), 0, ggml_nbytes(b));
    ggml_backend_tensor_set(norm, job.norm.data(), 0, ggml_nbytes(norm));
    ggml_backend_tensor_set(head, job.head.data(), 0, ggml_nbytes(head));
    if (norm_b) ggml_backend_tensor_set(norm_b, job.norm_b.data(), 0, ggml_nbytes(norm_b));
    if (out_b) ggml_backend_tensor_set(out_b, job.out_b.data(), 0, ggml_nbytes(out_b));

    // the forward graph (ggml-opt adds the loss, the backward pass and the AdamW step)
    // (the backward graph and the optimizer steps are built in this context too)
    ggml_init_params cp = { 512 * ggml_tensor_overhead() + 3 * ggml_graph_overhead_custom(GGML_DEFAULT_GRAPH_SIZE, true), nullptr, true };
    std::unique_ptr<ggml_context, decltype(&ggml_free)> ctx_compute(ggml_init(cp), ggml_free);
    ggml_context * ctx = ctx_compute.get();
    ggml_tensor * x = ggml_add(ctx, ggml_mul_mat(ctx, w, inputs), b);  // [D, B]
    if (job.layer_norm) {
        // llama.cpp: ggml_norm(x, eps) (LLM_NORM); here as rms_norm(x − mean(x), eps)
        ggml_tensor * mean = ggml_scale(ctx, ggml_sum_rows(ctx, x), 1.0f / (float) D);  // [1, B]
        x = ggml_sub(ctx, x, ggml_repeat(ctx, mean, x));
    }
    x = ggml_mul(ctx, ggml_rms_norm(ctx, x, job.eps), norm);
    if (norm_b) x = ggml_add(ctx, x, norm_b);
    ggml_tensor * logits = ggml_mul_mat(ctx, head, x);  // [V, B]
    if (out_b) logits = ggml_add(ctx, logits, out_b);
    if (job.logit_factor != 0.0f) logits = ggml_scale(ctx, logits, job.logit_factor);
    if (job.softcap != 0.0f) {
        // c · tanh(l / c) = 2c · sigmoid(2l / c) − c, sigmoid(u) = exp(−softplus(−u))
        const float c = job.softcap;
        ggml_tensor * t = ggml_softplus(ctx, ggml_scale(ctx, logits, -2.0f / c));
        t = ggml_exp(ctx, ggml_scale(ctx, t, -1.0f));
        logits = ggml_scale_bias(ctx, t, 2.0f * c, -c);
    }
    ggml_set_name(logits, "logits");

    ggml_backend_t backends[1] = { backend };
    std::unique_ptr<ggml_backend_sched, decltype(&ggml_backend_sched_free)> sched(
        ggml_backend_sched_new(backends, nullptr, 1, GGML_DEFAULT_GRAPH_SIZE, false, true), ggml_backend_sched_free);

    ggml_opt_optimizer_params opt_pars = ggml_opt_get_default_optimizer_params(nullptr);
    opt_pars.adamw.alpha = job.learning_rate;
    opt_pars.adamw.wd = 0.0f;
    ggml_opt_params params = ggml_opt_default_params(sched.get(), GGML_OPT_LOSS_TYPE_CROSS_ENTROPY);
    params.ctx_compute = ctx_compute.get();
    params.inputs = inputs;
    params.outputs = logits;
    params.optimizer = GGML_OPT_OPTIMIZER_TYPE_ADAMW;
    params.get_opt_pars = ggml_opt_get_constant_optimizer_params;
    params.get_opt_pars_ud = &opt_pars;
    std::unique_ptr<ggml_opt_context, decltype(&ggml_opt_free)> opt(ggml_opt_init(params), ggml_opt_free);

    std::unique_ptr<ggml_opt_dataset, decltype(&ggml_opt_dataset_free)> data(
        ggml_opt_dataset_init(GGML_TYPE_F32, GGML_TYPE_F32, D, V, n_data, 1), ggml_opt_dataset_free);
    std::memcpy(ggml_opt_dataset_data(data.get())->data, job.hidden.data(), (size_t)n_data * D * sizeof(float));
    std::memcpy(ggml_opt_dataset_labels(data.get())->data, job.targets.data(), (size_t)n_data * V * sizeof(float));
    job.hidden.clear();
    job.hidden.shrink_to_fit();
    job.targets.clear();
    job.targets.shrink_to_fit();

    std::unique_ptr<ggml_opt_result, decltype(&ggml_opt_result_free)> result(ggml_opt_result_init(), ggml_opt_result_free);
    const int64_t n_batches = n_data / B;
    const int64_t report_every = std::max<int64_t>(1, job.steps / 100);
    for (int64_t step = 0; step < job.steps; ++step) {
        const int64_t ibatch = step % n_batches;
        if (ibatch == 0 && n_batches > 1) ggml_opt_dataset_shuffle(opt.get(), data.get(), -1);
        ggml_opt_alloc(opt.get(), /*backward =*/ true);
        ggml_opt_dataset_get_batch(data.get(), ggml_opt_inputs(opt.get()), ggml_opt_labels(opt.get()), ibatch);
        ggml_opt_eval(opt.get(), result.get());
        if ((step + 1) % report_every == 0 || step + 1 == job.steps) {
            double loss = 0, unc = 0;
            ggml_opt_result_loss(result.get(), &loss, &unc);
            ggml_opt_result_reset(result.get());
            job.losses.push_back(loss);
            report({ step + 1, loss });
        }
    }
    ggml_backend_tensor_get(w, job.w.data(), 0, ggml_nbytes(w));
    ggml_backend_tensor_get(b, job.b.data(), 0, ggml_nbytes(b));
}

}  // namespace

// trainExitAdapter({ hidden, targets, head, tail, adapter, bias, embeddingSize, vocabularySize,
//                    steps, batchSize, learningRate, threads }, onProgress?(step, loss))
//   tail: { norm: 'rms' | 'layer', normWeight, normBias?, eps, outputBias?, logitFactor?, finalSoftcap? }
//   (validated in TypeScript, trainerTail(); checked here only as far as memory safety needs)
//   => Promise<{ adapter, bias, losses }>
Napi::Value train_exit_adapter(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw_type(env, "trainExitAdapter: options object expected");
    Napi::Object o = info[0].As<Napi::Object>();
    auto job = std::make_shared<TrainJob>();
    job->n_embd = get_int(env, o, "embeddingSize", 0, 1, 1 << 16);
    job->n_vocab = get_int(env, o, "vocabularySize", 0, 1, 1 << 24);
    job->steps = get_int(env, o, "steps", 0, 1, 1 << 24);
    job->batch = get_int(env, o, "batchSize", 0, 1, 1 << 20);
    job->threads = get_int(env, o, "threads", 1, 1, 512);
    if (!o.Get("learningRate").IsNumber()) throw_type(env, "trainExitAdapter: learningRate must be a number");
    job->learning_rate = o.Get("learningRate").As<Napi::Number>().FloatValue();
    if (!(job->learning_rate > 0)) throw_range(env, "trainExitAdapter: learningRate must be positive");
    if (!o.Get("tail").IsObject()) throw_type(env, "trainExitAdapter: tail must be an object");
    Napi::Object tail = o.Get("tail").As<Napi::Object>();
    const std::string norm_kind = tail.Get("norm").IsString() ? tail.Get("norm").As<Napi::String>().Utf8Value() : "";
    if (norm_kind != "rms" && norm_kind != "layer") throw_range(env, "trainExitAdapter: tail.norm must be 'rms' or 'layer'");
    job->layer_norm = norm_kind == "layer";
    auto tail_float = [&](const char * key, bool required) -> float {
        Napi::Value v = tail.Get(key);
        if (v.IsUndefined() && !required) return 0.0f;
        if (!v.IsNumber()) throw_type(env, std::string("trainExitAdapter: tail.") + key + " must be a number");
        const float f = v.As<Napi::Number>().FloatValue();
        if (!(f > 0) || !std::isfinite(f)) throw_range(env, std::string("trainExitAdapter: tail.") + key + " must be positive");
        return f;
    };
    job->eps = tail_float("eps", true);
    job->logit_factor = tail_float("logitFactor", false);
    job->softcap = tail_float("finalSoftcap", false);
    const size_t D = (size_t)job->n_embd, V = (size_t)job->n_vocab;
    Napi::Value hv = o.Get("hidden");
    if (!hv.IsTypedArray()) throw_type(env, "trainExitAdapter: hidden must be a Float32Array");
    const size_t n_values = hv.As<Napi::TypedArray>().ElementLength();
    if (n_values % D != 0) throw_range(env, "trainExitAdapter: hidden is not a whole number of rows");
    job->n_rows = (int64_t)(n_values / D);
    if (job->n_rows < job->batch) throw_range(env, "trainExitAdapter: fewer rows than one batch");
    job->hidden = get_floats(env, o, "hidden", n_values);
    job->targets = get_floats(env, o, "targets", (size_t)job->n_rows * V);
    job->head = get_floats(env, o, "head", V * D);
    job->norm = get_floats(env, tail, "normWeight", D);
    if (!tail.Get("normBias").IsUndefined()) {
        if (!job->layer_norm) throw_range(env, "trainExitAdapter: tail.normBias needs tail.norm 'layer'");
        job->norm_b = get_floats(env, tail, "normBias", D);
    }
    if (!tail.Get("outputBias").IsUndefined()) job->out_b = get_floats(env, tail, "outputBias", V);
    job->w = get_floats(env, o, "adapter", D * D);
    job->b = get_floats(env, o, "bias", D);

    // progress goes back to JavaScript through a thread-safe function (never blocks the trainer)
    std::shared_ptr<Napi::ThreadSafeFunction> tsfn;
    if (info.Length() > 1 && info[1].IsFunction()) {
        tsfn = std::make_shared<Napi::ThreadSafeFunction>(
            Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "layerskip.trainExitAdapter", 0, 1));
    }
    return PromiseWorker::run(env,
        [job, tsfn]() {
            auto report = [&](const Progress & p) {
                if (!tsfn) return;
                auto * copy = new Progress(p);
                if (tsfn->NonBlockingCall(copy, [](Napi::Env env, Napi::Function cb, Progress * p) {
                        cb.Call({ Napi::Number::New(env, (double)p->step), Napi::Number::New(env, p->loss) });
                        delete p;
                    }) != napi_ok) {
                    delete copy;
                }
            };
            try {
                train(*job, report);
            } catch (...) {
                if (tsfn) tsfn->Release();
                throw;
            }
            if (tsfn) tsfn->Release();
        },
        [job](Napi::Env env) -> Napi::Value {
            Napi::Object r = Napi::Object::New(env);
            r.Set("adapter", to_js(env, job->w));
            r.Set("bias", to_js(env, job->b));
            r.Set("losses", to_js(env, job->losses));
            return r;
        });
}

// dequantizeRows(rows: Uint8Array, type: number, rowLength: number) => Float32Array
// Rows of a tensor in its GGUF type, to F32 (ggml's own conversion).
Napi::Value dequantize_rows(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
        !info[1].IsNumber() || !info[2].IsNumber()) {
        throw_type(env, "dequantizeRows(rows: Uint8Array, type: number, rowLength: number)");
    }
    auto rows = info[0].As<Napi::Uint8Array>();
    const int32_t type = info[1].As<Napi::Number>().Int32Value();
    const int64_t row_len = info[2].As<Napi::Number>().Int64Value();
    if (type < 0 || type >= GGML_TYPE_COUNT || ggml_blck_size((ggml_type)type) <= 0 || row_len <= 0 || row_len % ggml_blck_size((ggml_type)type) != 0) {
        throw_range(env, "dequantizeRows: unsupported type or row length");
    }
    const auto * traits = ggml_get_type_traits((ggml_type)type);
    const size_t row_bytes = ggml_row_size((ggml_type)type, row_len);
    if (!traits->to_float && type != GGML_TYPE_F32) throw_range(env, std::string("dequantizeRows: no conversion for ") + ggml_type_name((ggml_type)type));
    if (rows.ElementLength() % row_bytes != 0) throw_range(env, "dequantizeRows: not a whole number of rows");
    const size_t n_rows = rows.ElementLength() / row_bytes;
    auto out = Napi::Float32Array::New(env, n_rows * row_len);
    for (size_t r = 0; r < n_rows; ++r) {
        const uint8_t * src = rows.Data() + r * row_bytes;
        float * dst = out.Data() + r * row_len;
        if (type == GGML_TYPE_F32) std::memcpy(dst, src, row_bytes);
        else traits->to_float(src, dst, row_len);
    }
    return out;
}

}  // namespace layerskip
