// Token sampling in TypeScript (policy lives here, not in the addon): temperature, top-k, top-p,
// with a seeded PRNG so that sampled generations are reproducible. The same `distribution()` is
// used for the draft and the full model in speculative sampling, so both see identical filtering.
import { checkInteger, checkNumber } from './errors.js';

export interface SamplingOptions {
  /** 0 (the default) is greedy decoding. */
  temperature?: number;
  /** Keep the k most likely tokens (0 = all). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (1 = all). */
  topP?: number;
  /** Seed of the sampler's PRNG (default 0xC0FFEE). */
  seed?: number;
}

export interface ResolvedSampling {
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
}

export function resolveSampling(o: SamplingOptions = {}): ResolvedSampling {
  return {
    temperature: checkNumber('temperature', o.temperature ?? 0, 0, 100),
    topK: checkInteger('topK', o.topK ?? 0, 0, 1 << 30),
    topP: checkNumber('topP', o.topP ?? 1, 0, 1),
    seed: checkInteger('seed', o.seed ?? 0xc0ffee, 0, 2 ** 32 - 1),
  };
}

/** A small, fast, seeded PRNG (mulberry32): uniform numbers in [0, 1). */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/**
 * The sampling distribution of one logits row: softmax(logits / T), restricted to the top-k
 * tokens and then to the top-p nucleus, renormalized. Returns a dense Float64Array over the vocabulary.
 */
export function distribution(logits: Float32Array, s: ResolvedSampling, offset = 0, nVocab = logits.length - offset): Float64Array {
  const p = new Float64Array(nVocab);
  let max = -Infinity;
  for (let i = 0; i < nVocab; i++) if (logits[offset + i] > max) max = logits[offset + i];
  const invT = 1 / s.temperature;
  let sum = 0;
  for (let i = 0; i < nVocab; i++) {
    const v = Math.exp((logits[offset + i] - max) * invT);
    p[i] = v;
    sum += v;
  }
  for (let i = 0; i < nVocab; i++) p[i] /= sum;
  const filterK = s.topK > 0 && s.topK < nVocab;
  if (!filterK && s.topP >= 1) return p;

  // sort candidate indices by probability (ties by index, so results are deterministic)
  const idx = Array.from({ length: nVocab }, (_, i) => i).sort((a, b) => p[b] - p[a] || a - b);
  let keep = filterK ? s.topK : nVocab;
  if (s.topP < 1) {
    let kept = 0;
    for (let j = 0; j < keep; j++) {
      kept += p[idx[j]];
      if (kept >= s.topP) {
        keep = j + 1;
        break;
      }
    }
  }
  const out = new Float64Array(nVocab);
  let total = 0;
  for (let j = 0; j < keep; j++) total += p[idx[j]];
  for (let j = 0; j < keep; j++) out[idx[j]] = p[idx[j]] / total;
  return out;
}

/** Draws one token from a probability vector. */
export function sampleFrom(p: Float64Array, rng: Rng): number {
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
