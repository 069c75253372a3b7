// Training data: text, files or token ids, tokenized with the model's own tokenizer into one
// stream (each document starts with BOS), and the windows a step trains on.
import { readFile } from 'node:fs/promises';
import { Xoshiro128, hashSeed } from '../../util/random.js';
import type { Model } from '../../runtime/model.js';

export interface TrainingData {
  /** One text or several documents. */
  text?: string | readonly string[];
  /** UTF-8 text files, one document each. */
  files?: readonly string[];
  /** Token ids, used as they are. */
  tokens?: ArrayLike<number>;
}

const DATA_KEYS = new Set(['text', 'files', 'tokens']);

export function checkTrainingData(name: string, data: unknown): TrainingData {
  if (data === null || typeof data !== 'object') throw new TypeError(`${name} must be an object { text?, files?, tokens? }`);
  for (const k of Object.keys(data)) if (!DATA_KEYS.has(k)) throw new TypeError(`${name}: unknown key "${k}" (expected text, files or tokens)`);
  const d = data as TrainingData;
  if (d.text === undefined && d.files === undefined && d.tokens === undefined) throw new TypeError(`${name} needs text, files or tokens`);
  if (d.text !== undefined && typeof d.text !== 'string' && !(Array.isArray(d.text) && d.text.every((t) => typeof t === 'string'))) {
    throw new TypeError(`${name}.text must be a string or an array of strings`);
  }
  if (d.files !== undefined && !(Array.isArray(d.files) && d.files.every((f) => typeof f === 'string' && f.length > 0))) {
    throw new TypeError(`${name}.files must be an array of paths`);
  }
  if (d.tokens !== undefined && (typeof d.tokens !== 'object' || typeof (d.tokens as ArrayLike<number>).length !== 'number')) {
    throw new TypeError(`${name}.tokens must be an array or typed array of token ids`);
  }
  return d;
}

/** The data as one token stream, every id checked against the vocabulary. */
export async function tokenizeTrainingData(model: Model, data: TrainingData, name: string): Promise<Int32Array> {
  const parts: Int32Array[] = [];
  const texts = data.text === undefined ? [] : typeof data.text === 'string' ? [data.text] : [...data.text];
  for (const f of data.files ?? []) {
    try {
      texts.push(await readFile(f, 'utf8'));
    } catch (e) {
      throw new Error(`${name}.files: cannot read ${f}: ${(e as Error).message}`);
    }
  }
  for (const t of texts) if (t.length > 0) parts.push(await model.tokenizeAsync(t, { addBos: true }));
  if (data.tokens !== undefined) {
    const ids = Int32Array.from(data.tokens as ArrayLike<number>);
    const V = model.info.vocabularySize;
    for (let i = 0; i < ids.length; i++) {
      const t = (data.tokens as ArrayLike<number>)[i];
      if (!Number.isInteger(t) || t < 0 || t >= V) throw new RangeError(`${name}.tokens[${i}] = ${t} is outside the vocabulary [0, ${V})`);
    }
    parts.push(ids);
  }
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Int32Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** `count` windows of `length` tokens at random offsets of the stream, drawn from (seed, step) alone. */
export function sampleWindows(stream: Int32Array, count: number, length: number, seed: number, step: number): Int32Array {
  const out = new Int32Array(count * length);
  const rng = new Xoshiro128(hashSeed(seed, `windows:${step}`));
  const span = stream.length - length + 1;
  for (let i = 0; i < count; i++) {
    const at = Math.floor(rng.nextFloat() * span);
    out.set(stream.subarray(at, at + length), i * length);
  }
  return out;
}

/**
 * Contiguous, non-overlapping windows from the start of the stream, grouped into whole batches
 * of `batch` windows, at most `maxTokens` predicted tokens in all (at least one batch).
 */
export function evaluationBatches(stream: Int32Array, batch: number, length: number, maxTokens: number): Int32Array[] {
  const windows = Math.floor(stream.length / length);
  const perBatch = batch * (length - 1);
  const n = Math.max(1, Math.min(Math.floor(windows / batch), Math.floor(maxTokens / perBatch)));
  if (windows < batch) return [];
  const out: Int32Array[] = [];
  for (let b = 0; b < n; b++) out.push(stream.slice(b * batch * length, (b + 1) * batch * length));
  return out;
}
