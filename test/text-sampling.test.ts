// Pure-TypeScript pieces: streamed text with stop strings split across tokens, and the sampling
// distribution (temperature, top-k, top-p) against hand-computed values.
import { describe, expect, it } from 'vitest';
import { TextOutput } from '../lib/text-output.js';
import { distribution, resolveSampling, Rng, sampleFrom } from '../lib/sampling.js';

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
  it('sampling follows the distribution (seeded)', () => {
    const p = Float64Array.from([0.5, 0.3, 0.2]);
    const rng = new Rng(7);
    const counts = [0, 0, 0];
    for (let i = 0; i < 20000; i++) counts[sampleFrom(p, rng)]++;
    // 5 standard deviations of a binomial(20000, p) count: a correct sampler fails with probability < 1e-6
    counts.forEach((c, i) => expect(Math.abs(c - 20000 * p[i])).toBeLessThan(5 * Math.sqrt(20000 * p[i] * (1 - p[i]))));
  });
});
