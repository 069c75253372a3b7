// trainModel: LayerSkip training (layer dropout + early-exit loss) of a GGUF model, or ordinary
// training when both are off (the baseline). One code path for every setting: the recipe's
// per-step constants come from recipe.ts, the data from data.ts, and each job of steps runs in
// the addon (patch 0008's training graph, ggml-opt's AdamW) on the libuv pool.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { abortReason, checkInteger } from '../../native/errors.js';
import { readGgufInfo } from '../../gguf/reader.js';
import { loadModel, type Model } from '../../runtime/model.js';
import { loadNative, type NativeTrainer } from '../../native/binding.js';
import { defaultThreads } from '../../runtime/context.js';
import { checkTrainingData, evaluationBatches, sampleWindows, tokenizeTrainingData, type TrainingData } from './data.js';
import { exitWeights, keepFactors, learningRate } from './recipe.js';

export type { TrainingData } from './data.js';
export type { ExitEvaluation, TrainModelOptions, TrainModelResult, TrainProgress } from './train-options.js';
import {
  checkTrainableFile,
  checkWritable,
  type ExitEvaluation,
  f32Copy,
  type Plan,
  plan,
  type TrainModelOptions,
  type TrainModelResult,
  type TrainProgress,
} from './train-options.js';
export type { Curriculum, DropoutScale, EarlyExitLossOptions, ExitWeighting, LayerDropoutOptions } from './recipe.js';

interface CheckpointState {
  step: number;
  steps: number;
  seed: number;
}

function statePath(output: string): string {
  return `${output}.train.json`;
}

/** Writes the model and its training state to `output` atomically (temporary names, then renames). */
async function writeCheckpoint(trainer: NativeTrainer, output: string, state: CheckpointState): Promise<void> {
  const tmp = `${output}.tmp-${process.pid}`;
  try {
    await trainer.save(tmp);
    readGgufInfo(tmp); // a written file that does not parse never replaces the last good one
    renameSync(tmp, output);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  writeFileSync(`${statePath(output)}.tmp`, JSON.stringify(state));
  renameSync(`${statePath(output)}.tmp`, statePath(output));
}

/** One job's arrays: the windows, exit weights, keep factors and learning rates of steps [from, to). */
function buildJob(p: Plan, layers: number, stream: Int32Array, from: number, to: number) {
  const n = to - from,
    row = p.context + 1;
  const tokens = new Int32Array(n * p.batch * row);
  const weights = new Float32Array(n * layers);
  const keep = new Float32Array(n * layers * p.batch);
  const lrs = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const step = from + i;
    tokens.set(sampleWindows(stream, p.batch, row, p.seed, step), i * p.batch * row);
    weights.set(exitWeights(layers, step, p.steps, p.exitLoss), i * layers);
    keep.set(keepFactors(layers, p.batch, step, p.steps, p.dropout, p.seed), i * layers * p.batch);
    lrs[i] = learningRate(step, p.steps, p.lr, p.warmup, p.minLr);
  }
  return { steps: n, tokens, exitWeights: weights, keep, learningRates: lrs, train: true, counts: false };
}

/** Per-exit held-out metrics: forward passes of the same graph, no optimizer step. */
async function evaluate(trainer: NativeTrainer, layers: number, batches: Int32Array[], batch: number, context: number): Promise<ExitEvaluation[]> {
  if (batches.length === 0) return [];
  const row = context + 1;
  const tokens = new Int32Array(batches.length * batch * row);
  batches.forEach((b, i) => tokens.set(b, i * batch * row));
  const r = await trainer.run({
    steps: batches.length,
    tokens,
    exitWeights: new Float32Array(batches.length * layers).fill(1),
    keep: new Float32Array(batches.length * layers * batch).fill(1),
    learningRates: new Float32Array(batches.length),
    train: false,
    counts: true,
  });
  const out: ExitEvaluation[] = [];
  const perBatch = batch * context;
  for (let l = 0; l < layers; l++) {
    let ce = 0,
      correct = 0,
      agree = 0;
    for (let s = 0; s < r.steps; s++) {
      ce += r.exitCe[s * layers + l];
      correct += r.exitCorrect![s * layers + l];
      agree += r.exitAgree![s * layers + l];
    }
    out.push({ layer: l + 1, crossEntropy: ce / r.steps, accuracy: correct / (r.steps * perBatch), agreement: agree / (r.steps * perBatch) });
  }
  return out;
}

/**
 * Trains the GGUF model at `path` (F32 weights, llama architecture) and writes the result to
 * `options.output`. With `layerDropout` and `earlyExitLoss` it is the LayerSkip recipe; without
 * them, ordinary next-token training. Abort with `options.signal`: the job stops after its current
 * step and the promise rejects; the file at `output` stays the last checkpoint written.
 */
export async function trainModel(path: string, options: TrainModelOptions): Promise<TrainModelResult> {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError('trainModel: path must be a non-empty string');
  if (!existsSync(path)) throw Object.assign(new Error(`trainModel: model file not found: ${path}`), { code: 'ENOENT' });
  const { layers, half } = checkTrainableFile(path);
  const p = plan(options, layers);
  checkWritable(p.output);
  let start = 0;
  let source = path;
  if (options.resume) {
    if (!existsSync(statePath(p.output)) || !existsSync(p.output))
      throw new Error(`trainModel: nothing to resume: ${p.output} or ${statePath(p.output)} is missing`);
    const state = JSON.parse(readFileSync(statePath(p.output), 'utf8')) as CheckpointState;
    if (state.steps !== p.steps || state.seed !== p.seed)
      throw new Error(`trainModel: the checkpoint was written by a run of ${state.steps} steps with seed ${state.seed}; resume with the same budget and seed`);
    start = state.step;
    source = p.output;
    checkTrainableFile(source);
  } else if (half) {
    source = await f32Copy(path);
  }
  const removeCopy = (): void => {
    if (source !== path && source !== p.output) rmSync(dirname(source), { recursive: true, force: true });
  };
  const signal = options.signal;
  if (signal?.aborted) throw abortReason(signal);

  const native = await loadNative();
  let model: Model;
  try {
    model = await loadModel(source, { mmap: false, signal }); // writable weights
  } finally {
    removeCopy(); // loaded without mmap: the copy is no longer read
  }
  let trainer: NativeTrainer | undefined;
  let evaluator: NativeTrainer | undefined;
  let peakRss = process.memoryUsage().rss;
  try {
    const stream = await tokenizeTrainingData(model, options.data, 'data');
    if (stream.length < p.context + 1) {
      throw new RangeError(`trainModel: the training data holds ${stream.length} tokens, fewer than one context (${p.context + 1} with its next token)`);
    }
    let evalBatches: Int32Array[] = [];
    if (options.evalData) {
      const evalStream = await tokenizeTrainingData(model, options.evalData, 'evalData');
      evalBatches = evaluationBatches(evalStream, p.batch, p.context + 1, p.evalTokens);
      if (evalBatches.length === 0) {
        throw new RangeError(`trainModel: the evaluation data holds ${evalStream.length} tokens, fewer than one batch (${p.batch} x ${p.context + 1})`);
      }
    }
    // without the early-exit loss only the final exit is built (the baseline pays for no other);
    // the evaluation then runs in a forward-only trainer over the same weights with every exit
    trainer = await native.createTrainer(model.handle, {
      contextSize: p.context,
      sequences: p.batch,
      threads: p.threads,
      weightDecay: p.weightDecay,
      finalExitOnly: p.exitLoss === undefined,
    });
    if (p.exitLoss === undefined && evalBatches.length > 0) {
      evaluator = await native.createTrainer(model.handle, { contextSize: p.context, sequences: p.batch, threads: p.threads, forwardOnly: true });
    }
    const t = trainer;
    const ev = evaluator ?? trainer;
    const onAbort = (): void => t.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const history: { step: number; evaluation: ExitEvaluation[] }[] = [];
      const perStep = p.batch * p.context;
      const t0 = performance.now();
      let step = start;
      let trainLoss: number[] = [];
      const report = (phase: TrainProgress['phase'], evaluation?: ExitEvaluation[]): void => {
        if (!options.onProgress) return;
        const seconds = (performance.now() - t0) / 1000;
        const tps = ((step - start) * perStep) / Math.max(seconds, 1e-9);
        options.onProgress({
          phase,
          step,
          steps: p.steps,
          tokens: step * perStep,
          loss: trainLoss[layers - 1] ?? NaN,
          exitLosses: trainLoss,
          learningRate: learningRate(Math.max(0, step - 1), p.steps, p.lr, p.warmup, p.minLr),
          tokensPerSecond: tps,
          etaSeconds: tps > 0 ? ((p.steps - step) * perStep) / tps : NaN,
          evaluation,
        });
      };
      // an abort is checked after every native job (a job stops between steps), evaluation and checkpoint
      const stopIfAborted = async (): Promise<void> => {
        if (!signal?.aborted) return;
        if (options.checkpointOnAbort) await writeCheckpoint(t, p.output, { step, steps: p.steps, seed: p.seed });
        throw abortReason(signal);
      };
      while (step < p.steps) {
        // a job runs to the next evaluation or checkpoint, at most 16 steps (abort granularity is one step)
        const next = (k: number): number => Math.ceil((step + 1) / k) * k;
        const to = Math.min(p.steps, step + 16, next(p.evalInterval), next(p.checkpointInterval));
        const base = step;
        const r = await t.run(buildJob(p, layers, stream, base, to), (i, ce) => {
          trainLoss = [...ce];
          step = base + i + 1;
          report('train');
        });
        step = base + r.steps;
        if (r.steps > 0) trainLoss = [...r.exitCe.subarray((r.steps - 1) * layers, r.steps * layers)];
        for (let i = layers - 1; i < r.exitCe.length; i += layers) {
          if (!Number.isFinite(r.exitCe[i])) throw new Error(`trainModel: the loss became non-finite at step ${step}: lower the learning rate`);
        }
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
        await stopIfAborted();
        if (evalBatches.length > 0 && step % p.evalInterval === 0 && step < p.steps) {
          const evaluation = await evaluate(ev, layers, evalBatches, p.batch, p.context);
          history.push({ step, evaluation });
          report('eval', evaluation);
          await stopIfAborted();
        }
        if (step % p.checkpointInterval === 0 && step < p.steps) {
          await writeCheckpoint(t, p.output, { step, steps: p.steps, seed: p.seed });
          report('checkpoint');
        }
      }
      const seconds = (performance.now() - t0) / 1000;
      const evaluation = await evaluate(ev, layers, evalBatches, p.batch, p.context);
      await stopIfAborted();
      if (evaluation.length > 0) {
        history.push({ step, evaluation });
        report('eval', evaluation);
      }
      await writeCheckpoint(t, p.output, { step, steps: p.steps, seed: p.seed });
      report('checkpoint');
      return {
        output: p.output,
        steps: step,
        tokens: step * perStep,
        seconds,
        tokensPerSecond: ((step - start) * perStep) / seconds,
        trainLoss,
        evaluation,
        perplexity: evaluation.length > 0 ? Math.exp(evaluation[layers - 1].crossEntropy) : NaN,
        history,
        peakRss: Math.max(peakRss, process.memoryUsage().rss),
      };
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  } finally {
    evaluator?.dispose();
    trainer?.dispose();
    model.dispose();
  }
}

/** Per-exit held-out cross-entropy, accuracy and agreement of a model file (F32, llama), without training. */
export async function evaluateExits(
  path: string,
  options: { data: TrainingData; batchSize?: number; contextSize?: number; evalTokens?: number; threads?: number },
): Promise<ExitEvaluation[]> {
  const { layers, half } = checkTrainableFile(path);
  if (half)
    throw Object.assign(new Error(`evaluateExits: ${path} has F16 weights; convert it to F32 first (quantizeModel(path, dst, 'F32'))`), {
      code: 'ERR_TRAIN_MODEL',
    });
  const batch = options.batchSize === undefined ? 8 : checkInteger('batchSize', options.batchSize, 1, 4096);
  const context = options.contextSize === undefined ? 128 : checkInteger('contextSize', options.contextSize, 2, 65536);
  checkTrainingData('data', options.data);
  const native = await loadNative();
  const model = await loadModel(path, { mmap: false });
  let trainer: NativeTrainer | undefined;
  try {
    const stream = await tokenizeTrainingData(model, options.data, 'data');
    const batches = evaluationBatches(stream, batch, context + 1, options.evalTokens ?? 32768);
    if (batches.length === 0) throw new RangeError(`evaluateExits: the data holds ${stream.length} tokens, fewer than one batch (${batch} x ${context + 1})`);
    trainer = await native.createTrainer(model.handle, {
      contextSize: context,
      sequences: batch,
      threads: options.threads ?? defaultThreads(),
      forwardOnly: true,
    });
    return await evaluate(trainer, layers, batches, batch, context);
  } finally {
    trainer?.dispose();
    model.dispose();
  }
}
