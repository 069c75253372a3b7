// Checks a GGUF model file before llama.cpp sees it. llama.cpp trusts its input in places: a
// duplicate token text, an integer-typed weight or a norm that is not F32 ends in an assertion or
// a null kernel, which takes the whole host process down. Every rule here names the fault, so a
// rejection says what is wrong with the file, and the loader never reaches those paths.
//
// Structure (the GGUF reader), hyper-parameter ranges, tensor types per role and the vocabulary
// are checked for every architecture; tensor names and shapes against the hyper-parameters for the
// architectures the layer-range patch converted (model-validation-shapes.ts has the rules; llama.cpp
// checks the others' shapes itself).
import { GgmlType, ggmlTypeName, type GgmlTypeName } from '../gguf/constants.js';
import { readGgufInfo, type GgufFileInfo } from '../gguf/reader.js';
import type { GgufMetadataValue } from '../gguf/types.js';
import { isRecurrentOrHybrid } from './architectures.js';
import { checkArchTensors, type ShapeHyperparameters } from './validation-shapes.js';

/** What kind of fault a model file has. */
export type ModelFileFault =
  | 'structure' // not a readable GGUF file: magic, version, lengths, offsets, alignment, truncation
  | 'architecture' // missing or unsupported architecture
  | 'hyperparameter' // a hyper-parameter missing, of the wrong type or out of range
  | 'tensor-type' // a tensor type that its role cannot compute with
  | 'tensor-shape' // a tensor whose shape does not match the hyper-parameters
  | 'tensor-missing' // a tensor the architecture needs is absent (or one is duplicated)
  | 'vocabulary'; // tokens, scores, token types, merges or special tokens unusable

/** A model file rejected before loading. `fault` is the kind, the message says exactly what. */
export class ModelFileError extends Error {
  readonly code = 'ERR_MODEL_FILE';
  constructor(
    readonly fault: ModelFileFault,
    readonly path: string,
    /** What is wrong, without the path. */
    readonly detail: string,
  ) {
    super(`invalid model file ${path}: ${detail}`);
    this.name = 'ModelFileError';
  }
  /** The fault kind (the fuzz report and tests group rejections by it). */
  get reason(): string {
    return this.fault;
  }
}

// llama.cpp's LLAMA_MAX_LAYERS and LLAMA_MAX_EXPERTS
const MAX_LAYERS = 512;
const MAX_EXPERTS = 512;

/** Types whose CPU matrix multiplication and row lookup exist (ggml-cpu type_traits_cpu has a vec_dot). */
const MATRIX_TYPES: ReadonlySet<GgmlTypeName> = new Set<GgmlTypeName>([
  'F32',
  'F16',
  'BF16',
  'Q4_0',
  'Q4_1',
  'Q5_0',
  'Q5_1',
  'Q8_0',
  'Q2_K',
  'Q3_K',
  'Q4_K',
  'Q5_K',
  'Q6_K',
  'IQ2_XXS',
  'IQ2_XS',
  'IQ3_XXS',
  'IQ1_S',
  'IQ4_NL',
  'IQ3_S',
  'IQ2_S',
  'IQ4_XS',
  'IQ1_M',
  'TQ1_0',
  'TQ2_0',
  'MXFP4',
  'NVFP4',
  'Q1_0',
  'Q2_0',
]);

const ROPE_SCALING_TYPES = ['none', 'linear', 'yarn', 'longrope'];
/** Tokenizers the library generates with: SentencePiece-style ("llama") and byte-level BPE ("gpt2"). */
const TOKENIZERS = ['llama', 'gpt2'];
const TOKEN_TYPE_MAX = 6; // LLAMA_TOKEN_TYPE_BYTE
const TOKEN_TYPE_BYTE = 6;
const SPECIAL_TOKEN_KEYS = [
  'bos',
  'eos',
  'eot',
  'eom',
  'unknown',
  'seperator',
  'padding',
  'mask',
  'cls',
  'fim_pre',
  'fim_suf',
  'fim_mid',
  'fim_pad',
  'fim_rep',
  'fim_sep',
];
const NULL_TOKEN_U32 = 0xffffffff;

/** Reads and checks a model file's header; returns it, or throws ModelFileError. Reads no tensor data. */
export function validateModelFile(path: string): GgufFileInfo {
  let info: GgufFileInfo;
  try {
    info = readGgufInfo(path);
  } catch (e) {
    const message = e instanceof Error ? e.message.replace(`${path}: `, '') : String(e);
    throw new ModelFileError('structure', path, message);
  }
  checkModelInfo(info);
  return info;
}

/** The checks of validateModelFile on a header already read. */
export function checkModelInfo(info: GgufFileInfo): void {
  const fail = (fault: ModelFileFault, detail: string): never => {
    throw new ModelFileError(fault, info.path, detail);
  };
  checkStructure(info, fail);
  const arch = stringKey(info, 'general.architecture', fail) || fail('architecture', 'general.architecture is missing');
  const hp = checkHyperparameters(info, arch, fail);
  const nVocab = checkVocabulary(info, fail);
  checkTensorTypes(info, fail);
  checkArchTensors(arch, info.tensors, { ...hp, nVocab }, fail);
}

type Fail = (fault: ModelFileFault, detail: string) => never;

function checkStructure(info: GgufFileInfo, fail: Fail): void {
  const a = info.alignment;
  // llama.cpp's CPU kernels assume 32-byte aligned tensor data (AVX loads)
  if (a < 32 || (a & (a - 1)) !== 0 || a > 1 << 16) fail('structure', `general.alignment ${a} must be a power of two in [32, 65536]`);
  const names = new Set<string>();
  let expectedOffset = 0; // GGUF packs tensor data in table order, each padded to the alignment
  for (const t of info.tensors) {
    if (t.offset !== expectedOffset)
      fail('structure', `tensor ${t.name} has data offset ${t.offset}, expected ${expectedOffset} (tensor data must follow the table's order)`);
    expectedOffset += Math.ceil(t.byteSize / a) * a;
    if (names.has(t.name)) fail('tensor-missing', `tensor ${t.name} appears twice`);
    names.add(t.name);
    if (t.name.length === 0 || t.name.length >= 64) fail('structure', `tensor name "${t.name.slice(0, 80)}" must have 1 to 63 characters (GGML_MAX_NAME)`);
    if (t.nElements > 2 ** 50) fail('structure', `tensor ${t.name} has ${t.nElements} elements`);
  }
}

// ---- metadata access ----------------------------------------------------------------------------

const INTEGER_TYPES = new Set(['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'u64', 'i64']);

function scalarNumber(v: GgufMetadataValue): number | undefined {
  if (v.type === 'array' || v.type === 'string' || v.type === 'bool') return undefined;
  return Number(v.value);
}

function stringKey(info: GgufFileInfo, key: string, fail: Fail): string | undefined {
  const v = info.metadata.get(key);
  if (v === undefined) return undefined;
  if (v.type !== 'string') fail('hyperparameter', `${key} must be a string, not ${v.type}`);
  return v.value as string;
}

/** An integer key (scalar) in [min, max]; undefined when absent and not required. */
function intKey(info: GgufFileInfo, key: string, min: number, max: number, fail: Fail, required = false): number | undefined {
  const v = info.metadata.get(key);
  if (v === undefined) {
    if (required) fail('hyperparameter', `${key} is missing`);
    return undefined;
  }
  if (!INTEGER_TYPES.has(v.type)) fail('hyperparameter', `${key} must be an integer, not ${v.type}`);
  const n = scalarNumber(v)!;
  if (!(n >= min && n <= max)) fail('hyperparameter', `${key} = ${n} is outside [${min}, ${max}]`);
  return n;
}

/** An integer key that may be one value or one per layer (llama.cpp's get_key_or_arr). */
function perLayerIntKey(info: GgufFileInfo, key: string, nLayer: number, min: number, max: number, fail: Fail): number[] | undefined {
  const v = info.metadata.get(key);
  if (v === undefined) return undefined;
  if (v.type !== 'array') return [intKey(info, key, min, max, fail)!];
  if (v.itemType === 'string' || v.itemType === 'bool' || v.itemType === 'f32' || v.itemType === 'f64')
    fail('hyperparameter', `${key} must hold integers, not ${v.itemType}`);
  if (v.value.length !== nLayer) fail('hyperparameter', `${key} has ${v.value.length} values for ${nLayer} layers`);
  const out = Array.from(v.value as ArrayLike<number | bigint>, Number);
  for (const n of out) if (!(n >= min && n <= max)) fail('hyperparameter', `${key} holds ${n}, outside [${min}, ${max}]`);
  return out;
}

/** An integer scalar's value, else undefined (no checks). */
function integerValue(info: GgufFileInfo, key: string): number | undefined {
  const v = info.metadata.get(key);
  return v !== undefined && INTEGER_TYPES.has(v.type) ? scalarNumber(v) : undefined;
}

function floatKey(info: GgufFileInfo, key: string, min: number, max: number, fail: Fail, openMin = false): number | undefined {
  const v = info.metadata.get(key);
  if (v === undefined) return undefined;
  const n = scalarNumber(v);
  if (n === undefined) fail('hyperparameter', `${key} must be a number, not ${v.type}`);
  if (!Number.isFinite(n) || n! < min || n! > max || (openMin && n === min)) {
    fail('hyperparameter', `${key} = ${n} must be a finite number in ${openMin ? '(' : '['}${min}, ${max}]`);
  }
  return n;
}

// ---- hyper-parameters ---------------------------------------------------------------------------

/** Reads and range-checks the hyper-parameters; returns what the shape rules need. */
function checkHyperparameters(info: GgufFileInfo, arch: string, fail: Fail): Omit<ShapeHyperparameters, 'nVocab'> {
  const k = (name: string) => `${arch}.${name}`;
  const nLayer = intKey(info, k('block_count'), 1, MAX_LAYERS, fail, true)!;
  intKey(info, k('context_length'), 1, 2 ** 31 - 1, fail, true);
  const nEmbd = intKey(info, k('embedding_length'), 1, 2 ** 20, fail, true)!;
  const nFf = perLayerIntKey(info, k('feed_forward_length'), nLayer, 0, 2 ** 24, fail);
  const nHead = perLayerIntKey(info, k('attention.head_count'), nLayer, 0, 2 ** 14, fail) ?? [0];
  const nHeadKv = perLayerIntKey(info, k('attention.head_count_kv'), nLayer, 0, 2 ** 14, fail) ?? nHead;
  for (let il = 0; il < Math.max(nHead.length, nHeadKv.length); il++) {
    const h = nHead[Math.min(il, nHead.length - 1)];
    const hkv = nHeadKv[Math.min(il, nHeadKv.length - 1)];
    // a recurrent layer of a hybrid model has no KV heads; elsewhere llama.cpp divides by the count
    if (hkv === 0 && isRecurrentOrHybrid(arch)) continue;
    if (h > 0 && (hkv === 0 || h % hkv !== 0)) fail('hyperparameter', `attention.head_count ${h} is not a multiple of head_count_kv ${hkv}`);
  }
  const h0 = nHead[0];
  const keyLength = intKey(info, k('attention.key_length'), 1, 2 ** 16, fail);
  const valueLength = intKey(info, k('attention.value_length'), 1, 2 ** 16, fail);
  if (h0 > 0 && keyLength === undefined && nEmbd % h0 !== 0)
    fail('hyperparameter', `embedding_length ${nEmbd} is not a multiple of attention.head_count ${h0}`);
  const headK = keyLength ?? (h0 > 0 ? Math.floor(nEmbd / h0) : 0); // llama.cpp's integer division
  const headV = valueLength ?? (h0 > 0 ? Math.floor(nEmbd / h0) : 0);
  const nRot = intKey(info, k('rope.dimension_count'), 0, 2 ** 16, fail);
  if (nRot !== undefined && (nRot % 2 !== 0 || nRot > headK))
    fail('hyperparameter', `rope.dimension_count ${nRot} must be even and at most the head size ${headK}`);
  const full = { k: headK, v: headV, rot: nRot ?? headK };
  // The keys below are read without range checks: only the shape rules use them, for the
  // architectures they cover, and a wrong value there shows as a wrong size. (llama.cpp refuses
  // ill-typed values itself, and ignores an array as the sliding-window period.)
  const swa = {
    k: integerValue(info, k('attention.key_length_swa')) ?? headK,
    v: integerValue(info, k('attention.value_length_swa')) ?? headV,
    rot: integerValue(info, k('rope.dimension_count_swa')) ?? full.rot,
  };
  const slidingWindow = integerValue(info, k('attention.sliding_window'));
  const swaPattern = integerValue(info, k('attention.sliding_window_pattern'));

  const rmsEps = floatKey(info, k('attention.layer_norm_rms_epsilon'), 0, 1, fail, true);
  // llama.cpp's own saver (llama_model_save_to_file, used by trainModel) writes every
  // hyper-parameter, an unused LayerNorm epsilon of 0 among them; 0 is refused only where it is the norm in use
  floatKey(info, k('attention.layer_norm_epsilon'), 0, 1, fail, rmsEps === undefined);
  floatKey(info, k('rope.freq_base'), 0, 1e12, fail, true);
  floatKey(info, k('rope.scaling.factor'), 0, 1e6, fail);
  floatKey(info, k('rope.scaling.attn_factor'), 0, 1e6, fail);
  intKey(info, k('rope.scaling.original_context_length'), 0, 2 ** 31 - 1, fail);
  const scaling = stringKey(info, k('rope.scaling.type'), fail);
  if (scaling !== undefined && !ROPE_SCALING_TYPES.includes(scaling)) {
    fail('hyperparameter', `rope.scaling.type "${scaling}" is not one of ${ROPE_SCALING_TYPES.join(', ')}`);
  }

  const nExpert = intKey(info, k('expert_count'), 0, MAX_EXPERTS, fail) ?? 0;
  const used = perLayerIntKey(info, k('expert_used_count'), nLayer, 0, MAX_EXPERTS, fail) ?? [0];
  const usedMax = Math.max(...used);
  const hasRouter = info.tensors.some((t) => t.name.endsWith('.ffn_gate_inp.weight'));
  if (nExpert > 0) {
    if (usedMax < 1 || usedMax > nExpert) fail('hyperparameter', `expert_used_count ${usedMax} must be in [1, expert_count ${nExpert}]`);
    if (!hasRouter) fail('hyperparameter', `expert_count ${nExpert} on a model without expert router tensors`);
  } else if (usedMax > 0) {
    fail('hyperparameter', `expert_used_count ${usedMax} without expert_count`);
  }
  const groups = intKey(info, k('expert_group_count'), 0, MAX_EXPERTS, fail) ?? 0;
  if (groups > 0 && (nExpert === 0 || groups >= nExpert)) fail('hyperparameter', `expert_group_count ${groups} needs expert_count above it`);
  const nextn = intKey(info, k('nextn_predict_layers'), 0, nLayer, fail) ?? 0;
  const ffExp = info.metadata.get(k('expert_feed_forward_length'));
  const nFfExp = ffExp?.type === 'array' && INTEGER_TYPES.has(ffExp.itemType) ? Number(ffExp.value[0]) : integerValue(info, k('expert_feed_forward_length'));
  const nFfShexp = integerValue(info, k('expert_shared_feed_forward_length')) ?? 0;
  const labels = info.metadata.get(k('classifier.output_labels'));
  const nClsOut = labels?.type === 'array' && labels.value.length > 0 ? labels.value.length : 1;
  return {
    blockCount: nLayer,
    nextn,
    nEmbd,
    nHead,
    nHeadKv,
    nFf,
    full,
    swa,
    slidingWindow,
    swaPattern,
    nExpert,
    nExpertUsed: used[0],
    nFfExp,
    nFfShexp,
    nClsOut,
  };
}

// ---- vocabulary ---------------------------------------------------------------------------------

function checkVocabulary(info: GgufFileInfo, fail: Fail): number {
  const model = stringKey(info, 'tokenizer.ggml.model', fail);
  if (model === undefined) fail('vocabulary', 'tokenizer.ggml.model is missing');
  if (!TOKENIZERS.includes(model!)) fail('vocabulary', `tokenizer "${model}" is not supported (${TOKENIZERS.join(', ')})`);
  const tv = info.metadata.get('tokenizer.ggml.tokens');
  if (tv?.type !== 'array' || tv.itemType !== 'string') fail('vocabulary', 'tokenizer.ggml.tokens must be an array of strings');
  const tokens = tv!.value as readonly string[];
  const n = tokens.length;
  if (n === 0 || n >= 2 ** 31 - 1) fail('vocabulary', `the vocabulary has ${n} tokens`);
  const seen = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const t = tokens[i];
    if (t.length === 0) fail('vocabulary', `token ${i} has an empty text`);
    const first = seen.get(t);
    if (first !== undefined) fail('vocabulary', `tokens ${first} and ${i} have the same text ${JSON.stringify(t.slice(0, 40))}`);
    seen.set(t, i);
  }

  const scores = info.metadata.get('tokenizer.ggml.scores');
  if (scores) {
    if (scores.type !== 'array' || (scores.itemType !== 'f32' && scores.itemType !== 'f64'))
      fail('vocabulary', 'tokenizer.ggml.scores must be an array of floats');
    if (scores.value.length !== n) fail('vocabulary', `tokenizer.ggml.scores has ${scores.value.length} values for ${n} tokens`);
  }
  const types = info.metadata.get('tokenizer.ggml.token_type');
  let typeOf = (_i: number) => 1;
  if (types) {
    if (types.type !== 'array' || !INTEGER_TYPES.has(types.itemType)) fail('vocabulary', 'tokenizer.ggml.token_type must be an array of integers');
    const tt = types.value as ArrayLike<number | bigint>;
    if (tt.length !== n) fail('vocabulary', `tokenizer.ggml.token_type has ${tt.length} values for ${n} tokens`);
    for (let i = 0; i < n; i++) {
      const t = Number(tt[i]);
      if (!(t >= 0 && t <= TOKEN_TYPE_MAX)) fail('vocabulary', `token ${i} has type ${t} (types are 0..${TOKEN_TYPE_MAX})`);
    }
    typeOf = (i) => Number(tt[i]);
  }

  if (model === 'llama') {
    // SentencePiece falls back to byte tokens for any character outside the vocabulary
    for (let b = 0; b < 256; b++) {
      const text = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
      if (!seen.has(text)) fail('vocabulary', `byte-fallback token ${text} is missing`);
    }
    for (let i = 0; i < n; i++) {
      if (typeOf(i) === TOKEN_TYPE_BYTE && !/^<0x[0-9A-Fa-f]{2}>$/.test(tokens[i])) {
        fail('vocabulary', `token ${i} ${JSON.stringify(tokens[i].slice(0, 40))} has the byte type but is not <0xXX>`);
      }
    }
  } else {
    const merges = info.metadata.get('tokenizer.ggml.merges');
    if (merges?.type !== 'array' || merges.itemType !== 'string') fail('vocabulary', 'tokenizer.ggml.merges must be an array of strings');
    const list = merges!.value as readonly string[];
    for (let i = 0; i < list.length; i++) {
      const m = list[i];
      const at = m.indexOf(' ', 1);
      if (at < 1 || at === m.length - 1 || m.indexOf(' ', at + 1) !== -1)
        fail('vocabulary', `merge ${i} ${JSON.stringify(m.slice(0, 40))} is not "left right"`);
    }
  }

  for (const name of SPECIAL_TOKEN_KEYS) {
    const key = `tokenizer.ggml.${name}_token_id`;
    const v = info.metadata.get(key);
    if (v === undefined) continue;
    if (!INTEGER_TYPES.has(v.type)) fail('vocabulary', `${key} must be an integer, not ${v.type}`);
    const id = scalarNumber(v)!;
    if (id === -1 || id === NULL_TOKEN_U32) continue; // "none"
    if (!(id >= 0 && id < n)) fail('vocabulary', `${key} = ${id} is outside the vocabulary [0, ${n})`);
  }
  return n;
}

// ---- tensors ------------------------------------------------------------------------------------

function checkTensorTypes(info: GgufFileInfo, fail: Fail): void {
  for (const t of info.tensors) {
    const type = ggmlTypeName(t.type);
    if (t.shape.length === 1) {
      // norms, biases and rope factors: ggml's element-wise ops with them take F32
      if (t.type !== GgmlType.F32) fail('tensor-type', `${t.name} is ${type}; one-dimensional tensors must be F32`);
    } else if (!MATRIX_TYPES.has(type)) {
      fail('tensor-type', `${t.name} is ${type}, which has no matrix multiplication (${[...MATRIX_TYPES].slice(0, 8).join(', ')}, ...)`);
    }
  }
}
