// What a draft head needs from its base model's file: the LM head's rows for the draft
// vocabulary (in the weight's own GGUF type: rows of a quantized matrix are byte blocks), and the
// model's tail after the last layer (final norm, output bias, logit scale, softcapping: for
// training the adapter through exactly what llama.cpp applies).
import { openSync, readSync, closeSync } from 'node:fs';
import { getGgufMetadata, readTensorF32, type GgufFileInfo, type GgufTensorInfo } from '../gguf/reader.js';
import type { NativeTrainTail } from '../native/contract.js';

/** The LM head: `output.weight`, or the token embeddings when the model ties them. */
export function lmHeadTensor(info: GgufFileInfo): GgufTensorInfo {
  const t = info.tensors.find((x) => x.name === 'output.weight') ?? info.tensors.find((x) => x.name === 'token_embd.weight');
  if (!t) throw new Error(`${info.path}: no output.weight or token_embd.weight tensor`);
  if (t.shape.length !== 2) throw new Error(`${info.path}: the LM head ${t.name} is not a matrix`);
  return t;
}

/** The raw rows of the LM head for `ids`, in that order (contiguous runs are read at once). */
export function readHeadRows(info: GgufFileInfo, ids: Int32Array): { rows: Uint8Array; type: number; rowBytes: number } {
  const t = lmHeadTensor(info);
  const rowBytes = t.byteSize / t.shape[1];
  if (!Number.isInteger(rowBytes)) throw new Error(`${info.path}: ${t.name} rows are not whole bytes`);
  if (t.absoluteOffset + t.byteSize > info.fileSize) throw new Error(`${info.path}: the file is truncated (${t.name})`);
  const rows = new Uint8Array(ids.length * rowBytes);
  const fd = openSync(info.path, 'r');
  try {
    for (let i = 0; i < ids.length; ) {
      let j = i + 1;
      while (j < ids.length && ids[j] === ids[j - 1] + 1) j++;
      const want = (j - i) * rowBytes;
      let got = 0;
      while (got < want) {
        const r = readSync(fd, rows, i * rowBytes + got, want - got, t.absoluteOffset + ids[i] * rowBytes + got);
        if (r === 0) throw new Error(`${info.path}: short read in ${t.name}`);
        got += r;
      }
      i = j;
    }
  } finally {
    closeSync(fd);
  }
  return { rows, type: t.type, rowBytes };
}

/**
 * What comes after a model's last layer, as llama.cpp's graph for its architecture applies it to
 * the final residual x: y = norm(x) (RMS norm, or LayerNorm = (x − mean) / sqrt(var + eps)), times
 * the weight, plus the bias; logits = head · y, then in this order (no architecture here has more
 * than one of them): + outputBias, × logitFactor, c · tanh(logits / c) with c = finalSoftcap.
 */
export interface ModelTail {
  architecture: string;
  norm: { kind: 'rms' | 'layer'; weight: Float32Array; bias?: Float32Array; eps: number };
  /** `output.bias`, one value per token of the full vocabulary: logits += bias. */
  outputBias?: Float32Array;
  /**
   * The factor llama.cpp scales the logits by: 1 / `granite.logit_scale` for granite (a divisor,
   * kept as llama.cpp's float 1.0f / scale), `<arch>.logit_scale` itself for command-r and cohere2.
   */
  logitFactor?: number;
  /** Final logit softcapping c (`<arch>.final_logit_softcapping`): logits = c · tanh(logits / c). */
  finalSoftcap?: number;
}

/** How an architecture's tail reads the file (each entry from deps/llama.cpp/src/models/<arch>.cpp). */
interface TailRule {
  norm: 'rms' | 'layer';
  /** The final norm's tensor name without `.weight` (default output_norm). */
  normTensor?: string;
  /** `output_norm.bias` is part of the norm (llama.cpp requires it). */
  normBias?: true;
  /** `output.bias`: optional (added when present) or required. */
  outputBias?: 'optional' | 'required';
  /** `<arch>.logit_scale`: divide (granite) or multiply (command-r, cohere2); required or default 0 = none. */
  logitScale?: { divide: boolean; required: boolean };
  /** `<arch>.final_logit_softcapping`: the value when the key is absent; always: 0 is not "none" but an error. */
  softcap?: { absent: number; always: boolean };
}

const RMS: TailRule = { norm: 'rms' };
const TAIL_RULES: Readonly<Record<string, TailRule>> = {
  llama: RMS,
  qwen3: RMS,
  qwen2moe: RMS,
  qwen3moe: RMS,
  gemma: RMS,
  phi3: RMS,
  mistral3: RMS,
  olmo2: RMS,
  smollm3: RMS,
  internlm2: RMS,
  exaone4: RMS,
  glm4: RMS,
  'gpt-oss': RMS,
  lfm2: { norm: 'rms', normTensor: 'token_embd_norm' }, // llama.cpp's LLM_TENSOR_OUTPUT_NORM_LFM2
  qwen2: { norm: 'rms', outputBias: 'optional' },
  gemma2: { norm: 'rms', softcap: { absent: 30, always: true } },
  gemma3: { norm: 'rms', softcap: { absent: 0, always: false } },
  granite: { norm: 'rms', logitScale: { divide: true, required: true } },
  'command-r': { norm: 'layer', logitScale: { divide: false, required: false } },
  cohere2: { norm: 'layer', logitScale: { divide: false, required: true } },
  starcoder2: { norm: 'layer', normBias: true },
  stablelm: { norm: 'layer', normBias: true },
  phi2: { norm: 'layer', normBias: true, outputBias: 'required' },
};

/** The architectures whose tail `readModelTail` knows. */
export const TAIL_ARCHITECTURES: readonly string[] = Object.keys(TAIL_RULES);

/** The model's tail after its last layer, read once from its GGUF header and tensors (see ModelTail). */
export function readModelTail(info: GgufFileInfo): ModelTail {
  const arch = String(getGgufMetadata(info, 'general.architecture') ?? '');
  const rule = TAIL_RULES[arch];
  const where = `${info.path} (architecture ${arch || 'missing'})`;
  if (!rule) {
    throw new Error(`${where}: draft heads do not know the output tail of this architecture (known: ${TAIL_ARCHITECTURES.join(', ')})`);
  }
  const D = Number(getGgufMetadata(info, `${arch}.embedding_length`));
  const V = lmHeadTensor(info).shape[1];
  const tensor = (name: string, wanted: boolean, required: boolean, length: number): Float32Array | undefined => {
    const t = info.tensors.find((x) => x.name === name);
    if (!t) {
      if (required) throw new Error(`${where}: no ${name} tensor, which llama.cpp requires for ${arch}`);
      return undefined;
    }
    if (!wanted) throw new Error(`${where}: the file has ${name}, which llama.cpp's ${arch} graph does not use`);
    if (t.nElements !== length) throw new Error(`${where}: ${name} has ${t.nElements} values, expected ${length}`);
    if (t.absoluteOffset + t.byteSize > info.fileSize) throw new Error(`${where}: the file is truncated (${name})`);
    const data = readTensorF32(info.path, t);
    if (!data.every(Number.isFinite)) throw new Error(`${where}: ${name} holds non-finite values`);
    return data;
  };
  const number = (key: string, required: boolean): number | undefined => {
    const v = getGgufMetadata(info, key);
    if (v === undefined) {
      if (required) throw new Error(`${where}: no ${key}, which llama.cpp requires for ${arch}`);
      return undefined;
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${where}: ${key} is not a finite number`);
    return v;
  };

  const eps = number(`${arch}.attention.${rule.norm === 'rms' ? 'layer_norm_rms_epsilon' : 'layer_norm_epsilon'}`, true)!;
  if (!(eps > 0)) throw new Error(`${where}: the final norm's epsilon ${eps} is not positive`);
  const tail: ModelTail = {
    architecture: arch,
    norm: { kind: rule.norm, weight: tensor(`${rule.normTensor ?? 'output_norm'}.weight`, true, true, D)!, eps },
  };
  const normBias = tensor(`${rule.normTensor ?? 'output_norm'}.bias`, rule.normBias === true, rule.normBias === true, D);
  if (normBias) tail.norm.bias = normBias;
  const outputBias = tensor('output.bias', rule.outputBias !== undefined, rule.outputBias === 'required', V);
  if (outputBias) tail.outputBias = outputBias;
  if (rule.logitScale) {
    const s = number(`${arch}.logit_scale`, rule.logitScale.required) ?? 0;
    if (s < 0) throw new Error(`${where}: ${arch}.logit_scale is negative (${s})`);
    if (rule.logitScale.divide) {
      if (s === 0) throw new Error(`${where}: ${arch}.logit_scale is 0 (llama.cpp divides the logits by it)`);
      tail.logitFactor = Math.fround(1 / s); // llama.cpp: ggml_scale(cur, 1.0f / f_logit_scale)
    } else if (s !== 0) {
      tail.logitFactor = s; // llama.cpp: if (f_logit_scale) ggml_scale(cur, f_logit_scale)
    }
  } else if (getGgufMetadata(info, `${arch}.logit_scale`) !== undefined) {
    throw new Error(`${where}: the file sets ${arch}.logit_scale, which llama.cpp's ${arch} graph does not apply`);
  }
  if (rule.softcap) {
    const c = number(`${arch}.final_logit_softcapping`, false) ?? rule.softcap.absent;
    if (c < 0 || (c === 0 && rule.softcap.always)) {
      throw new Error(`${where}: ${arch}.final_logit_softcapping is ${c} (llama.cpp caps the logits with it; it must be positive)`);
    }
    if (c > 0) tail.finalSoftcap = c;
  } else if (getGgufMetadata(info, `${arch}.final_logit_softcapping`) !== undefined) {
    throw new Error(`${where}: the file sets ${arch}.final_logit_softcapping, which llama.cpp's ${arch} graph does not apply`);
  }
  return tail;
}

/**
 * The tail as the adapter trainer takes it, checked once (sizes, finite values, a positive
 * epsilon): the output bias restricted to the draft vocabulary's rows (`vocabulary`, null = all).
 */
export function trainerTail(tail: ModelTail, embeddingSize: number, vocabulary: Int32Array | null): NativeTrainTail {
  const bad = (what: string) => new RangeError(`draft head fit (${tail.architecture}): ${what}`);
  const finite = (name: string, a: Float32Array | undefined, n: number) => {
    if (a === undefined) return;
    if (!(a instanceof Float32Array) || a.length !== n) throw bad(`${name} must be a Float32Array of ${n} values`);
    if (!a.every(Number.isFinite)) throw bad(`${name} holds non-finite values`);
  };
  const { norm } = tail;
  if (norm.kind !== 'rms' && norm.kind !== 'layer') throw bad(`unknown norm kind ${String(norm.kind)}`);
  if (!(Number.isFinite(norm.eps) && norm.eps > 0)) throw bad(`the norm epsilon ${norm.eps} is not positive`);
  finite('the norm weight', norm.weight, embeddingSize);
  if (norm.bias && norm.kind !== 'layer') throw bad('a norm bias needs a LayerNorm');
  finite('the norm bias', norm.bias, embeddingSize);
  for (const [name, v] of [
    ['the logit factor', tail.logitFactor],
    ['the final softcap', tail.finalSoftcap],
  ] as const) {
    if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw bad(`${name} ${v} must be a positive number`);
  }
  const out: NativeTrainTail = { norm: norm.kind, normWeight: norm.weight, eps: norm.eps };
  if (norm.bias) out.normBias = norm.bias;
  if (tail.outputBias) {
    const V = tail.outputBias.length;
    finite('the output bias', tail.outputBias, V);
    if (vocabulary) {
      for (const t of vocabulary) if (!Number.isInteger(t) || t < 0 || t >= V) throw bad(`token ${t} is outside the output bias's ${V} rows`);
    }
    out.outputBias = vocabulary ? Float32Array.from(vocabulary, (t) => tail.outputBias![t]) : tail.outputBias;
  }
  if (tail.logitFactor !== undefined) out.logitFactor = tail.logitFactor;
  if (tail.finalSoftcap !== undefined) out.finalSoftcap = tail.finalSoftcap;
  return out;
}
