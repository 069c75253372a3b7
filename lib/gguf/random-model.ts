// Seeded random GGUF models of every architecture in RANDOM_ARCHS (random-archs.ts): the common
// hyper-parameters, the architecture's own keys and tensors, a small SentencePiece vocabulary (or
// a tokenizer copied from another GGUF), weights scaled so that greedy output is not degenerate.
// writeRandomLlamaModel (random-llama.ts) is this writer with arch 'llama'.
import { GgmlType, ggmlTensorByteSize, tensorElementCount } from './constants.js';
import { f32ToF16Bits } from './f16.js';
import { Xoshiro128, hashSeed, normalTableF32 } from './random.js';
import { archDef, archTensorSlots, RANDOM_ARCHS, type LlamaShape, type ModelShape, type RandomArch, type TensorSlot } from './random-archs.js';
import { readGgufInfo } from './reader.js';
import type { GgufMetadataValue } from './types.js';
import { SPM_BOS_ID, SPM_EOS_ID, SPM_MIN_VOCAB, SPM_UNK_ID, buildSpmVocab } from './vocab.js';
import { writeGguf, type GgufTensorInput, type TensorChunk, type WriteGgufResult } from './writer.js';

export interface RandomLlamaSpec extends LlamaShape {
  /** <arch>.context_length */
  nCtx: number;
  seed: number;
  /** Default 10000. */
  ropeFreqBase?: number;
  /** Default 1e-5. */
  rmsEps?: number;
  /** Type of the 2-D weight matrices; 1-D norm weights are always F32 (as in converted models). */
  tensorType: 'f32' | 'f16';
  /**
   * Multiplies the init std of attn_output and ffn_down of layers >= fromLayer by `scale`, so late
   * layers change the residual stream little and early exit often agrees with the full model.
   * (Post-norm architectures: the norms on the blocks' outputs are scaled instead.)
   */
  lateLayerScale?: { fromLayer: number; scale: number };
  /** general.name; default derived from the shape and seed. */
  name?: string;
  /**
   * Target standard deviation of the output logits (default 4). token_embd (and output.weight
   * when untied) get std logitStd / sqrt(nEmbd), because the final RMS-normed hidden state has
   * norm ~sqrt(nEmbd). A larger token_embd std (e.g. 1) with tied output would make every token
   * predict itself, since the input embedding survives in the residual stream.
   */
  logitStd?: number;
  /**
   * Extra gain on the init std of the matrices that write into the residual stream (attn_output,
   * ffn_down), default 4. Every block reads its input through an RMS norm, so this only changes how
   * much the raw token embedding weighs in the final hidden state relative to the blocks' outputs.
   * With tied output a large embedding share makes the model predict its current input token again
   * (greedy output degenerates into "x x x x").
   */
  residualGain?: number;
}

export interface RandomModelSpec extends Omit<RandomLlamaSpec, 'tiedOutput'> {
  /** general.architecture */
  arch: RandomArch;
  /** Default: tied, except where the architecture needs an output.weight (olmo2, gpt-oss). */
  tiedOutput?: boolean;
  /** <arch>.attention.sliding_window of the architectures with sliding-window layers (gemma2, gemma3, gpt-oss); default 8. */
  slidingWindow?: number;
  /** Norm weights are 1 + normJitter * N(0, 1); default 0 for llama (all ones), 0.1 for the others. */
  normJitter?: number;
  /** Experts of the MoE architectures (qwen3moe, gpt-oss); default 4. Each has nFf hidden units. */
  nExpert?: number;
  /** Experts used per token; default 2. */
  nExpertUsed?: number;
  /**
   * A GGUF whose tokenizer (every tokenizer.* key) is copied verbatim instead of the small SPM
   * vocabulary, e.g. llama.cpp's models/ggml-vocab-<family>.gguf. nVocab must equal its token count.
   */
  vocabFrom?: string;
}

export interface RandomModelResult extends WriteGgufResult {
  nParams: number;
  seconds: number;
}

const CHUNK_ELEMENTS = 1 << 20;
const DEFAULT_LOGIT_STD = 4;
const DEFAULT_RESIDUAL_GAIN = 4;
const DEFAULT_SLIDING_WINDOW = 8;
const DEFAULT_N_EXPERT = 4;
const DEFAULT_N_EXPERT_USED = 2;
const DEFAULT_NORM_JITTER = 0.1;
const BIAS_STD = 0.1;
/** llama.cpp's LLAMA_MAX_EXPERTS */
const MAX_EXPERTS = 512;

type Label = 'RandomLlamaSpec' | 'RandomModelSpec';

function checkPositiveInt(label: Label, name: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new Error(`${label}.${name} must be a positive integer, got ${String(v)}`);
  }
}

function checkPositive(label: Label, name: string, v: number | undefined): void {
  if (v !== undefined && !(v > 0 && Number.isFinite(v))) throw new Error(`${label}.${name} must be a positive number, got ${v}`);
}

/** The checks shared by RandomLlamaSpec and RandomModelSpec (everything but the architecture's own options). */
export function validateCommonSpec(spec: Omit<RandomLlamaSpec, 'tiedOutput'> & { tiedOutput?: boolean }, label: Label): void {
  for (const k of ['nLayer', 'nEmbd', 'nHead', 'nHeadKv', 'nFf', 'nVocab', 'nCtx'] as const) checkPositiveInt(label, k, spec[k]);
  if (spec.nEmbd % spec.nHead !== 0) {
    throw new Error(`${label}.nEmbd (${spec.nEmbd}) must be divisible by nHead (${spec.nHead})`);
  }
  if (spec.nHead % spec.nHeadKv !== 0) {
    throw new Error(`${label}.nHead (${spec.nHead}) must be divisible by nHeadKv (${spec.nHeadKv})`);
  }
  if ((spec.nEmbd / spec.nHead) % 2 !== 0) {
    throw new Error(`${label}: head dim nEmbd/nHead = ${spec.nEmbd / spec.nHead} must be even (RoPE)`);
  }
  if (spec.nVocab < SPM_MIN_VOCAB) {
    throw new Error(`${label}.nVocab must be >= ${SPM_MIN_VOCAB} (3 special + 256 byte tokens + at least one normal token), got ${spec.nVocab}`);
  }
  if (spec.nVocab > 0x7fffffff) throw new Error(`${label}.nVocab too large`);
  if (spec.tiedOutput !== undefined && typeof spec.tiedOutput !== 'boolean') throw new Error(`${label}.tiedOutput must be a boolean`);
  if (!Number.isSafeInteger(spec.seed)) throw new Error(`${label}.seed must be a safe integer, got ${spec.seed}`);
  if (spec.tensorType !== 'f32' && spec.tensorType !== 'f16') {
    throw new Error(`${label}.tensorType must be 'f32' or 'f16', got ${String(spec.tensorType)}`);
  }
  checkPositive(label, 'ropeFreqBase', spec.ropeFreqBase);
  checkPositive(label, 'rmsEps', spec.rmsEps);
  checkPositive(label, 'logitStd', spec.logitStd);
  checkPositive(label, 'residualGain', spec.residualGain);
  const lls = spec.lateLayerScale;
  if (lls !== undefined) {
    if (!Number.isInteger(lls.fromLayer) || lls.fromLayer < 0 || lls.fromLayer > spec.nLayer) {
      throw new Error(`${label}.lateLayerScale.fromLayer must be an integer in [0, nLayer=${spec.nLayer}], got ${lls.fromLayer}`);
    }
    if (!(Number.isFinite(lls.scale) && lls.scale >= 0)) {
      throw new Error(`${label}.lateLayerScale.scale must be a finite number >= 0, got ${lls.scale}`);
    }
  }
}

/** A spec with every default filled in (validated). */
interface ResolvedSpec extends RandomModelSpec, ModelShape {
  tiedOutput: boolean;
  slidingWindow: number;
  normJitter: number;
}

const archsWith = (pred: (a: RandomArch) => boolean) => RANDOM_ARCHS.filter(pred).join(', ');

/** Validates a spec, throwing an Error that names the offending field; returns it with its defaults. */
export function resolveRandomModelSpec(spec: RandomModelSpec): ResolvedSpec {
  const L: Label = 'RandomModelSpec';
  if (!(RANDOM_ARCHS as readonly string[]).includes(spec.arch)) {
    throw new Error(`${L}.arch must be one of ${RANDOM_ARCHS.join(', ')}, got ${String(spec.arch)}`);
  }
  validateCommonSpec(spec, L);
  const def = archDef(spec.arch, spec as ModelShape);
  const tiedOutput = spec.tiedOutput ?? def.output !== 'untied';
  if (def.output !== 'either' && tiedOutput !== (def.output === 'tied')) {
    throw new Error(
      `${L}.tiedOutput: ${spec.arch} ${def.output === 'tied' ? 'always ties its output (llama.cpp loads no output.weight)' : 'needs an untied output.weight'}`,
    );
  }
  if (spec.slidingWindow !== undefined) {
    if (!def.slidingWindow) throw new Error(`${L}.slidingWindow applies only to ${archsWith((a) => archDef(a, spec as ModelShape).slidingWindow)}`);
    checkPositiveInt(L, 'slidingWindow', spec.slidingWindow);
  }
  if (spec.normJitter !== undefined && !(Number.isFinite(spec.normJitter) && spec.normJitter >= 0)) {
    throw new Error(`${L}.normJitter must be a finite number >= 0, got ${spec.normJitter}`);
  }
  let nExpert: number | undefined;
  let nExpertUsed: number | undefined;
  if (def.moe) {
    nExpert = spec.nExpert ?? DEFAULT_N_EXPERT;
    nExpertUsed = spec.nExpertUsed ?? Math.min(DEFAULT_N_EXPERT_USED, nExpert);
    checkPositiveInt(L, 'nExpert', nExpert);
    checkPositiveInt(L, 'nExpertUsed', nExpertUsed);
    if (nExpert > MAX_EXPERTS) throw new Error(`${L}.nExpert must be at most ${MAX_EXPERTS}, got ${nExpert}`);
    if (nExpertUsed > nExpert) throw new Error(`${L}.nExpertUsed (${nExpertUsed}) must be at most nExpert (${nExpert})`);
  } else if (spec.nExpert !== undefined || spec.nExpertUsed !== undefined) {
    throw new Error(`${L}.nExpert / nExpertUsed apply only to the MoE architectures ${archsWith((a) => archDef(a, spec as ModelShape).moe)}`);
  }
  if (spec.name !== undefined && spec.vocabFrom === undefined && /phi-?3/i.test(spec.name)) {
    // llama.cpp's vocabulary loader then looks up <|endoftext|>, which the SPM vocabulary lacks
    throw new Error(`${L}.name must not contain "phi3" / "phi-3" with the built-in vocabulary, got ${spec.name}`);
  }
  return {
    ...spec,
    tiedOutput,
    slidingWindow: spec.slidingWindow ?? DEFAULT_SLIDING_WINDOW,
    normJitter: spec.normJitter ?? (spec.arch === 'llama' ? 0 : DEFAULT_NORM_JITTER),
    nExpert,
    nExpertUsed,
  };
}

/** The architecture metadata of a model (everything but the tokenizer). */
export interface ModelHyperparameters extends Omit<ModelShape, 'tiedOutput'> {
  /** <arch>.context_length */
  nCtx: number;
  ropeFreqBase: number;
  rmsEps: number;
  /** general.name */
  name: string;
  /** general.file_type (llama_ftype: 0 all F32, 1 mostly F16). */
  fileType: number;
  /** <arch>.attention.sliding_window where the architecture has one (default 8). */
  slidingWindow?: number;
}

/** general.* and `<arch>.*` metadata of a model, in the order random models write them. */
export function architectureMetadata(arch: RandomArch, h: ModelHyperparameters): [string, GgufMetadataValue][] {
  const shape: ModelShape & { slidingWindow: number } = { ...h, tiedOutput: true, slidingWindow: h.slidingWindow ?? DEFAULT_SLIDING_WINDOW };
  const def = archDef(arch, shape);
  const k = (key: string) => `${arch}.${key}`;
  return [
    ['general.architecture', { type: 'string', value: arch }],
    ['general.name', { type: 'string', value: h.name }],
    ['general.file_type', { type: 'u32', value: h.fileType }],
    [k('context_length'), { type: 'u32', value: h.nCtx }],
    [k('embedding_length'), { type: 'u32', value: h.nEmbd }],
    [k('block_count'), { type: 'u32', value: h.nLayer }],
    [k('feed_forward_length'), { type: 'u32', value: h.nFf }],
    [k('attention.head_count'), { type: 'u32', value: h.nHead }],
    [k('attention.head_count_kv'), def.headCountKv?.(shape) ?? { type: 'u32', value: h.nHeadKv }],
    [k('attention.layer_norm_rms_epsilon'), { type: 'f32', value: h.rmsEps }],
    [k('rope.dimension_count'), { type: 'u32', value: h.nEmbd / h.nHead }],
    [k('rope.freq_base'), { type: 'f32', value: h.ropeFreqBase }],
    [k('vocab_size'), { type: 'u32', value: h.nVocab }],
    ...def.keys(shape).map(([key, v]): [string, GgufMetadataValue] => [k(key), v]),
  ];
}

/** The tokenizer.* entries of `file`, in file order, and its token count. */
function copiedTokenizer(file: string): { entries: [string, GgufMetadataValue][]; nVocab: number } {
  const info = readGgufInfo(file);
  const tokens = info.metadata.get('tokenizer.ggml.tokens');
  if (tokens?.type !== 'array' || tokens.itemType !== 'string') throw new Error(`RandomModelSpec.vocabFrom: ${file} has no tokenizer.ggml.tokens`);
  const entries: [string, GgufMetadataValue][] = [];
  for (const [key, value] of info.metadata) if (key.startsWith('tokenizer.')) entries.push([key, value]);
  return { entries, nVocab: tokens.value.length };
}

function spmTokenizer(nVocab: number): [string, GgufMetadataValue][] {
  const vocab = buildSpmVocab(nVocab);
  return [
    ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: vocab.tokens }],
    ['tokenizer.ggml.scores', { type: 'array', itemType: 'f32', value: vocab.scores }],
    ['tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: vocab.types }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: SPM_BOS_ID }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: SPM_EOS_ID }],
    ['tokenizer.ggml.unknown_token_id', { type: 'u32', value: SPM_UNK_ID }],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }],
    ['tokenizer.ggml.add_eos_token', { type: 'bool', value: false }],
  ];
}

/** Metadata of a random model (exported for inspection and tests). */
export function randomModelMetadata(spec: RandomModelSpec): [string, GgufMetadataValue][] {
  const s = resolveRandomModelSpec(spec);
  let tokenizer: [string, GgufMetadataValue][];
  if (s.vocabFrom !== undefined) {
    const copied = copiedTokenizer(s.vocabFrom);
    if (copied.nVocab !== s.nVocab) throw new Error(`RandomModelSpec.nVocab (${s.nVocab}) must equal the ${copied.nVocab} tokens of vocabFrom ${s.vocabFrom}`);
    tokenizer = copied.entries;
  } else {
    tokenizer = spmTokenizer(s.nVocab);
  }
  const tag = s.arch.replace('phi3', 'phi'); // "phi3" in general.name switches llama.cpp's vocabulary to Phi-3's special tokens
  const name = s.name ?? `random-${tag}-L${s.nLayer}-E${s.nEmbd}-H${s.nHead}-KV${s.nHeadKv}-FF${s.nFf}-V${s.nVocab}-${s.tensorType}-seed${s.seed}`;
  return [
    ...architectureMetadata(s.arch, {
      ...s,
      name,
      fileType: s.tensorType === 'f16' ? 1 : 0,
      rmsEps: s.rmsEps ?? 1e-5,
      ropeFreqBase: s.ropeFreqBase ?? 10000,
    }),
    ...tokenizer,
  ];
}

/**
 * Data source: N(mean, std^2) values in the target type, seeded by (seed, tensor name), generated
 * in chunks (a few MB of memory whatever the tensor size).
 */
export function normalTensorData(seed: number, name: string, nElements: number, std: number, type: 'f32' | 'f16', mean = 0): () => Iterable<TensorChunk> {
  return function* () {
    const rng = new Xoshiro128(hashSeed(seed, name));
    const table32 = normalTableF32(std, mean);
    let table: Float32Array | Uint16Array = table32;
    let buf: Float32Array | Uint16Array;
    if (type === 'f16') {
      const t16 = new Uint16Array(table32.length);
      for (let i = 0; i < t16.length; i++) t16[i] = f32ToF16Bits(table32[i]);
      table = t16;
      buf = new Uint16Array(Math.min(CHUNK_ELEMENTS, nElements + (nElements & 1)));
    } else {
      buf = new Float32Array(Math.min(CHUNK_ELEMENTS, nElements + (nElements & 1)));
    }
    const bytesPer = buf.BYTES_PER_ELEMENT;
    let done = 0;
    while (done < nElements) {
      const n = Math.min(buf.length, nElements - done);
      const fill = n + (n & 1);
      rng.fillFromTable(fill === buf.length ? buf : buf.subarray(0, fill), table);
      done += n;
      yield new Uint8Array(buf.buffer, 0, n * bytesPer);
    }
  };
}

/** Data source: `n` F32 values all equal to `value` (norm weights). */
export function constantTensorData(n: number, value: number): () => Iterable<TensorChunk> {
  return () => [new Float32Array(n).fill(value)];
}

/** Tensor list (shapes, types, lazy data) of a random model. */
export function randomModelTensors(spec: RandomModelSpec): GgufTensorInput[] {
  const s = resolveRandomModelSpec(spec);
  return tensorsOf(s, archTensorSlots(s.arch, s));
}

function tensorsOf(s: ResolvedSpec, slots: TensorSlot[]): GgufTensorInput[] {
  const { gains, postNorm } = archDef(s.arch, s);
  const residualGain = s.residualGain ?? DEFAULT_RESIDUAL_GAIN;
  const lls = s.lateLayerScale;
  const late = (layer: number) => (lls && layer >= lls.fromLayer ? lls.scale : 1);
  // The logits have std logitStd when the output matrix has std logitStd / sqrt(nEmbd) (before the
  // architecture's logit factor). The blocks' share of the final hidden state relative to the token
  // embedding stays that of a plain llama model: `m` undoes the architecture's input / residual
  // factors and a tied token_embd's larger std (m = 1 for llama).
  const base = (s.logitStd ?? DEFAULT_LOGIT_STD) / Math.sqrt(s.nEmbd);
  const outputStd = gains.output === 1 ? base : base / gains.output;
  const m = ((s.tiedOutput ? 1 / gains.output : 1) * gains.input) / gains.residual;
  const normal = (name: string, shape: number[], std: number, type: 'f32' | 'f16', mean = 0): GgufTensorInput => ({
    name,
    shape,
    type: type === 'f16' ? GgmlType.F16 : GgmlType.F32,
    data: normalTensorData(s.seed, name, tensorElementCount(shape), std, type, mean),
  });
  const norm = (name: string, shape: number[], center: number): GgufTensorInput =>
    s.normJitter === 0
      ? { name, shape, type: GgmlType.F32, data: constantTensorData(shape[0], center) }
      : normal(name, shape, center * s.normJitter, 'f32', center);
  return slots.map(({ name, role, layer, shape, init }): GgufTensorInput => {
    switch (init) {
      case 'norm':
        return norm(name, shape, 1);
      case 'post_norm':
        return norm(name, shape, residualGain * late(layer) * m);
      case 'bias':
        return normal(name, shape, BIAS_STD, 'f32');
      case 'residual_bias':
        return normal(name, shape, BIAS_STD * late(layer), 'f32');
      case 'sinks':
        return normal(name, shape, 1, 'f32');
      case 'f32_matrix':
        return normal(name, shape, 1 / Math.sqrt(shape[0]), 'f32');
      case 'token_embd':
        return normal(name, shape, s.tiedOutput ? outputStd : base, s.tensorType);
      case 'output':
        return normal(name, shape, outputStd, s.tensorType);
      case 'matrix':
      case 'residual': {
        // fan-in init: std = 1 / sqrt(ne[0]); the residual-writing matrices get the extra gain
        // (on post-norm architectures the norms after them do)
        let std = 1 / Math.sqrt(shape[0]);
        if (init === 'residual' && !postNorm) std *= residualGain * late(layer) * m;
        // the weighted mean of nExpertUsed experts (weights summing to 1) is ~1/sqrt(nExpertUsed) of one expert
        if (role === 'ffn_down_exps') std *= Math.sqrt(s.nExpertUsed!);
        if (role === 'attn_q' && gains.attention !== 1) std /= Math.sqrt(gains.attention); // q and k: the scores as with 1 / sqrt(head dim)
        if (role === 'attn_k' && gains.attention !== 1) std /= Math.sqrt(gains.attention);
        return normal(name, shape, std, s.tensorType);
      }
    }
  });
}

/**
 * Writes a seeded random GGUF of `spec.arch` that llama.cpp loads and decodes. Same spec =>
 * identical bytes. Tensor data is generated and streamed chunk by chunk (a few MB of memory). Synchronous.
 */
export function writeRandomModel(path: string, spec: RandomModelSpec): RandomModelResult {
  const t0 = performance.now();
  const metadata = randomModelMetadata(spec);
  const tensors = randomModelTensors(spec);
  const res = writeGguf(path, metadata, tensors);
  let nParams = 0;
  for (const t of tensors) nParams += tensorElementCount(t.shape);
  return { ...res, nParams, seconds: (performance.now() - t0) / 1000 };
}

/** Expected size in bytes of the tensor data of a random model (without header/padding). */
export function randomModelTensorBytes(spec: RandomModelSpec): number {
  return randomModelTensors(spec).reduce((sum, t) => sum + ggmlTensorByteSize(t.type, t.shape), 0);
}
