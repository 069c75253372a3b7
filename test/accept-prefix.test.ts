// The accept rule of self-speculative decoding on hand-made rows (acceptPrefix is pure): greedy
// prefix agreement, and speculative sampling's accept-with-min(1, p/q) and resample-from
// norm(max(0, p − q)) rule, at its boundary and in distribution.
import { describe, expect, it } from 'vitest';
import { acceptPrefix } from '../lib/decoding/accept.js';
import type { GrammarState } from '../lib/decoding/grammar.js';
import { SamplerRng, resolveSampling, sampleFrom } from '../lib/decoding/sampling.js';

const greedy = resolveSampling({});
const sampled = resolveSampling({ temperature: 1 });

/** A PRNG that returns the given numbers in order. */
function scripted(...values: number[]): SamplerRng {
  const r = new SamplerRng(0);
  r.next = () => {
    if (values.length === 0) throw new Error('scripted SamplerRng exhausted');
    return values.shift()!;
  };
  return r;
}

/** Logits rows whose softmax is exactly the given probabilities (each a power of two share). */
function logitsOf(...rows: number[][]): Float32Array {
  return Float32Array.from(rows.flat().map((p) => (p === 0 ? -Infinity : Math.log2(p) * Math.LN2)));
}

describe('acceptPrefix, greedy', () => {
  it('accepts drafts while they equal the argmax, and returns the correction', () => {
    expect(acceptPrefix({ argmax: Int32Array.of(5, 6, 7, 8) }, [5, 6, 9], null, greedy, new SamplerRng(1), 10)).toEqual({ accepted: 2, next: 7 });
    expect(acceptPrefix({ argmax: Int32Array.of(4, 6, 7, 8) }, [5, 6, 7], null, greedy, new SamplerRng(1), 10)).toEqual({ accepted: 0, next: 4 });
  });
  it('all drafts accepted: the bonus row gives the next token, or -1 without one', () => {
    expect(acceptPrefix({ argmax: Int32Array.of(5, 6, 7, 8) }, [5, 6, 7], null, greedy, new SamplerRng(1), 10)).toEqual({ accepted: 3, next: 8 });
    expect(acceptPrefix({ argmax: Int32Array.of(5, 6, 7) }, [5, 6, 7], null, greedy, new SamplerRng(1), 10)).toEqual({ accepted: 3, next: -1 });
  });
});

describe('acceptPrefix, speculative sampling', () => {
  const p = [0.5, 0.5, 0, 0];
  it('rejects when u·q(d) reaches p(d) exactly, and resamples from norm(max(0, p − q))', () => {
    // q puts all mass on token 1; p(1) = 0.5: accepted iff u < 0.5
    const q = Float64Array.of(0, 1, 0, 0);
    // u = 0.5 is the boundary: rejected; the residual max(0, p − q) = [0.5, 0, 0, 0] gives token 0
    expect(acceptPrefix({ argmax: Int32Array.of(0, 0), logits: logitsOf(p, p) }, [1], [q], sampled, scripted(0.5, 0.99), 4)).toEqual({ accepted: 0, next: 0 });
    // just below: accepted; the bonus row samples p with the next uniform (0.75 lands on token 1)
    expect(acceptPrefix({ argmax: Int32Array.of(0, 0), logits: logitsOf(p, p) }, [1], [q], sampled, scripted(0.4999, 0.75), 4)).toEqual({
      accepted: 1,
      next: 1,
    });
  });

  it('a draft the full model cannot produce is never accepted', () => {
    const q = Float64Array.of(0, 0, 1, 0);
    expect(acceptPrefix({ argmax: Int32Array.of(0), logits: logitsOf(p) }, [2], [q], sampled, scripted(0, 0.2), 4)).toEqual({ accepted: 0, next: 0 });
  });

  it('the emitted token follows p whatever q is (10,000 seeded rounds)', () => {
    const pp = [0.5, 0.25, 0.125, 0.125];
    const q = Float64Array.of(0.1, 0.6, 0.3, 0);
    const rng = new SamplerRng(7);
    const counts = [0, 0, 0, 0];
    const n = 10000;
    for (let i = 0; i < n; i++) {
      const d = sampleFrom(q, rng);
      const r = acceptPrefix({ argmax: Int32Array.of(0), logits: logitsOf(pp) }, [d], [q], sampled, rng, 4);
      counts[r.accepted === 1 ? d : r.next]++;
    }
    // 4.5 standard deviations of a binomial count
    pp.forEach((pt, t) => expect(Math.abs(counts[t] - n * pt), `token ${t}`).toBeLessThan(4.5 * Math.sqrt(n * pt * (1 - pt))));
  });

  it('under a grammar: rows are masked, and a cut forbidden draft is resampled as a rejection, so the output follows masked p', () => {
    // the raw row [0.5, 0.25, 0.125, 0.125]; the grammar forbids token 0 here, so the target is
    // p = [0, 0.5, 0.25, 0.25]. q drafts the forbidden token 0 most of the time: cutForbidden()
    // then verifies no draft and hands q over as `rejected`
    const raw = [0.5, 0.25, 0.125, 0.125];
    const pm = [0, 0.5, 0.25, 0.25];
    const q = Float64Array.of(0.7, 0.05, 0.2, 0.05);
    const forbidden = new Set([0]);
    const state = {
      mask: (row: Float32Array) => forbidden.forEach((t) => (row[t] = -Infinity)),
      accept: () => undefined,
      dispose: () => undefined,
      fork: () => state,
    };
    const grammar = state as unknown as GrammarState;
    const rng = new SamplerRng(11);
    const counts = [0, 0, 0, 0];
    const n = 10000;
    const verified = { argmax: Int32Array.of(0), logits: logitsOf(raw) };
    for (let i = 0; i < n; i++) {
      const d = sampleFrom(q, rng);
      const r = forbidden.has(d)
        ? acceptPrefix(verified, [], null, sampled, rng, 4, [], grammar, q)
        : acceptPrefix(verified, [d], [q], sampled, rng, 4, [], grammar);
      counts[r.accepted === 1 ? d : r.next]++;
    }
    expect(counts[0]).toBe(0);
    pm.forEach((pt, t) => expect(Math.abs(counts[t] - n * pt), `token ${t}`).toBeLessThan(4.5 * Math.sqrt(n * pt * (1 - pt)) + 1));
    // greedy under the mask: the masked argmax, whatever the addon's argmax said
    expect(acceptPrefix(verified, [], null, greedy, rng, 4, [], grammar)).toEqual({ accepted: 0, next: 1 });
  });
});
