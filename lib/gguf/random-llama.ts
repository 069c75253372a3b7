// Random LLaMA models: the general random-model writer (random-model.ts) with arch 'llama', plus
// the LLaMA layout that lib/tools/training/create-model.ts builds on (tensor names and shapes, llama.*
// metadata). A LLaMA spec gives the same bytes as before the writer was generalised: all-ones norm
// weights and the same tensor and key order (test fixtures cache models keyed on this file and
// the two it builds on).
import { archTensorSlots, type LlamaShape } from './random-archs.js';
import {
  architectureMetadata,
  randomModelMetadata,
  randomModelTensorBytes,
  randomModelTensors,
  validateCommonSpec,
  writeRandomModel,
  type ModelHyperparameters,
  type RandomLlamaSpec,
  type RandomModelResult,
  type RandomModelSpec,
} from './random-model.js';
import type { GgufMetadataValue } from './types.js';
import type { GgufTensorInput } from './writer.js';

export type { LlamaShape } from './random-archs.js';
export { constantTensorData, normalTensorData, type RandomLlamaSpec } from './random-model.js';
export { sliceLlamaModel } from './slice-model.js';

export type RandomLlamaResult = RandomModelResult;

/** Validates a spec, throwing an Error that names the offending field. */
export function validateRandomLlamaSpec(spec: RandomLlamaSpec): void {
  validateCommonSpec(spec, 'RandomLlamaSpec');
  if (typeof spec.tiedOutput !== 'boolean') throw new Error('RandomLlamaSpec.tiedOutput must be a boolean');
}

function asModelSpec(spec: RandomLlamaSpec): RandomModelSpec {
  validateRandomLlamaSpec(spec);
  return { ...spec, arch: 'llama' };
}

/** The architecture metadata of a LLaMA model (everything but the tokenizer). */
export type LlamaHyperparameters = Omit<ModelHyperparameters, 'nExpert' | 'nExpertUsed' | 'slidingWindow'>;

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
  return archTensorSlots('llama', shape).map(({ name, role, layer, shape: s }) => ({
    name,
    role: role as LlamaTensorRole,
    layer,
    shape: s as [number] | [number, number],
  }));
}

/** general.* and llama.* metadata of a LLaMA model, in the order random models write them. */
export function llamaArchitectureMetadata(h: LlamaHyperparameters): [string, GgufMetadataValue][] {
  return architectureMetadata('llama', h);
}

/** Metadata for a random LLaMA model (exported for inspection and tests). */
export function randomLlamaMetadata(spec: RandomLlamaSpec): [string, GgufMetadataValue][] {
  return randomModelMetadata(asModelSpec(spec));
}

/** Tensor list (shapes, types, lazy data) of a random LLaMA model. */
export function randomLlamaTensors(spec: RandomLlamaSpec): GgufTensorInput[] {
  return randomModelTensors(asModelSpec(spec));
}

/**
 * Writes a seeded random LLaMA GGUF (SPM tokenizer, see vocab.ts). Same spec => identical bytes.
 * Tensor data is generated and streamed chunk by chunk (a few MB of memory). Synchronous.
 */
export function writeRandomLlamaModel(path: string, spec: RandomLlamaSpec): RandomLlamaResult {
  return writeRandomModel(path, asModelSpec(spec));
}

/** Expected size in bytes of the tensor data of a random LLaMA model (without header/padding). */
export function randomLlamaTensorBytes(spec: RandomLlamaSpec): number {
  return randomModelTensorBytes(asModelSpec(spec));
}
