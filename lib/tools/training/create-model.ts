// createModel(): a fresh, untrained LLaMA GGUF (all tensors F32) to train from scratch, with the
// tokenizer of an existing GGUF copied verbatim. Built from the GGUF writer's LLaMA layout (the same
// tensor names, shapes and llama.* metadata as the random test models) with the usual from-scratch
// initialisation of GPT-2 / LLaMA training.
import fs from 'node:fs';

import { GgmlType, tensorElementCount } from '../../gguf/constants.js';
import { constantTensorData, llamaArchitectureMetadata, llamaTensorSlots, normalTensorData } from '../../gguf/random-llama.js';
import { readGgufInfo, type GgufFileInfo } from '../../gguf/reader.js';
import type { GgufMetadataValue } from '../../gguf/types.js';
import { writeGguf, type GgufTensorInput } from '../../gguf/writer.js';
import { nearestHint } from '../../util/option-keys.js';

export interface CreateModelSpec {
  /** Number of transformer blocks (llama.block_count). */
  layers: number;
  /** Width of the residual stream (llama.embedding_length). */
  embeddingSize: number;
  /** Attention (query) heads (llama.attention.head_count). */
  heads: number;
  /** Key/value heads (llama.attention.head_count_kv), default = heads; heads must be a multiple of it. */
  headsKv?: number;
  /** Hidden size of the SwiGLU feed-forward (llama.feed_forward_length). */
  feedForwardSize: number;
  /**
   * Path of a GGUF whose tokenizer is copied verbatim: every tokenizer.* key (tokens, scores,
   * token types, merges, special token ids, model, pre, add_bos, chat template, ...). The
   * vocabulary size is its token count.
   */
  tokenizer: string;
  /** llama.context_length, default 2048. */
  contextLength?: number;
  /** Default true: no output.weight, the LM head is token_embd. */
  tiedOutput?: boolean;
  /** Seed of the deterministic initialisation, default 0: the same spec gives the same bytes. */
  seed?: number;
  /** llama.rope.freq_base, default 10000. */
  ropeFreqBase?: number;
  /** llama.attention.layer_norm_rms_epsilon, default 1e-5. */
  rmsEps?: number;
  /**
   * Standard deviation of every matrix's initial weights (attn_output and ffn_down: divided by
   * sqrt(2 * layers)), default 0.02 (GPT-2's). At small widths 0.02 leaves the attention logits
   * near zero, where learning an attention pattern is slow: a 2-layer, 64-wide model learnt to copy
   * the token two back in 600 steps with 0.125 (1 / sqrt(64)) and not in 1,000 with 0.02.
   */
  initStd?: number;
  /** general.name; default derived from the shape and seed. */
  name?: string;
}

export interface CreateModelResult {
  path: string;
  /** Number of weights (elements of all tensors). */
  parameters: number;
  /** Size of the written file. */
  bytes: number;
}

/** Default init std of every matrix (GPT-2 / LLaMA from scratch). */
const INIT_STD = 0.02;

const SPEC_KEYS: readonly (keyof CreateModelSpec)[] = [
  'layers',
  'embeddingSize',
  'heads',
  'headsKv',
  'feedForwardSize',
  'tokenizer',
  'contextLength',
  'tiedOutput',
  'seed',
  'ropeFreqBase',
  'rmsEps',
  'initStd',
  'name',
];

/** Largest dimension accepted (ggml and the GGUF u32 metadata fields). */
const MAX_DIMENSION = 0x7fffffff;

function checkPositiveInt(field: string, v: unknown): number {
  if (typeof v !== 'number') throw new TypeError(`createModel: spec.${field} must be a positive integer, got ${typeof v}`);
  if (!Number.isInteger(v) || v <= 0 || v > MAX_DIMENSION) {
    throw new RangeError(`createModel: spec.${field} must be a positive integer (at most ${MAX_DIMENSION}), got ${v}`);
  }
  return v;
}

function checkPositiveNumber(field: string, v: unknown): number {
  if (typeof v !== 'number') throw new TypeError(`createModel: spec.${field} must be a positive number, got ${typeof v}`);
  if (!(Number.isFinite(v) && v > 0)) throw new RangeError(`createModel: spec.${field} must be a finite positive number, got ${v}`);
  return v;
}

interface ResolvedSpec {
  layers: number;
  embeddingSize: number;
  heads: number;
  headsKv: number;
  feedForwardSize: number;
  tokenizer: string;
  contextLength: number;
  tiedOutput: boolean;
  seed: number;
  ropeFreqBase: number;
  rmsEps: number;
  initStd: number;
  name: string | undefined;
}

/** Checks the spec's fields (not the tokenizer file) and fills in the defaults. */
function resolveSpec(spec: CreateModelSpec): ResolvedSpec {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    throw new TypeError(`createModel: spec must be an object, got ${spec === null ? 'null' : Array.isArray(spec) ? 'an array' : typeof spec}`);
  }
  for (const key of Object.keys(spec)) {
    if ((SPEC_KEYS as readonly string[]).includes(key)) continue;
    const hint = nearestHint(key, SPEC_KEYS);
    throw new TypeError(`createModel: unknown spec key "${key}"${hint}; known keys: ${SPEC_KEYS.join(', ')}`);
  }
  const layers = checkPositiveInt('layers', spec.layers);
  const embeddingSize = checkPositiveInt('embeddingSize', spec.embeddingSize);
  const heads = checkPositiveInt('heads', spec.heads);
  const headsKv = spec.headsKv === undefined ? heads : checkPositiveInt('headsKv', spec.headsKv);
  const feedForwardSize = checkPositiveInt('feedForwardSize', spec.feedForwardSize);
  const contextLength = spec.contextLength === undefined ? 2048 : checkPositiveInt('contextLength', spec.contextLength);
  if (embeddingSize % heads !== 0) {
    throw new RangeError(`createModel: spec.embeddingSize (${embeddingSize}) must be divisible by spec.heads (${heads})`);
  }
  if (heads % headsKv !== 0) throw new RangeError(`createModel: spec.heads (${heads}) must be divisible by spec.headsKv (${headsKv})`);
  if ((embeddingSize / heads) % 2 !== 0) {
    throw new RangeError(`createModel: the head dimension spec.embeddingSize / spec.heads = ${embeddingSize / heads} must be even (RoPE rotates pairs)`);
  }
  if (typeof spec.tokenizer !== 'string') throw new TypeError(`createModel: spec.tokenizer must be the path of a GGUF file, got ${typeof spec.tokenizer}`);
  if (spec.tokenizer === '') throw new RangeError('createModel: spec.tokenizer must be the path of a GGUF file, got an empty string');
  if (spec.tiedOutput !== undefined && typeof spec.tiedOutput !== 'boolean') {
    throw new TypeError(`createModel: spec.tiedOutput must be a boolean, got ${typeof spec.tiedOutput}`);
  }
  if (spec.seed !== undefined) {
    if (typeof spec.seed !== 'number') throw new TypeError(`createModel: spec.seed must be an integer, got ${typeof spec.seed}`);
    if (!Number.isSafeInteger(spec.seed)) throw new RangeError(`createModel: spec.seed must be a safe integer, got ${spec.seed}`);
  }
  const ropeFreqBase = spec.ropeFreqBase === undefined ? 10000 : checkPositiveNumber('ropeFreqBase', spec.ropeFreqBase);
  const rmsEps = spec.rmsEps === undefined ? 1e-5 : checkPositiveNumber('rmsEps', spec.rmsEps);
  const initStd = spec.initStd === undefined ? INIT_STD : checkPositiveNumber('initStd', spec.initStd);
  if (spec.name !== undefined && typeof spec.name !== 'string') throw new TypeError(`createModel: spec.name must be a string, got ${typeof spec.name}`);
  return {
    layers,
    embeddingSize,
    heads,
    headsKv,
    feedForwardSize,
    tokenizer: spec.tokenizer,
    contextLength,
    tiedOutput: spec.tiedOutput ?? true,
    seed: spec.seed ?? 0,
    ropeFreqBase,
    rmsEps,
    initStd,
    name: spec.name,
  };
}

/** Carries a Node error code (ENOENT, ...) over to a wrapping error. */
function withCode(err: Error, cause: unknown): Error {
  const code = (cause as NodeJS.ErrnoException | null)?.code;
  return code === undefined ? err : Object.assign(err, { code });
}

/** The tokenizer.* entries of `file`, in file order, and its token count. */
function readTokenizer(file: string): { entries: [string, GgufMetadataValue][]; nVocab: number } {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (e) {
    throw withCode(new Error(`createModel: spec.tokenizer: cannot read ${file}: ${(e as Error).message}`, { cause: e }), e);
  }
  if (!stat.isFile()) throw new Error(`createModel: spec.tokenizer: ${file} is not a file`);
  let info: GgufFileInfo;
  try {
    info = readGgufInfo(file);
  } catch (e) {
    throw new Error(`createModel: spec.tokenizer: ${file} is not a readable GGUF file: ${(e as Error).message}`, { cause: e });
  }
  const tokens = info.metadata.get('tokenizer.ggml.tokens');
  if (tokens?.type !== 'array' || tokens.itemType !== 'string' || tokens.value.length === 0) {
    throw new Error(`createModel: spec.tokenizer: ${file} has no tokenizer (tokenizer.ggml.tokens, a non-empty string array)`);
  }
  if (tokens.value.length > MAX_DIMENSION) throw new Error(`createModel: spec.tokenizer: ${file} has too many tokens (${tokens.value.length})`);
  const entries: [string, GgufMetadataValue][] = [];
  for (const [key, value] of info.metadata) if (key.startsWith('tokenizer.')) entries.push([key, value]);
  return { entries, nVocab: tokens.value.length };
}

/**
 * Writes a fresh LLaMA model to train from scratch: every tensor F32; token_embd, output (when
 * untied) and the attention / feed-forward matrices ~ N(0, 0.02^2), the matrices that write into the
 * residual stream (attn_output, ffn_down) ~ N(0, (0.02 / sqrt(2 * layers))^2), every norm weight 1.
 * The draws are seeded by (seed, tensor name), so the same spec gives the same bytes. The tokenizer
 * (every tokenizer.* key) is copied from `spec.tokenizer`.
 *
 * The file is written to `${path}.tmp-<pid>` and renamed onto `path`, so a failure never leaves a
 * partial model (nor the temporary file). The writing itself is synchronous (streamed, a few MB of
 * memory); validation errors and write failures reject the returned promise.
 */
export async function createModel(path: string, spec: CreateModelSpec): Promise<CreateModelResult> {
  if (typeof path !== 'string' || path === '') throw new TypeError('createModel: path must be a non-empty string');
  const s = resolveSpec(spec);
  const { entries: tokenizerEntries, nVocab } = readTokenizer(s.tokenizer);

  const shape = {
    nLayer: s.layers,
    nEmbd: s.embeddingSize,
    nHead: s.heads,
    nHeadKv: s.headsKv,
    nFf: s.feedForwardSize,
    nVocab,
    tiedOutput: s.tiedOutput,
  };
  const name = s.name ?? `untrained-llama-L${s.layers}-E${s.embeddingSize}-H${s.heads}-KV${s.headsKv}-FF${s.feedForwardSize}-V${nVocab}-seed${s.seed}`;
  const metadata: [string, GgufMetadataValue][] = [
    ...llamaArchitectureMetadata({ ...shape, nCtx: s.contextLength, ropeFreqBase: s.ropeFreqBase, rmsEps: s.rmsEps, name, fileType: 0 }),
    ...tokenizerEntries,
  ];

  const residualStd = s.initStd / Math.sqrt(2 * s.layers);
  let parameters = 0;
  const tensors = llamaTensorSlots(shape).map(({ name: tensorName, role, shape: dims }): GgufTensorInput => {
    const n = tensorElementCount(dims);
    parameters += n;
    if (dims.length === 1) return { name: tensorName, shape: dims, type: GgmlType.F32, data: constantTensorData(n, 1) };
    const std = role === 'attn_output' || role === 'ffn_down' ? residualStd : s.initStd;
    return { name: tensorName, shape: dims, type: GgmlType.F32, data: normalTensorData(s.seed, tensorName, n, std, 'f32') };
  });

  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const written = writeGguf(tmp, metadata, tensors);
    fs.renameSync(tmp, path);
    return { path, parameters, bytes: written.fileSize };
  } catch (e) {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // the original error matters more (tmp is not a file we wrote, e.g. a directory)
    }
    throw withCode(new Error(`createModel: cannot write ${path}: ${(e as Error).message}`, { cause: e }), e);
  }
}
