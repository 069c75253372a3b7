import { GgmlType, ggmlTensorByteSize, tensorElementCount } from './constants.js';
import { f32ToF16Bits } from './f16.js';
import { Xoshiro128, hashSeed, normalTableF32 } from './random.js';
import { getGgufMetadata, iterateTensorBytes, readGgufInfo, type GgufFileInfo } from './reader.js';
import type { GgufMetadataValue } from './types.js';
import { SPM_BOS_ID, SPM_EOS_ID, SPM_MIN_VOCAB, SPM_UNK_ID, buildSpmVocab } from './vocab.js';
import { writeGguf, type GgufTensorInput, type TensorChunk, type WriteGgufResult } from './writer.js';

export interface RandomLlamaSpec extends LlamaShape {
  /** llama.context_length */
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

export interface RandomLlamaResult extends WriteGgufResult {
  nParams: number;
  seconds: number;
}

function checkPositiveInt(name: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new Error(`RandomLlamaSpec.${name} must be a positive integer, got ${String(v)}`);
  }
}

/** Validates a spec, throwing an Error that names the offending field. */
export function validateRandomLlamaSpec(spec: RandomLlamaSpec): void {
  for (const k of ['nLayer', 'nEmbd', 'nHead', 'nHeadKv', 'nFf', 'nVocab', 'nCtx'] as const) checkPositiveInt(k, spec[k]);
  if (spec.nEmbd % spec.nHead !== 0) {
    throw new Error(`RandomLlamaSpec.nEmbd (${spec.nEmbd}) must be divisible by nHead (${spec.nHead})`);
  }
  if (spec.nHead % spec.nHeadKv !== 0) {
    throw new Error(`RandomLlamaSpec.nHead (${spec.nHead}) must be divisible by nHeadKv (${spec.nHeadKv})`);
  }
  if ((spec.nEmbd / spec.nHead) % 2 !== 0) {
    throw new Error(`RandomLlamaSpec: head dim nEmbd/nHead = ${spec.nEmbd / spec.nHead} must be even (RoPE)`);
  }
  if (spec.nVocab < SPM_MIN_VOCAB) {
    throw new Error(
      `RandomLlamaSpec.nVocab must be >= ${SPM_MIN_VOCAB} (3 special + 256 byte tokens + at least one normal token), got ${spec.nVocab}`,
    );
  }
  if (spec.nVocab > 0x7fffffff) throw new Error('RandomLlamaSpec.nVocab too large');
  if (typeof spec.tiedOutput !== 'boolean') throw new Error('RandomLlamaSpec.tiedOutput must be a boolean');
  if (!Number.isSafeInteger(spec.seed)) throw new Error(`RandomLlamaSpec.seed must be a safe integer, got ${spec.seed}`);
  if (spec.tensorType !== 'f32' && spec.tensorType !== 'f16') {
    throw new Error(`RandomLlamaSpec.tensorType must be 'f32' or 'f16', got ${String(spec.tensorType)}`);
  }
  if (spec.ropeFreqBase !== undefined && !(spec.ropeFreqBase > 0 && Number.isFinite(spec.ropeFreqBase))) {
    throw new Error(`RandomLlamaSpec.ropeFreqBase must be a positive number, got ${spec.ropeFreqBase}`);
  }
  if (spec.rmsEps !== undefined && !(spec.rmsEps > 0 && Number.isFinite(spec.rmsEps))) {
    throw new Error(`RandomLlamaSpec.rmsEps must be a positive number, got ${spec.rmsEps}`);
  }
  if (spec.logitStd !== undefined && !(spec.logitStd > 0 && Number.isFinite(spec.logitStd))) {
    throw new Error(`RandomLlamaSpec.logitStd must be a positive number, got ${spec.logitStd}`);
  }
  if (spec.residualGain !== undefined && !(spec.residualGain > 0 && Number.isFinite(spec.residualGain))) {
    throw new Error(`RandomLlamaSpec.residualGain must be a positive number, got ${spec.residualGain}`);
  }
  const lls = spec.lateLayerScale;
  if (lls !== undefined) {
    if (!Number.isInteger(lls.fromLayer) || lls.fromLayer < 0 || lls.fromLayer > spec.nLayer) {
      throw new Error(`RandomLlamaSpec.lateLayerScale.fromLayer must be an integer in [0, nLayer=${spec.nLayer}], got ${lls.fromLayer}`);
    }
    if (!(Number.isFinite(lls.scale) && lls.scale >= 0)) {
      throw new Error(`RandomLlamaSpec.lateLayerScale.scale must be a finite number >= 0, got ${lls.scale}`);
    }
  }
}

const CHUNK_ELEMENTS = 1 << 20;
const DEFAULT_LOGIT_STD = 4;
const DEFAULT_RESIDUAL_GAIN = 4;

// ---------------------------------------------------------------------------------------------
// Shared LLaMA layout (also used by lib/training/create-model.ts): tensor names and shapes,
// llama.* metadata and seeded tensor data. Kept in this file because test fixtures key their
// cached models on its source.

/** What fixes a LLaMA model's tensor names and shapes. */
export interface LlamaShape {
  nLayer: number;
  nEmbd: number;
  nHead: number;
  nHeadKv: number;
  nFf: number;
  nVocab: number;
  /** If false, a separate output.weight is written; if true the output reuses token_embd. */
  tiedOutput: boolean;
}

/** The architecture metadata of a LLaMA model (everything but the tokenizer). */
export interface LlamaHyperparameters extends Omit<LlamaShape, 'tiedOutput'> {
  /** llama.context_length */
  nCtx: number;
  ropeFreqBase: number;
  rmsEps: number;
  /** general.name */
  name: string;
  /** general.file_type (llama_ftype: 0 all F32, 1 mostly F16). */
  fileType: number;
}

export type LlamaTensorRole =
  | 'token_embd'
  | 'attn_norm'
  | 'attn_q'
  | 'attn_k'
  | 'attn_v'
  | 'attn_output'
  | 'ffn_norm'
  | 'ffn_gate'
  | 'ffn_up'
  | 'ffn_down'
  | 'output_norm'
  | 'output';

export interface LlamaTensorSlot {
  name: string;
  role: LlamaTensorRole;
  /** Block index, or -1 for token_embd, output_norm and output. */
  layer: number;
  /** ggml ne order: [n_embd] for norms, [ne0, ne1] for matrices. */
  shape: [number] | [number, number];
}

/**
 * Every tensor of a LLaMA model with the names and shapes llama.cpp's LLM_ARCH_LLAMA loader
 * expects, in file order: token_embd, the blocks (attn_norm, attn_q/k/v/output, ffn_norm,
 * ffn_gate/up/down), output_norm, and output unless the output is tied to token_embd.
 */
export function llamaTensorSlots(shape: LlamaShape): LlamaTensorSlot[] {
  const { nEmbd, nFf, nVocab } = shape;
  const nEmbdKv = (nEmbd / shape.nHead) * shape.nHeadKv;
  const slots: LlamaTensorSlot[] = [{ name: 'token_embd.weight', role: 'token_embd', layer: -1, shape: [nEmbd, nVocab] }];
  for (let il = 0; il < shape.nLayer; il++) {
    const add = (role: LlamaTensorRole, s: [number] | [number, number]): void => {
      slots.push({ name: `blk.${il}.${role}.weight`, role, layer: il, shape: s });
    };
    add('attn_norm', [nEmbd]);
    add('attn_q', [nEmbd, nEmbd]);
    add('attn_k', [nEmbd, nEmbdKv]);
    add('attn_v', [nEmbd, nEmbdKv]);
    add('attn_output', [nEmbd, nEmbd]);
    add('ffn_norm', [nEmbd]);
    add('ffn_gate', [nEmbd, nFf]);
    add('ffn_up', [nEmbd, nFf]);
    add('ffn_down', [nFf, nEmbd]);
  }
  slots.push({ name: 'output_norm.weight', role: 'output_norm', layer: -1, shape: [nEmbd] });
  if (!shape.tiedOutput) slots.push({ name: 'output.weight', role: 'output', layer: -1, shape: [nEmbd, nVocab] });
  return slots;
}

/** general.* and llama.* metadata of a LLaMA model, in the order random models write them. */
export function llamaArchitectureMetadata(h: LlamaHyperparameters): [string, GgufMetadataValue][] {
  return [
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['general.name', { type: 'string', value: h.name }],
    ['general.file_type', { type: 'u32', value: h.fileType }],
    ['llama.context_length', { type: 'u32', value: h.nCtx }],
    ['llama.embedding_length', { type: 'u32', value: h.nEmbd }],
    ['llama.block_count', { type: 'u32', value: h.nLayer }],
    ['llama.feed_forward_length', { type: 'u32', value: h.nFf }],
    ['llama.attention.head_count', { type: 'u32', value: h.nHead }],
    ['llama.attention.head_count_kv', { type: 'u32', value: h.nHeadKv }],
    ['llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: h.rmsEps }],
    ['llama.rope.dimension_count', { type: 'u32', value: h.nEmbd / h.nHead }],
    ['llama.rope.freq_base', { type: 'f32', value: h.ropeFreqBase }],
    ['llama.vocab_size', { type: 'u32', value: h.nVocab }],
  ];
}

/**
 * Data source: N(0, std^2) values in the target type, seeded by (seed, tensor name), generated in
 * chunks (a few MB of memory whatever the tensor size).
 */
export function normalTensorData(
  seed: number,
  name: string,
  nElements: number,
  std: number,
  type: 'f32' | 'f16',
): () => Iterable<TensorChunk> {
  return function* () {
    const rng = new Xoshiro128(hashSeed(seed, name));
    const table32 = normalTableF32(std);
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

/** Metadata for a random LLaMA model (exported for inspection and tests). */
export function randomLlamaMetadata(spec: RandomLlamaSpec): [string, GgufMetadataValue][] {
  validateRandomLlamaSpec(spec);
  const vocab = buildSpmVocab(spec.nVocab);
  const name =
    spec.name ??
    `random-llama-L${spec.nLayer}-E${spec.nEmbd}-H${spec.nHead}-KV${spec.nHeadKv}-FF${spec.nFf}-V${spec.nVocab}-${spec.tensorType}-seed${spec.seed}`;
  return [
    ...llamaArchitectureMetadata({
      ...spec,
      name,
      fileType: spec.tensorType === 'f16' ? 1 : 0,
      rmsEps: spec.rmsEps ?? 1e-5,
      ropeFreqBase: spec.ropeFreqBase ?? 10000,
    }),
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

/** Tensor list (shapes, types, lazy data) of a random LLaMA model. */
export function randomLlamaTensors(spec: RandomLlamaSpec): GgufTensorInput[] {
  validateRandomLlamaSpec(spec);
  const wType = spec.tensorType === 'f16' ? GgmlType.F16 : GgmlType.F32;
  const logitStd = spec.logitStd ?? DEFAULT_LOGIT_STD;
  const residualGain = spec.residualGain ?? DEFAULT_RESIDUAL_GAIN;
  const lls = spec.lateLayerScale;
  return llamaTensorSlots(spec).map(({ name, role, layer, shape }): GgufTensorInput => {
    if (shape.length === 1) return { name, shape, type: GgmlType.F32, data: constantTensorData(shape[0], 1) };
    let std: number;
    if (role === 'token_embd' || role === 'output') {
      std = logitStd / Math.sqrt(spec.nEmbd);
    } else {
      // fan-in init: std = 1 / sqrt(ne[0]); the residual-writing matrices get the extra gain
      std = 1 / Math.sqrt(shape[0]);
      if (role === 'attn_output' || role === 'ffn_down') std *= residualGain * (lls && layer >= lls.fromLayer ? lls.scale : 1);
    }
    return { name, shape, type: wType, data: normalTensorData(spec.seed, name, shape[0] * shape[1], std, spec.tensorType) };
  });
}

/**
 * Writes a seeded random LLaMA GGUF (SPM tokenizer, see vocab.ts). Same spec => identical bytes.
 * Tensor data is generated and streamed chunk by chunk (a few MB of memory). Synchronous.
 */
export function writeRandomLlamaModel(path: string, spec: RandomLlamaSpec): RandomLlamaResult {
  const t0 = performance.now();
  const metadata = randomLlamaMetadata(spec);
  const tensors = randomLlamaTensors(spec);
  const res = writeGguf(path, metadata, tensors);
  let nParams = 0;
  for (const t of tensors) nParams += tensorElementCount(t.shape);
  return { ...res, nParams, seconds: (performance.now() - t0) / 1000 };
}

/** Expected size in bytes of the tensor data of a random LLaMA model (without header/padding). */
export function randomLlamaTensorBytes(spec: RandomLlamaSpec): number {
  return randomLlamaTensors(spec).reduce((s, t) => s + ggmlTensorByteSize(t.type, t.shape), 0);
}

const PER_LAYER_ARRAY_KEYS = ['attention.head_count', 'attention.head_count_kv', 'feed_forward_length'];

/**
 * Copies a GGUF model keeping only blocks `blk.<i>.*` with i < nLayers (and every non-block tensor:
 * token_embd, output_norm, output, rope_freqs, ...), setting `<arch>.block_count` = nLayers. All other
 * metadata is copied unchanged (per-layer arrays of head counts / FFN lengths are truncated).
 * Tensor data of any ggml type is copied byte for byte, streamed.
 */
export function sliceLlamaModel(srcPath: string, dstPath: string, nLayers: number): WriteGgufResult {
  const info: GgufFileInfo = readGgufInfo(srcPath);
  const arch = getGgufMetadata(info, 'general.architecture');
  if (typeof arch !== 'string') throw new Error(`${srcPath}: missing general.architecture`);
  const blockKey = `${arch}.block_count`;
  const blockValue = info.metadata.get(blockKey);
  if (!blockValue || typeof blockValue.value !== 'number') throw new Error(`${srcPath}: missing numeric ${blockKey}`);
  const nOld = blockValue.value;
  if (!Number.isInteger(nLayers) || nLayers < 1 || nLayers > nOld) {
    throw new Error(`sliceLlamaModel: nLayers must be an integer in [1, ${nOld}], got ${nLayers}`);
  }

  const metadata: [string, GgufMetadataValue][] = [];
  for (const [key, value] of info.metadata) {
    if (key === blockKey) {
      metadata.push([key, { ...value, value: nLayers } as GgufMetadataValue]);
    } else if (
      value.type === 'array' &&
      value.value.length === nOld &&
      PER_LAYER_ARRAY_KEYS.some((k) => key === `${arch}.${k}`)
    ) {
      const v = value.value as ArrayLike<unknown> & { slice(a: number, b: number): unknown };
      metadata.push([key, { ...value, value: v.slice(0, nLayers) } as GgufMetadataValue]);
    } else {
      metadata.push([key, value]);
    }
  }

  const tensors: GgufTensorInput[] = [];
  for (const t of info.tensors) {
    const m = /^blk\.(\d+)\./.exec(t.name);
    if (m && Number(m[1]) >= nLayers) continue;
    tensors.push({ name: t.name, shape: t.shape, type: t.type, data: () => iterateTensorBytes(srcPath, t) });
  }
  return writeGguf(dstPath, metadata, tensors, { alignment: info.alignment });
}
