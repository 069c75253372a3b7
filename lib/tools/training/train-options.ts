// What trainModel takes and returns, and how it checks them: the options resolved into a Plan,
// and the model file and output path checked before any work starts.
import { accessSync, constants, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ggmlTypeName } from '../../gguf/constants.js';
import { readGgufInfo } from '../../gguf/reader.js';
import { checkBoolean, checkEnum, checkInteger, checkNumber } from '../../native/errors.js';
import { quantizeModel } from '../../native/quantize.js';
import { checkOptionKeys, type KeysOf } from '../../util/option-keys.js';
import { checkTrainingData, type TrainingData } from './data.js';
import { defaultThreads } from '../../runtime/context-options.js';
import type { EarlyExitLossOptions, LayerDropoutOptions } from './recipe.js';

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

export const OPTION_KEYS = {
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

export interface Plan {
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

export function checkTrainableFile(path: string): { layers: number; half: boolean } {
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
export async function f32Copy(path: string): Promise<string> {
  const tmp = join(mkdtempSync(join(tmpdir(), 'layerskip-train-')), 'f32.gguf');
  await quantizeModel(path, tmp, 'F32');
  return tmp;
}

export function checkWritable(output: string): void {
  const dir = dirname(resolve(output));
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw Object.assign(new Error(`trainModel: cannot write ${output}: the folder ${dir} does not exist or is not writable`), { code: 'ERR_SAVE' });
  }
}

export function plan(options: TrainModelOptions, layers: number): Plan {
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
