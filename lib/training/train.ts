// trainModel: LayerSkip training (layer dropout + early-exit loss) of a GGUF model, or ordinary
// training when both are off (the baseline). One code path for every setting: the recipe's
// per-step constants come from recipe.ts, the data from data.ts, and each job of steps runs in
// the addon (patch 0008's training graph, ggml-opt's AdamW) on the libuv pool.
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { abortReason, checkBoolean, checkEnum, checkInteger, checkNumber } from '../errors.js';
import { readGgufInfo } from '../gguf/reader.js';
import { ggmlTypeName } from '../gguf/constants.js';
import { loadModel, type Model } from '../model.js';
import { loadNative, type NativeTrainer } from '../native.js';
import { defaultThreads } from '../context.js';
import { quantizeModel } from '../quantize.js';
import { checkTrainingData, evaluationBatches, sampleWindows, tokenizeTrainingData, type TrainingData } from './data.js';
import { exitWeights, keepFactors, learningRate, type EarlyExitLossOptions, type LayerDropoutOptions } from './recipe.js';
import { checkOptionKeys, type KeysOf } from '../option-keys.js';

export type { TrainingData } from './data.js';
export type { Curriculum, DropoutScale, EarlyExitLossOptions, ExitWeighting, LayerDropoutOptions } from './recipe.js';

export interface TrainModelOptions {
  /** Where the trained model goes (written to a temporary name, then renamed into place). */
  output: string;
  /** Training data. */
  data: TrainingData;
  /** Held-out data for the per-exit evaluation (default: none, no evaluation). */
  evalData?: TrainingData;
  /** Budget in optimizer steps; or give `tokens`. */
  steps?: number;
  /** Budget in training tokens (steps = ceil(tokens / (batchSize * contextSize))). */
  tokens?: number;
  /** Sequences per step (default 8). */
  batchSize?: number;
  /** Tokens per sequence (default 128). */
  contextSize?: number;
  /** Peak learning rate (default 1e-3). */
  learningRate?: number;
  /** Linear warm-up steps (default 5% of the steps). */
  warmupSteps?: number;
  /** Learning rate at the end of the cosine decay (default learningRate / 10). */
  minLearningRate?: number;
  /** AdamW's decoupled weight decay (default 0). */
  weightDecay?: number;
  /** Layer dropout; omitted or pMax 0: none. */
  layerDropout?: LayerDropoutOptions;
  /** The early-exit loss; omitted or curriculum 'none': the final layer's loss only. */
  earlyExitLoss?: EarlyExitLossOptions;
  /** Evaluate every this many steps (default: only at the end). */
  evalInterval?: number;
  /** At most this many held-out tokens per evaluation (default 32768). */
  evalTokens?: number;
  /** Write a checkpoint to `output` every this many steps (default: only at the end). */
  checkpointInterval?: number;
  /** Continue from the checkpoint at `output` (its `.train.json` says at which step). */
  resume?: boolean;
  /** On abort, write a checkpoint of the last finished step before rejecting (default false: nothing is written). */
  checkpointOnAbort?: boolean;
  threads?: number;
  /** Seeds the data order and the dropout draws (default 0). */
  seed?: number;
  signal?: AbortSignal;
  onProgress?: (progress: TrainProgress) => void;
}

export interface ExitEvaluation {
  /** The exit after this many layers (the library's exitLayer); the last is the full model. */
  layer: number;
  /** Mean held-out cross-entropy (nats per token). */
  crossEntropy: number;
  /** Top-1 accuracy against the next token. */
  accuracy: number;
  /** How often the exit's top-1 equals the final layer's (the greedy drafts that verification accepts). */
  agreement: number;
}

export interface TrainProgress {
  phase: 'train' | 'eval' | 'checkpoint';
  step: number;
  steps: number;
  tokens: number;
  /** The step's final-layer cross-entropy. */
  loss: number;
  /** The step's cross-entropy of every exit (NaN for the early exits when there is no early-exit loss: the baseline builds the final exit only). */
  exitLosses: number[];
  learningRate: number;
  tokensPerSecond: number;
  etaSeconds: number;
  evaluation?: ExitEvaluation[];
}

export interface TrainModelResult {
  output: string;
  steps: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  /** The last step's per-exit training cross-entropy (early exits NaN without the early-exit loss). */
  trainLoss: number[];
  /** The final per-exit held-out evaluation (empty without evalData). */
  evaluation: ExitEvaluation[];
  /** exp(final-layer held-out cross-entropy), or NaN without evalData. */
  perplexity: number;
  /** Every evaluation, with its step. */
  history: { step: number; evaluation: ExitEvaluation[] }[];
  /** Resident set size peak of this process during training (bytes). */
  peakRss: number;
}

const OPTION_KEYS = {
  output: true,
  data: true,
  evalData: true,
  steps: true,
  tokens: true,
  batchSize: true,
  contextSize: true,
  learningRate: true,
  warmupSteps: true,
  minLearningRate: true,
  weightDecay: true,
  layerDropout: true,
  earlyExitLoss: true,
  evalInterval: true,
  evalTokens: true,
  checkpointInterval: true,
  resume: true,
  checkpointOnAbort: true,
  threads: true,
  seed: true,
  signal: true,
  onProgress: true,
} as const satisfies KeysOf<TrainModelOptions>;

interface Plan {
  output: string;
  steps: number;
  batch: number;
  context: number;
  lr: number;
  warmup: number;
  minLr: number;
  weightDecay: number;
  dropout?: LayerDropoutOptions;
  exitLoss?: EarlyExitLossOptions;
  evalInterval: number;
  evalTokens: number;
  checkpointInterval: number;
  threads: number;
  seed: number;
}

function checkDropout(d: unknown): LayerDropoutOptions | undefined {
  if (d === undefined) return undefined;
  if (d === null || typeof d !== 'object') throw new TypeError('layerDropout must be an object { pMax, scale?, fromScratch? }');
  checkOptionKeys('layerDropout', d, { pMax: true, scale: true, fromScratch: true } as const satisfies KeysOf<LayerDropoutOptions>);
  const o = d as LayerDropoutOptions;
  checkNumber('layerDropout.pMax', o.pMax, 0, 1);
  checkEnum('layerDropout.scale', o.scale, ['exp', 'linear'] as const);
  checkBoolean('layerDropout.fromScratch', o.fromScratch);
  return o.pMax === 0 ? undefined : o;
}

function checkExitLoss(e: unknown, layers: number): EarlyExitLossOptions | undefined {
  if (e === undefined) return undefined;
  if (e === null || typeof e !== 'object') throw new TypeError('earlyExitLoss must be an object { scale, curriculum?, rotation?, weights? }');
  checkOptionKeys('earlyExitLoss', e, { scale: true, curriculum: true, rotation: true, weights: true } as const satisfies KeysOf<EarlyExitLossOptions>);
  const o = e as EarlyExitLossOptions;
  checkNumber('earlyExitLoss.scale', o.scale, 0, 1e6);
  checkEnum('earlyExitLoss.curriculum', o.curriculum, ['rotational', 'gradual', 'none'] as const);
  if (o.rotation !== undefined) checkInteger('earlyExitLoss.rotation', o.rotation, 1, 1 << 16);
  if (Array.isArray(o.weights)) {
    if (o.weights.length !== layers || !o.weights.every((w) => Number.isFinite(w) && w >= 0)) {
      throw new RangeError(`earlyExitLoss.weights must be ${layers} numbers >= 0 (one per layer), got ${JSON.stringify(o.weights)}`);
    }
  } else {
    checkEnum('earlyExitLoss.weights', o.weights, ['paper', 'uniform', 'linear'] as const);
  }
  return o.curriculum === 'none' ? undefined : o;
}

/** Why this file cannot be trained, checked from its header before anything loads. */
/** Half-precision weights train from an F32 copy (converted first); quantized ones are refused. */
const HALF_TYPES = new Set(['F16', 'BF16']);

function checkTrainableFile(path: string): { layers: number; half: boolean } {
  const info = readGgufInfo(path);
  const arch = info.metadata.get('general.architecture')?.value;
  if (arch !== 'llama')
    throw Object.assign(new Error(`trainModel: the trainer supports the llama architecture, not ${String(arch)} (${path})`), { code: 'ERR_TRAIN_MODEL' });
  const notF32 = info.tensors.filter((t) => t.type !== 0 && !HALF_TYPES.has(ggmlTypeName(t.type)));
  const half = info.tensors.some((t) => HALF_TYPES.has(ggmlTypeName(t.type)));
  if (notF32.length > 0) {
    const types = [...new Set(notF32.map((t) => ggmlTypeName(t.type)))].join(', ');
    throw Object.assign(
      new Error(
        `trainModel: training needs F32 or F16 weights; ${path} has ${types} tensors (${notF32[0].name}, ...). ` +
          `Train the F16 or F32 file it was made from (an F16 file is converted to F32 first; by hand: ` +
          `quantizeModel(source, 'model-f32.gguf', 'F32') or \`layerskip quantize SOURCE model-f32.gguf F32\`); ` +
          `a quantized file has lost precision that training cannot recover.`,
      ),
      { code: 'ERR_TRAIN_MODEL' },
    );
  }
  const layers = Number(info.metadata.get('llama.block_count')?.value);
  return { layers, half };
}

/** An F32 working copy of a half-precision file (llama.cpp's converter), removed by the caller. */
async function f32Copy(path: string): Promise<string> {
  const tmp = join(mkdtempSync(join(tmpdir(), 'layerskip-train-')), 'f32.gguf');
  await quantizeModel(path, tmp, 'F32');
  return tmp;
}

function checkWritable(output: string): void {
  const dir = dirname(resolve(output));
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw Object.assign(new Error(`trainModel: cannot write ${output}: the folder ${dir} does not exist or is not writable`), { code: 'ERR_SAVE' });
  }
}

function plan(options: TrainModelOptions, layers: number): Plan {
  if (options === null || typeof options !== 'object') throw new TypeError('trainModel: options must be an object');
  checkOptionKeys('trainModel options', options, OPTION_KEYS);
  if (typeof options.output !== 'string' || options.output.length === 0) throw new TypeError('trainModel: output must be a path');
  const batch = options.batchSize === undefined ? 8 : checkInteger('batchSize', options.batchSize, 1, 4096);
  const context = options.contextSize === undefined ? 128 : checkInteger('contextSize', options.contextSize, 2, 65536);
  if ((options.steps === undefined) === (options.tokens === undefined)) throw new TypeError('trainModel: give exactly one budget, steps or tokens');
  const steps =
    options.steps !== undefined
      ? checkInteger('steps', options.steps, 1, 1e9)
      : Math.ceil(checkInteger('tokens', options.tokens, 1, Number.MAX_SAFE_INTEGER) / (batch * context));
  const lr = options.learningRate === undefined ? 1e-3 : checkNumber('learningRate', options.learningRate, 1e-12, 10);
  const warmup = options.warmupSteps === undefined ? Math.max(1, Math.round(steps * 0.05)) : checkInteger('warmupSteps', options.warmupSteps, 0, 1e9);
  const minLr = options.minLearningRate === undefined ? lr / 10 : checkNumber('minLearningRate', options.minLearningRate, 0, lr);
  const every = (name: string, v: number | undefined): number => (v === undefined ? steps : checkInteger(name, v, 1, 1e9));
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new TypeError('signal must be an AbortSignal');
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw new TypeError('onProgress must be a function');
  checkBoolean('resume', options.resume);
  checkBoolean('checkpointOnAbort', options.checkpointOnAbort);
  checkTrainingData('data', options.data);
  if (options.evalData !== undefined) checkTrainingData('evalData', options.evalData);
  return {
    output: options.output,
    steps,
    batch,
    context,
    lr,
    warmup,
    minLr,
    weightDecay: options.weightDecay === undefined ? 0 : checkNumber('weightDecay', options.weightDecay, 0, 1),
    dropout: checkDropout(options.layerDropout),
    exitLoss: checkExitLoss(options.earlyExitLoss, layers),
    evalInterval: every('evalInterval', options.evalInterval),
    evalTokens: options.evalTokens === undefined ? 32768 : checkInteger('evalTokens', options.evalTokens, 1, 1e12),
    checkpointInterval: every('checkpointInterval', options.checkpointInterval),
    threads: options.threads === undefined ? defaultThreads() : checkInteger('threads', options.threads, 1, 512),
    seed: options.seed === undefined ? 0 : checkInteger('seed', options.seed, 0, 2 ** 31 - 1),
  };
}

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
