// Pure-TypeScript pieces: streamed text with stop strings split across tokens, and the sampling
// distribution (temperature, top-k, top-p) against hand-computed values.
import { describe, expect, it } from 'vitest';
import { TextOutput } from '../lib/util/text-output.js';
import { distribution, resolveSampling, SamplerRng, sampleFrom } from '../lib/decoding/sampling.js';

const bytes = (s: string) => new TextEncoder().encode(s);

describe('TextOutput', () => {
  it('holds back a possible stop string across tokens and cuts at it', () => {
    const out = new TextOutput(['</end>']);
    const emitted = ['Hello </', 'e', 'nd> more'].map((t) => out.push(bytes(t)));
    expect(emitted).toEqual(['Hello ', '', '']);
    expect(out.stopped).toBe(true);
    expect(out.text).toBe('Hello ');
  });
  it('releases held-back text that turned out not to be a stop string', () => {
    const out = new TextOutput(['STOP']);
    expect(out.push(bytes('a ST'))).toBe('a ');
    expect(out.push(bytes('ART'))).toBe('START');
    expect(out.flush()).toBe('');
    expect(out.text).toBe('a START');
  });
  it('decodes a UTF-8 character split over two tokens', () => {
    const out = new TextOutput([]);
    const euro = bytes('€'); // 3 bytes
    expect(out.push(euro.slice(0, 2))).toBe('');
    expect(out.push(euro.slice(2))).toBe('€');
  });
});

describe('sampling distribution', () => {
  const logits = Float32Array.from([2, 1, 0, -1]);
  const softmax = (v: number[]) => {
    const m = Math.max(...v);
    const e = v.map((x) => Math.exp(x - m));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / s);
  };
  it('temperature scales the logits', () => {
    const p = distribution(logits, resolveSampling({ temperature: 2 }));
    softmax([1, 0.5, 0, -0.5]).forEach((q, i) => expect(p[i]).toBeCloseTo(q, 12));
  });
  it('top-k keeps the k largest and renormalizes', () => {
    const p = distribution(logits, resolveSampling({ temperature: 1, topK: 2 }));
    const q = softmax([2, 1]);
    expect([...p]).toEqual([expect.closeTo(q[0], 12), expect.closeTo(q[1], 12), 0, 0]);
  });
  it('top-p keeps the smallest nucleus reaching p', () => {
    const full = softmax([2, 1, 0, -1]); // 0.644, 0.237, 0.087, 0.032
    const p = distribution(logits, resolveSampling({ temperature: 1, topP: 0.85 }));
    expect(p[2]).toBe(0);
    expect(p[0]).toBeCloseTo(full[0] / (full[0] + full[1]), 12);
  });
  it('top-k / top-p equal a full sort of the vocabulary (random rows, ties, large vocabularies)', () => {
    // the reference: sort the whole vocabulary, cut at k, then at the first prefix reaching p
    const reference = (row: Float32Array, s: ReturnType<typeof resolveSampling>) => {
      const full = distribution(row, resolveSampling({ temperature: s.temperature }));
      const idx = Array.from(full.keys()).sort((a, b) => full[b] - full[a] || a - b);
      let keep = s.topK > 0 ? Math.min(s.topK, idx.length) : idx.length;
      let acc = 0;
      for (let j = 0; j < keep && s.topP < 1; j++) {
        acc += full[idx[j]];
        if (acc >= s.topP) keep = j + 1;
      }
      const out = new Float64Array(full.length);
      const total = idx.slice(0, keep).reduce((t, i) => t + full[i], 0);
      for (const i of idx.slice(0, keep)) out[i] = full[i] / total;
      return out;
    };
    const rng = new SamplerRng(11);
    let checked = 0;
    const pick = <T>(options: T[]) => options[Math.floor(rng.next() * options.length)];
    for (const nVocab of [3, 50, 4096, 32000]) {
      for (let trial = 0; trial < 25; trial++) {
        // flat to very peaked rows; a flat row with one high logit puts most of the nucleus far
        // below the top token; coarse rounding makes ties common
        const spread = pick([0.5, 4, 16, 40]);
        const row = Float32Array.from({ length: nVocab }, () => Math.round((rng.next() - 0.5) * spread * 4) / 4);
        if (trial % 4 === 0) row[trial % nVocab] = spread * 4;
        const s = resolveSampling({
          temperature: pick([0.3, 1, 2.5]),
          topK: pick([0, 0, 1, 5, 40, nVocab + 1]),
          topP: pick([1, 0.5, 0.9, 0.999, 0.9999999]),
        });
        const got = distribution(row, s);
        const want = reference(row, s);
        // the same kept tokens exactly; the values up to the rounding of the renormalization
        expect([...got].map((v) => v > 0)).toEqual([...want].map((v) => v > 0));
        for (let i = 0; i < nVocab; i++) expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(1e-12 * want[i]);
        checked++;
      }
    }
    expect(checked).toBe(100);
    // probabilities that underflow to exactly 0 still count as tokens for top-k
    const extreme = Float32Array.from({ length: 64 }, (_, i) => (i < 3 ? 0 : -1e4));
    const s = resolveSampling({ temperature: 0.5, topK: 10 });
    expect([...distribution(extreme, s)]).toEqual([...reference(extreme, s)]);
  });
  it('sampling follows the distribution (seeded)', () => {
    const p = Float64Array.from([0.5, 0.3, 0.2]);
    const rng = new SamplerRng(7);
    const counts = [0, 0, 0];
    for (let i = 0; i < 20000; i++) counts[sampleFrom(p, rng)]++;
    // 5 standard deviations of a binomial(20000, p) count: a correct sampler fails with probability < 1e-6
    counts.forEach((c, i) => expect(Math.abs(c - 20000 * p[i])).toBeLessThan(5 * Math.sqrt(20000 * p[i] * (1 - p[i]))));
  });
});
