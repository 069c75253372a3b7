// Trainer: the addon side of LayerSkip training. The patch builds the training graph and steps
// ggml-opt (llama_layerskip_train_*); this file moves a job of steps (their tokens and per-step
// constants, chosen in TypeScript) onto the libuv pool, reports each step through a thread-safe
// function, stops between steps on abort(), and saves the trained weights with llama.cpp's saver.
// Options were validated in TypeScript; the checks here only keep bad calls from reaching C.
#include "trainer.h"
#include "error-codes.h"

#include "addon.h"
#include "ggml.h"
#include "llama-ext.h"

#include <cstdio>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace layerskip {

namespace {

struct RunJob {
    int32_t steps = 0, n_layer = 0, n_seq = 0, n_ctx = 0;
    bool train = true, counts = false;
    std::vector<int32_t> tokens;  // [steps][n_seq][n_ctx + 1]
    std::vector<float> weights;   // [steps][n_layer]
    std::vector<float> keep;      // [steps][n_layer][n_seq]
    std::vector<float> lr;        // [steps]
    std::vector<float> ce;        // out: [steps][n_layer]
    std::vector<int32_t> correct, agree;  // out (counts): [steps][n_layer]
    int32_t done = 0;
    double ms = 0;
};

struct StepReport {
    int32_t step;
    std::vector<float> ce;
};

template <typename A, typename T>
std::vector<T> copy_array(Napi::Env env, const Napi::Object & o, const char * key, size_t n, napi_typedarray_type type) {
    Napi::Value v = o.Get(key);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) throw_type(env, std::string("trainer.run: ") + key + " has the wrong type");
    auto a = v.As<A>();
    if (a.ElementLength() != n) {
        throw_range(env, std::string("trainer.run: ") + key + " has " + std::to_string(a.ElementLength()) + " values, expected " + std::to_string(n));
    }
    return std::vector<T>(a.Data(), a.Data() + n);
}

}  // namespace

Napi::Function Trainer::define(Napi::Env env) {
    return DefineClass(env, "NativeTrainer", {
        InstanceMethod<&Trainer::guarded<&Trainer::run>>("run"),
        InstanceMethod<&Trainer::guarded<&Trainer::save>>("save"),
        InstanceMethod<&Trainer::guarded<&Trainer::abort>>("abort"),
        InstanceMethod<&Trainer::guarded<&Trainer::dispose>>("dispose"),
    });
}

Trainer::Trainer(const Napi::CallbackInfo & info) : Napi::ObjectWrap<Trainer>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 3 || !info[0].IsObject() || !info[1].IsExternal() || !info[2].IsObject()) {
        throw_type(env, "NativeTrainer cannot be constructed directly: use createTrainer()");
    }
    model_ = Model::Unwrap(info[0].As<Napi::Object>());
    model_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
    model_->retain();
    trainer_ = info[1].As<Napi::External<llama_layerskip_trainer>>().Data();
    Napi::Object shape = info[2].As<Napi::Object>();
    n_layer_ = shape.Get("layers").As<Napi::Number>().Int32Value();
    n_ctx_ = shape.Get("contextSize").As<Napi::Number>().Int32Value();
    n_seq_ = shape.Get("sequences").As<Napi::Number>().Int32Value();
}

Trainer::~Trainer() {
    if (!busy_.load()) free_now();
}

void Trainer::free_now() {
    if (trainer_) {
        llama_layerskip_train_free(trainer_);
        trainer_ = nullptr;
        model_->release();
        model_ref_.Reset();
    }
}

// createTrainer(model, { contextSize, sequences, threads, beta1, beta2, eps, weightDecay, finalExitOnly, forwardOnly })
//   => Promise<NativeTrainer>; the model must be F32 and loaded without mmap
Napi::Value Trainer::create(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[1].IsObject()) throw_type(env, "createTrainer(model, options)");
    Model * model = Model::unwrap_live(env, info[0], "createTrainer");
    Napi::Object o = info[1].As<Napi::Object>();
    llama_layerskip_train_params p = llama_layerskip_train_default_params();
    p.n_ctx = get_int(env, o, "contextSize", p.n_ctx, 2, 1 << 16);
    p.n_seq = get_int(env, o, "sequences", p.n_seq, 1, 1 << 12);
    p.n_threads = get_int(env, o, "threads", p.n_threads, 1, 512);
    auto num = [&](const char * key, float & dst) {
        if (o.Has(key) && o.Get(key).IsNumber()) dst = o.Get(key).As<Napi::Number>().FloatValue();
    };
    num("beta1", p.adam_beta1);
    num("beta2", p.adam_beta2);
    num("eps", p.adam_eps);
    num("weightDecay", p.weight_decay);
    p.final_exit_only = get_bool(o, "finalExitOnly", false);
    p.forward_only = get_bool(o, "forwardOnly", false);
    if (const char * reason = llama_layerskip_train_check(model->get())) throw_error(env, std::string("createTrainer: ") + reason, codes::TRAIN_MODEL);

    model->retain();  // held while the worker builds the graph over its tensors
    auto model_ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(info[0].As<Napi::Object>()));
    auto result = std::make_shared<llama_layerskip_trainer *>(nullptr);
    llama_model * m = model->get();
    const int32_t n_layer = llama_model_n_layer(m);
    return PromiseWorker::run(env,
        [m, p, result]() {
            take_last_llama_error();
            *result = llama_layerskip_train_init(m, p);
            if (!*result) {
                std::string why = take_last_llama_error();
                throw CodedError(codes::TRAIN_MODEL, "createTrainer: " + (why.empty() ? std::string("the training graph could not be built") : why));
            }
        },
        [result, model_ref, p, n_layer](Napi::Env env) -> Napi::Value {
            auto * data = env.GetInstanceData<AddonData>();
            Napi::Object shape = Napi::Object::New(env);
            shape.Set("layers", n_layer);
            shape.Set("contextSize", p.n_ctx);
            shape.Set("sequences", p.n_seq);
            try {
                return data->trainer_ctor.New({model_ref->Value(), Napi::External<llama_layerskip_trainer>::New(env, *result), shape});
            } catch (...) {
                llama_layerskip_train_free(*result);  // the wrapper did not take it
                throw;
            }
        },
        [model]() { model->release(); });
}

void Trainer::check_usable(Napi::Env env, const char * what) const {
    if (disposed_ || !trainer_) throw_error(env, std::string(what) + ": the trainer is disposed", codes::DISPOSED);
    if (busy_.load()) throw_error(env, std::string(what) + ": the trainer is busy with another job", codes::BUSY);
    if (model_->disposed()) throw_error(env, std::string(what) + ": the model is disposed", codes::DISPOSED);
}

Napi::Value Trainer::run_busy(Napi::Env env, PromiseWorker::Work work, PromiseWorker::Done done) {
    busy_ = true;
    abort_ = false;
    auto self = std::make_shared<Napi::ObjectReference>(Napi::Persistent(Value()));
    return PromiseWorker::run(env, std::move(work), std::move(done), [this, self]() {
        busy_ = false;
        if (disposed_) free_now();
    });
}

// run({ steps, tokens: Int32Array, exitWeights: Float32Array, keep: Float32Array,
//       learningRates: Float32Array, train: boolean, counts: boolean }, onStep?(step, exitCe))
//   => Promise<{ steps, exitCe, exitCorrect?, exitAgree?, ms }>
// Stops between steps after abort(): the promise then resolves with the steps that ran.
Napi::Value Trainer::run(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_usable(env, "trainer.run");
    if (info.Length() < 1 || !info[0].IsObject()) throw_type(env, "trainer.run(job, onStep?)");
    Napi::Object o = info[0].As<Napi::Object>();
    auto job = std::make_shared<RunJob>();
    job->steps = get_int(env, o, "steps", 0, 1, 1 << 20);
    job->n_layer = n_layer_;
    job->n_seq = n_seq_;
    job->n_ctx = n_ctx_;
    job->train = get_bool(o, "train", true);
    job->counts = get_bool(o, "counts", false);
    const size_t S = (size_t)job->steps, L = (size_t)n_layer_, B = (size_t)n_seq_;
    job->tokens = copy_array<Napi::Int32Array, int32_t>(env, o, "tokens", S * B * (n_ctx_ + 1), napi_int32_array);
    job->weights = copy_array<Napi::Float32Array, float>(env, o, "exitWeights", S * L, napi_float32_array);
    job->keep = copy_array<Napi::Float32Array, float>(env, o, "keep", S * L * B, napi_float32_array);
    job->lr = copy_array<Napi::Float32Array, float>(env, o, "learningRates", S, napi_float32_array);
    job->ce.assign(S * L, 0.0f);
    if (job->counts) {
        job->correct.assign(S * L, 0);
        job->agree.assign(S * L, 0);
    }
    std::shared_ptr<Napi::ThreadSafeFunction> tsfn;
    if (info.Length() > 1 && info[1].IsFunction()) {
        tsfn = std::make_shared<Napi::ThreadSafeFunction>(
            Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "layerskip.trainer", 0, 1));
    }
    llama_layerskip_trainer * t = trainer_;
    std::atomic<bool> * abort = &abort_;
    return run_busy(env,
        [job, t, tsfn, abort]() {
            const size_t L = job->n_layer, B = job->n_seq, row = (size_t)job->n_ctx + 1;
            const int64_t t0 = ggml_time_us();
            FlushDenormals ftz;  // small gradients and AdamW moments are denormal often
            struct Release {
                std::shared_ptr<Napi::ThreadSafeFunction> f;
                ~Release() { if (f) f->Release(); }
            } release{tsfn};
            for (int32_t s = 0; s < job->steps; ++s) {
                if (abort->load()) break;
                const int32_t rc = llama_layerskip_train_step(t, job->tokens.data() + s * B * row, job->weights.data() + s * L,
                    job->keep.data() + s * L * B, job->lr[s], job->train, job->ce.data() + s * L,
                    job->counts ? job->correct.data() + s * L : nullptr, job->counts ? job->agree.data() + s * L : nullptr);
                if (rc == -2) throw CodedError(codes::TOKEN_RANGE, "trainer.run: a token id is outside the vocabulary");
                if (rc != 0) throw std::runtime_error("trainer.run: invalid step constants (code " + std::to_string(rc) + ")");
                job->done = s + 1;
                if (tsfn) {
                    auto * r = new StepReport{ s, std::vector<float>(job->ce.begin() + s * L, job->ce.begin() + (s + 1) * L) };
                    if (tsfn->NonBlockingCall(r, [](Napi::Env env, Napi::Function cb, StepReport * r) {
                            cb.Call({ Napi::Number::New(env, r->step), to_js(env, r->ce) });
                            delete r;
                        }) != napi_ok) {
                        delete r;
                    }
                }
            }
            job->ms = (ggml_time_us() - t0) / 1000.0;
        },
        [job](Napi::Env env) -> Napi::Value {
            const size_t n = (size_t)job->done * job->n_layer;
            Napi::Object r = Napi::Object::New(env);
            r.Set("steps", job->done);
            r.Set("exitCe", to_js(env, std::vector<float>(job->ce.begin(), job->ce.begin() + n)));
            if (job->counts) {
                r.Set("exitCorrect", to_js(env, std::vector<int32_t>(job->correct.begin(), job->correct.begin() + n)));
                r.Set("exitAgree", to_js(env, std::vector<int32_t>(job->agree.begin(), job->agree.begin() + n)));
            }
            r.Set("ms", job->ms);
            return r;
        });
}

// save(path) => Promise<void>: the model as trained so far, through llama_model_save_to_file.
// The caller writes to a temporary name and renames it (an interrupted save leaves no broken file).
Napi::Value Trainer::save(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    check_usable(env, "trainer.save");
    if (info.Length() < 1 || !info[0].IsString()) throw_type(env, "trainer.save(path: string)");
    auto path = std::make_shared<std::string>(info[0].As<Napi::String>().Utf8Value());
    llama_layerskip_trainer * t = trainer_;
    llama_model * m = model_->get();
    return run_busy(env,
        [t, m, path]() {
            llama_layerskip_train_sync_model(t);
            std::remove(path->c_str());
            llama_model_save_to_file(m, path->c_str());
            struct stat st;
            // llama.cpp's saver logs and returns when it cannot open the file
            if (stat(path->c_str(), &st) != 0 || st.st_size == 0) throw CodedError(codes::SAVE, "trainer.save: could not write " + *path);
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
}

Napi::Value Trainer::abort(const Napi::CallbackInfo & info) {
    if (busy_.load()) abort_ = true;
    return info.Env().Undefined();
}

Napi::Value Trainer::dispose(const Napi::CallbackInfo & info) {
    if (!disposed_) {
        disposed_ = true;
        abort_ = true;
        if (!busy_.load()) free_now();
    }
    return info.Env().Undefined();
}

}  // namespace layerskip
