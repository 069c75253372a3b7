// Token sampling in TypeScript (policy lives here, not in the addon): repetition, presence and
// frequency penalties, temperature, top-k, top-p, min-p, with a seeded PRNG so that sampled generations are reproducible. The same `distribution()` is
// used for the draft and the full model in speculative sampling, so both see identical filtering.
import { checkInteger, checkNumber } from '../native/errors.js';
import type { NativeDecodeResult } from '../native/binding.js';
import { mulberry32 } from '../util/random.js';

export interface SamplingOptions {
  /** 0 (the default) is greedy decoding. */
  temperature?: number;
  /** Keep the k most likely tokens (0 = all). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (1 = all). */
  topP?: number;
  /** Seed of the sampler's PRNG (default 0xC0FFEE). */
  seed?: number;
  /** Keep only tokens at least this fraction as likely as the most likely one (0 = all; after top-k and top-p). */
  minP?: number;
  /**
   * Repetition penalty (llama.cpp's): the logit of a token among the last `penaltyLastN` tokens is
   * divided by it when positive, multiplied when negative (1 = none; 1.1-1.3 stops loops).
   */
  repeatPenalty?: number;
  /** Subtracted from the logit of every token among the last `penaltyLastN` tokens (0 = none). */
  presencePenalty?: number;
  /** Subtracted from a token's logit once per occurrence among the last `penaltyLastN` tokens (0 = none). */
  frequencyPenalty?: number;
  /** How many of the newest tokens (prompt and generated) the penalties look at (default 64). */
  penaltyLastN?: number;
}

/** The penalties of a generation; null when none is set. */
export interface Penalties {
  repeat: number;
  presence: number;
  frequency: number;
  lastN: number;
}

export interface ResolvedSampling {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  seed: number;
  penalties: Penalties | null;
  /** A grammar constrains the tokens (the rows are masked: see RowMask). */
  constrained: boolean;
}

/** What forbids tokens at one row (a grammar's state there): sets their values to -Infinity, in place. */
export interface RowMask {
  mask(row: Float32Array): void;
}

export function resolveSampling(o: SamplingOptions = {}): ResolvedSampling {
  const repeat = checkNumber('repeatPenalty', o.repeatPenalty ?? 1, 1e-3, 1e3);
  const presence = checkNumber('presencePenalty', o.presencePenalty ?? 0, -1e3, 1e3);
  const frequency = checkNumber('frequencyPenalty', o.frequencyPenalty ?? 0, -1e3, 1e3);
  const lastN = checkInteger('penaltyLastN', o.penaltyLastN ?? 64, 0, 1 << 24);
  const active = lastN > 0 && (repeat !== 1 || presence !== 0 || frequency !== 0);
  return {
    temperature: checkNumber('temperature', o.temperature ?? 0, 0, 100),
    topK: checkInteger('topK', o.topK ?? 0, 0, 1 << 30),
    topP: checkNumber('topP', o.topP ?? 1, 0, 1),
    minP: checkNumber('minP', o.minP ?? 0, 0, 1),
    seed: checkInteger('seed', o.seed ?? 0xc0ffee, 0, 2 ** 32 - 1),
    penalties: active ? { repeat, presence, frequency, lastN } : null,
    constrained: false,
  };
}

/** Whether choosing a token needs the logits row (sampling, or penalties that change the greedy pick). */
export function needsLogits(s: ResolvedSampling): boolean {
  return s.temperature > 0 || s.penalties !== null || s.constrained;
}

/**
 * Row `row` of `logits` as the sampler sees it: penalized for `history` and masked by `mask`, as a
 * new array; null when neither applies (the row is used as it is).
 */
function processedRow(
  logits: Float32Array | undefined,
  row: number,
  nVocab: number,
  sampling: ResolvedSampling,
  history: readonly number[],
  mask: RowMask | null,
): Float32Array | null {
  if (!sampling.penalties && !mask) return null;
  if (!logits) throw new Error('penalties and grammars need the logits row (needsLogits)');
  const out = sampling.penalties ? penalizedRow(logits, row * nVocab, nVocab, history, sampling.penalties) : logits.slice(row * nVocab, (row + 1) * nVocab);
  mask?.mask(out);
  return out;
}

/**
 * One logits row with the penalties applied for `history` (the tokens before this position; only
 * the last `lastN` count), as a new array. llama.cpp's rule: a token seen c > 0 times gets
 * l / repeat (l > 0) or l * repeat (l <= 0), minus c * frequency, minus presence.
 */
export function penalizedRow(logits: Float32Array, offset: number, n: number, history: readonly number[], p: Penalties): Float32Array {
  const row = logits.slice(offset, offset + n);
  const counts = new Map<number, number>();
  for (let i = Math.max(0, history.length - p.lastN); i < history.length; i++) counts.set(history[i], (counts.get(history[i]) ?? 0) + 1);
  for (const [t, c] of counts) {
    if (t < 0 || t >= n) continue;
    const l = row[t];
    row[t] = (l > 0 ? l / p.repeat : l * p.repeat) - c * p.frequency - p.presence;
  }
  return row;
}

/** The index of the largest value (the first of ties, as the addon's argmax). */
function argmaxOf(row: Float32Array): number {
  finiteMax(row, 0, row.length);
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** The sampler's seeded PRNG: uniform numbers in [0, 1) from mulberry32 (the analysis toolkit's generator). */
export class SamplerRng {
  private readonly uniform: () => number;
  constructor(seed: number) {
    this.uniform = mulberry32(seed);
  }
  next(): number {
    return this.uniform();
  }
}

/**
 * The largest value of a logits row. A row with NaN or Inf anywhere (corrupt weights) is an error:
 * sampling from it would loop or silently pick token 0. -Infinity marks tokens outside a draft
 * vocabulary and is allowed, as long as one value is finite.
 */
export function finiteMax(logits: Float32Array, offset: number, n: number): number {
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = logits[offset + i];
    if (Number.isNaN(v) || v === Infinity)
      throw new Error('the model produced non-finite logits (NaN or Inf): its weights or hyper-parameters are likely corrupt');
    if (v > max) max = v;
  }
  if (max === -Infinity) throw new Error('the model produced non-finite logits (all -Inf)');
  return max;
}

/**
 * The sampling distribution of one logits row: softmax(logits / T), restricted to the top-k
 * tokens and then to the top-p nucleus, renormalized. Returns a dense Float64Array over the vocabulary.
 */
export function distribution(logits: Float32Array, s: ResolvedSampling, offset = 0, nVocab = logits.length - offset): Float64Array {
  const p = new Float64Array(nVocab);
  const max = finiteMax(logits, offset, nVocab);
  const invT = 1 / s.temperature;
  let sum = 0;
  for (let i = 0; i < nVocab; i++) {
    const v = Math.exp((logits[offset + i] - max) * invT);
    p[i] = v;
    sum += v;
  }
  for (let i = 0; i < nVocab; i++) p[i] /= sum;
  const filterK = s.topK > 0 && s.topK < nVocab;
  const minP = s.minP ?? 0;
  if (!filterK && s.topP >= 1 && minP === 0) return p;

  // the most likely token has exp(0) / sum
  let kept = !filterK && s.topP >= 1 ? null : nucleus(p, 1 / sum, filterK ? s.topK : nVocab, s.topP);
  // min-p last (llama.cpp's order): a fraction of the most likely token's probability, which every
  // filter above keeps and renormalizing does not change relative to the others
  if (minP > 0) {
    const floor = (minP * 1) / sum;
    kept = (kept ?? Array.from({ length: nVocab }, (_, i) => i)).filter((i) => p[i] >= floor);
  }
  const out = new Float64Array(nVocab);
  let total = 0;
  for (const i of kept!) total += p[i];
  for (const i of kept!) out[i] = p[i] / total;
  return out;
}

/**
 * The tokens that survive top-k then top-p: the first `keep` of the vocabulary sorted by
 * probability (ties by index), where the top-p cut stops at the first prefix reaching `topP`.
 * Sorting a 128k vocabulary for every draft and verify row would cost tens of milliseconds, so
 * only the tokens at or above a threshold are sorted. Every token below the threshold ranks
 * after every token above it, so the sorted candidates are exactly the head of the full sort;
 * when that head is too short to decide the cut, the threshold drops and the search repeats.
 */
function nucleus(p: Float64Array, maxP: number, topK: number, topP: number): number[] {
  const n = p.length;
  let threshold = maxP / 1024;
  for (;;) {
    const candidates: number[] = [];
    for (let i = 0; i < n; i++) if (p[i] >= threshold) candidates.push(i);
    const complete = candidates.length === n; // the candidates are the whole vocabulary
    // the top-k cut needs k candidates; a top-p cut may be reached with fewer
    if (candidates.length >= topK || complete || topP < 1) {
      candidates.sort((a, b) => p[b] - p[a] || a - b);
      const keep = Math.min(topK, candidates.length);
      if (topP >= 1) return candidates.slice(0, keep);
      let cumulative = 0;
      for (let j = 0; j < keep; j++) {
        cumulative += p[candidates[j]];
        if (cumulative >= topP) return candidates.slice(0, j + 1);
      }
      // not reached: the cut is all k tokens, or it needs tokens below the threshold (search on)
      if (keep === topK || complete) return candidates.slice(0, keep);
    }
    // probabilities below ~1e-300 (or exact zeros) only matter once everything else is in
    threshold = threshold > 1e-300 ? threshold / 1024 : 0;
  }
}

/** Draws one token from a probability vector. */
export function sampleFrom(p: Float64Array, rng: SamplerRng): number {
  const u = rng.next();
  let acc = 0;
  let last = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i] > 0) {
      acc += p[i];
      last = i;
      if (u < acc) return i;
    }
  }
  return last; // rounding: u landed past the accumulated total
}

/**
 * The token of one output row of a decode: its argmax when greedy, else a sample of `distribution()`;
 * with penalties, of the row penalized for `history` (the tokens before that position); with a
 * grammar, of the row masked by its state there.
 */
export function pickToken(
  r: NativeDecodeResult,
  sampling: ResolvedSampling,
  rng: SamplerRng,
  row = 0,
  nVocab = 0,
  history: readonly number[] = [],
  mask: RowMask | null = null,
): number {
  const processed = processedRow(r.logits, row, nVocab, sampling, history, mask);
  if (processed) return sampling.temperature === 0 ? argmaxOf(processed) : sampleFrom(distribution(processed, sampling), rng);
  if (sampling.temperature === 0) return r.argmax[row];
  return sampleFrom(distribution(r.logits!, sampling, row * nVocab, nVocab), rng);
}

/** The greedy token of a row: the addon's argmax, or the argmax of the row penalized and masked. */
export function greedyToken(
  r: Pick<NativeDecodeResult, 'argmax' | 'logits'>,
  sampling: ResolvedSampling,
  row: number,
  nVocab: number,
  history: readonly number[],
  mask: RowMask | null = null,
): number {
  const processed = processedRow(r.logits, row, nVocab, sampling, history, mask);
  return processed ? argmaxOf(processed) : r.argmax[row];
}

/** The full model's distribution of a row: `distribution()` of the row, penalized for `history` and masked by `mask` when set. */
export function targetDistribution(
  logits: Float32Array,
  sampling: ResolvedSampling,
  row: number,
  nVocab: number,
  history: readonly number[],
  mask: RowMask | null = null,
): Float64Array {
  const processed = processedRow(logits, row, nVocab, sampling, history, mask);
  return processed ? distribution(processed, sampling) : distribution(logits, sampling, row * nVocab, nVocab);
}
