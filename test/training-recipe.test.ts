// The LayerSkip training recipe's per-step constants (lib/tools/training/recipe.ts) and the data windows
// (lib/tools/training/data.ts), checked against closed forms written out here from the paper
// (arXiv 2404.16710, section 4) and torchtune's recipe, not against the functions themselves.
// Pure TypeScript: nothing here loads the native addon.
import { describe, expect, it } from 'vitest';
import {
  curriculumMask,
  dropoutRates,
  exitScales,
  exitWeights,
  keepFactors,
  learningRate,
  type Curriculum,
  type EarlyExitLossOptions,
  type ExitWeighting,
} from '../lib/tools/training/recipe.js';
import { evaluationBatches, sampleWindows } from '../lib/tools/training/data.js';

/** sum_{i=0}^{n} i, by a loop (deliberately not n(n+1)/2). */
function sumTo(n: number): number {
  let s = 0;
  for (let i = 0; i <= n; i++) s += i;
  return s;
}

/** The paper's exit scales: e(l) = e_scale * sum_{i<=l} i for l < L-1, e(L-1) = L-1 + e_scale * sum_{i<=L-2} i. */
function paperScales(L: number, eScale: number): number[] {
  const out: number[] = [];
  for (let l = 0; l < L - 1; l++) out.push(eScale * sumTo(l));
  out.push(L - 1 + eScale * sumTo(L - 2));
  return out;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-12): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (Math.abs(actual[i] - expected[i]) > tol * Math.max(1, Math.abs(expected[i]))) {
      throw new Error(
        `index ${i}: got ${actual[i]}, expected ${expected[i]}\n  actual   ${Array.from(actual).join(', ')}\n  expected ${Array.from(expected).join(', ')}`,
      );
    }
  }
}

const count = (m: readonly boolean[]): number => m.filter(Boolean).length;

describe('exitScales', () => {
  it("'paper', L = 12, e_scale 0.2: e(l) = 0.2 * l(l+1)/2 for l < 11, e(11) = 11 + 0.2 * (0 + 1 + ... + 10)", () => {
    const got = exitScales(12, 0.2, 'paper');
    const want: number[] = [];
    for (let l = 0; l < 11; l++) want.push((0.2 * l * (l + 1)) / 2);
    want.push(11 + 0.2 * (0 + 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10));
    expectClose(got, want);
    expect(got[11]).toBeCloseTo(22, 12); // 11 + 0.2 * 55
    expect(got[10]).toBeCloseTo(11, 12); // 0.2 * 55
    expectClose(got, paperScales(12, 0.2));
  });

  it("'paper' spot values: L = 2 and L = 5", () => {
    expectClose(exitScales(2, 0.2, 'paper'), [0, 1]);
    expectClose(exitScales(5, 0.2, 'paper'), [0, 0.2, 0.6, 1.2, 4 + 0.2 * 6]);
    expectClose(exitScales(5, 1, 'paper'), [0, 1, 3, 6, 10]);
    // the default weighting is the paper's
    expectClose(exitScales(5, 0.2), [0, 0.2, 0.6, 1.2, 5.2]);
  });

  it("'uniform': every early exit weighs e_scale, the final layer 1 (e_scale <= 1)", () => {
    for (const s of [0.1, 0.2, 1]) {
      expectClose(exitScales(6, s, 'uniform'), [s, s, s, s, s, 1]);
    }
  });

  it("'linear': early exit l weighs e_scale * (l + 1); with e_scale 1 the final layer weighs L", () => {
    for (const s of [0.1, 0.2, 1])
      expectClose(
        exitScales(6, s, 'linear').slice(0, 5),
        [1, 2, 3, 4, 5].map((k) => s * k),
      );
    expectClose(exitScales(6, 1, 'linear'), [1, 2, 3, 4, 5, 6]);
  });

  // torchtune's linear_l_loss_scale and uniform_loss_scale multiply only the early exits by e_scale:
  // the final layer weighs L (linear) or 1 (uniform), so e_scale sets the early/final ratio
  it("'linear'/'uniform' (torchtune): e_scale weighs the early exits only, the final layer weighs L (linear) or 1 (uniform)", () => {
    expectClose(exitScales(6, 0.2, 'linear'), [0.2, 0.4, 0.6, 0.8, 1.0, 6]);
    expectClose(exitScales(4, 2, 'uniform'), [2, 2, 2, 1]);
  });

  it('an explicit array is returned as given, whatever e_scale', () => {
    expect(exitScales(4, 0.2, [0.5, 0, 3, 1.25])).toEqual([0.5, 0, 3, 1.25]);
    expect(exitScales(3, 7, [1, 2, 3])).toEqual([1, 2, 3]);
  });
});

describe('curriculumMask', () => {
  it("'rotational' with rotation R: each early exit is on in exactly one of every R consecutive steps; the final layer always", () => {
    const L = 12;
    for (const R of [1, 2, 3, 4, 5]) {
      const masks = Array.from({ length: 40 }, (_, s) => curriculumMask(L, s, 1000, 'rotational', R));
      for (const m of masks) {
        expect(m.length).toBe(L);
        expect(m[L - 1]).toBe(true);
      }
      for (let l = 0; l < L - 1; l++) {
        for (let s = 0; s + R <= masks.length; s++) {
          let on = 0;
          for (let k = 0; k < R; k++) if (masks[s + k][l]) on++;
          if (on !== 1) throw new Error(`R = ${R}, exit ${l}: on ${on} times in steps [${s}, ${s + R})`);
        }
      }
      // within one step, the enabled early exits are every R-th one
      for (const m of masks) {
        const on = m.slice(0, L - 1).flatMap((v, l) => (v ? [l] : []));
        for (let i = 1; i < on.length; i++) expect(on[i] - on[i - 1]).toBe(R);
        expect(on.length).toBeGreaterThanOrEqual(Math.floor((L - 1) / R));
        expect(on.length).toBeLessThanOrEqual(Math.ceil((L - 1) / R));
      }
    }
  });

  it("'rotational': the pattern shifts by one exit per step, always in the same direction", () => {
    const L = 12;
    for (const R of [2, 3, 4]) {
      let dir = 0;
      for (let s = 0; s < 30; s++) {
        const a = curriculumMask(L, s, 1000, 'rotational', R).slice(0, L - 1);
        const b = curriculumMask(L, s + 1, 1000, 'rotational', R).slice(0, L - 1);
        expect(b).not.toEqual(a);
        const down = a.slice(1).every((v, l) => b[l] === v); // b[l] = a[l + 1]
        const up = a.slice(0, -1).every((v, l) => b[l + 1] === v); // b[l + 1] = a[l]
        expect(down || up).toBe(true);
        const d = down ? -1 : 1;
        if (dir === 0) dir = d;
        expect(d).toBe(dir);
      }
    }
  });

  it("'rotational' default rotation is 2", () => {
    for (let s = 0; s < 4; s++) expect(curriculumMask(9, s, 100, 'rotational')).toEqual(curriculumMask(9, s, 100, 'rotational', 2));
  });

  it("'gradual': only the final layer at step 0, exits switched on from the last layer down, all on from half-way", () => {
    for (const [L, T] of [
      [12, 100],
      [12, 101],
      [5, 40],
      [2, 10],
      [24, 1000],
    ] as const) {
      let prev = -1;
      for (let t = 0; t <= T; t++) {
        const m = curriculumMask(L, t, T, 'gradual');
        expect(m.length).toBe(L);
        expect(m[L - 1]).toBe(true);
        const n = count(m);
        if (t === 0) expect(n).toBe(1);
        expect(n).toBeGreaterThanOrEqual(prev); // monotone non-decreasing
        prev = n;
        // from the last layer down: if exit l is on, every exit above it is on
        for (let l = 0; l < L - 1; l++) {
          if (m[l] && !m.slice(l + 1).every(Boolean)) throw new Error(`L ${L} T ${T} step ${t}: exit ${l} on below an exit that is off: ${m.join(' ')}`);
        }
        if (2 * t >= T) expect(n).toBe(L);
        else {
          // a linear ramp: (L - 1) * t / (T / 2) early exits, to within one
          const ramp = ((L - 1) * 2 * t) / T;
          expect(Math.abs(n - 1 - ramp)).toBeLessThanOrEqual(1);
        }
      }
    }
  });

  it("'none' enables the final layer only", () => {
    for (let t = 0; t < 10; t++) expect(curriculumMask(6, t, 10, 'none')).toEqual([false, false, false, false, false, true]);
  });
});

describe('exitWeights', () => {
  const configs: { L: number; T: number; o: EarlyExitLossOptions }[] = [];
  for (const L of [2, 5, 12]) {
    for (const weights of ['paper', 'uniform', 'linear', undefined] as (ExitWeighting | undefined)[]) {
      for (const [curriculum, rotation] of [
        ['rotational', 2],
        ['rotational', 3],
        ['gradual', undefined],
        [undefined, undefined],
      ] as [Curriculum | undefined, number | undefined][]) {
        configs.push({ L, T: 50, o: { scale: 0.2, curriculum, rotation, weights } });
      }
    }
  }

  it('sums to 1 over the enabled exits, zero on the disabled ones, proportional to the scales', () => {
    for (const { L, T, o } of configs) {
      const scales = o.weights === 'paper' || o.weights === undefined ? paperScales(L, o.scale) : exitScales(L, o.scale, o.weights);
      for (let t = 0; t <= T; t++) {
        const w = exitWeights(L, t, T, o);
        expect(w).toBeInstanceOf(Float32Array);
        expect(w.length).toBe(L);
        const mask = curriculumMask(L, t, T, o.curriculum ?? 'rotational', o.rotation ?? 2);
        let sum = 0,
          scaleSum = 0;
        for (let l = 0; l < L; l++) {
          expect(w[l]).toBeGreaterThanOrEqual(0);
          if (!mask[l]) expect(w[l]).toBe(0);
          else scaleSum += scales[l];
          sum += w[l];
        }
        expect(sum).toBeCloseTo(1, 6);
        for (let l = 0; l < L; l++) if (mask[l]) expect(w[l]).toBeCloseTo(scales[l] / scaleSum, 6);
        expect(w[L - 1]).toBeGreaterThan(0); // the final layer always trains
      }
    }
  });

  it("'paper' weights, L = 5, rotational 2 at step 0 (exits 0, 2 and the final layer): closed form", () => {
    // e = [0, 0.2, 0.6, 1.2, 5.2]; enabled 0, 2, 4 -> [0, 0, 0.6, 0, 5.2] / 5.8
    expectClose(exitWeights(5, 0, 100, { scale: 0.2 }), [0, 0, 0.6 / 5.8, 0, 5.2 / 5.8], 1e-6);
    // step 1: exits 1, 3 and the final layer -> [0, 0.2, 0, 1.2, 5.2] / 6.6
    expectClose(exitWeights(5, 1, 100, { scale: 0.2 }), [0, 0.2 / 6.6, 0, 1.2 / 6.6, 5.2 / 6.6], 1e-6);
  });

  it("curriculum 'none' or no options: one-hot on the final layer", () => {
    for (const L of [1, 2, 7]) {
      const hot = Array.from({ length: L }, (_, l) => (l === L - 1 ? 1 : 0));
      for (const t of [0, 3, 9]) {
        expect(Array.from(exitWeights(L, t, 10, undefined))).toEqual(hot);
        expect(Array.from(exitWeights(L, t, 10, { scale: 1, curriculum: 'none' }))).toEqual(hot);
        expect(Array.from(exitWeights(L, t, 10, { scale: 1, curriculum: 'none', weights: 'uniform', rotation: 1 }))).toEqual(hot);
      }
    }
  });

  it('all exits on (rotation 1, uniform, e_scale 1): equal weights 1/L', () => {
    expectClose(exitWeights(4, 7, 10, { scale: 1, rotation: 1, weights: 'uniform' }), [0.25, 0.25, 0.25, 0.25], 1e-7);
  });
});

describe('dropoutRates', () => {
  const L = 12,
    pMax = 0.2;
  const expD = (l: number): number => Math.exp((l * Math.LN2) / (L - 1)) - 1; // 2^(l/(L-1)) - 1

  it("'exp' (the default): p(l) = (2^(l/(L-1)) - 1) * p_max; 0 at the first layer, p_max at the last", () => {
    const want = Array.from({ length: L }, (_, l) => expD(l) * pMax);
    expectClose(dropoutRates(L, 5, 100, { pMax }), want, 1e-12);
    expectClose(dropoutRates(L, 5, 100, { pMax, scale: 'exp' }), want, 1e-12);
    const r = dropoutRates(L, 5, 100, { pMax });
    expect(r[0]).toBe(0);
    expect(r[L - 1]).toBeCloseTo(pMax, 14);
    // the middle of the depth: (sqrt 2 - 1) p_max for odd L
    expect(dropoutRates(5, 0, 1, { pMax })[2]).toBeCloseTo((Math.SQRT2 - 1) * pMax, 14);
    // convex: below the linear ramp in between
    for (let l = 1; l < L - 1; l++) expect(r[l]).toBeLessThan((l / (L - 1)) * pMax);
  });

  it("'linear': p(l) = l/(L-1) * p_max", () => {
    expectClose(
      dropoutRates(L, 5, 100, { pMax, scale: 'linear' }),
      Array.from({ length: L }, (_, l) => (l / (L - 1)) * pMax),
      1e-12,
    );
    expectClose(dropoutRates(3, 0, 1, { pMax: 0.1, scale: 'linear' }), [0, 0.05, 0.1], 1e-12);
  });

  it('fromScratch multiplies by S(t) = 2^(t/T) - 1: 0 at t = 0, 1 at t = T', () => {
    const T = 100;
    const base = Array.from({ length: L }, (_, l) => expD(l) * pMax);
    expectClose(dropoutRates(L, 0, T, { pMax, fromScratch: true }), new Array(L).fill(0));
    expectClose(dropoutRates(L, T, T, { pMax, fromScratch: true }), base, 1e-12);
    expectClose(
      dropoutRates(L, T / 2, T, { pMax, fromScratch: true }),
      base.map((p) => (Math.SQRT2 - 1) * p),
      1e-12,
    );
    for (const t of [10, 37, 99]) {
      const S = Math.exp((t / T) * Math.LN2) - 1;
      expectClose(
        dropoutRates(L, t, T, { pMax, fromScratch: true }),
        base.map((p) => S * p),
        1e-12,
      );
      // without fromScratch the rate does not depend on the step
      expectClose(dropoutRates(L, t, T, { pMax }), base, 1e-12);
    }
    expectClose(dropoutRates(3, 50, T, { pMax: 0.2, scale: 'linear', fromScratch: true }), [0, 0.1 * (Math.SQRT2 - 1), 0.2 * (Math.SQRT2 - 1)], 1e-12);
  });

  it('p_max 0 or no options: all zeros', () => {
    expect(dropoutRates(L, 3, 10, { pMax: 0 })).toEqual(new Array(L).fill(0));
    expect(dropoutRates(L, 3, 10, { pMax: 0, fromScratch: true, scale: 'linear' })).toEqual(new Array(L).fill(0));
    expect(dropoutRates(L, 3, 10, undefined)).toEqual(new Array(L).fill(0));
  });
});

describe('keepFactors', () => {
  it('values 0/1 only; each layer skips at its rate (4 layers x 20000 samples, within 4 standard errors)', () => {
    const layers = 4,
      samples = 20000;
    for (const o of [{ pMax: 0.2 }, { pMax: 0.5, scale: 'linear' as const }, { pMax: 0.3, fromScratch: true }]) {
      const step = 60,
        total = 100;
      const keep = keepFactors(layers, samples, step, total, o, 1234);
      expect(keep).toBeInstanceOf(Float32Array);
      expect(keep.length).toBe(layers * samples);
      expect(keep.every((v) => v === 0 || v === 1)).toBe(true);
      const S = o.fromScratch ? Math.exp((step / total) * Math.LN2) - 1 : 1;
      for (let l = 0; l < layers; l++) {
        const x = l / (layers - 1);
        const p = S * o.pMax * (o.scale === 'linear' ? x : Math.exp(x * Math.LN2) - 1);
        let skipped = 0;
        for (let s = 0; s < samples; s++) if (keep[l * samples + s] === 0) skipped++;
        const freq = skipped / samples;
        if (p === 0) expect(skipped).toBe(0);
        else {
          const se = Math.sqrt((p * (1 - p)) / samples);
          if (Math.abs(freq - p) > 4 * se) throw new Error(`layer ${l}: skip frequency ${freq}, rate ${p} (4 se = ${4 * se})`);
        }
      }
    }
  });

  it('layout [layer][sample]: the first layer (rate 0) never skips, the last (rate p_max = 1) always', () => {
    const layers = 3,
      samples = 50;
    const keep = keepFactors(layers, samples, 0, 10, { pMax: 1 }, 7);
    expect(Array.from(keep.subarray(0, samples))).toEqual(new Array(samples).fill(1));
    expect(Array.from(keep.subarray(2 * samples, 3 * samples))).toEqual(new Array(samples).fill(0));
    const mid = Array.from(keep.subarray(samples, 2 * samples));
    expect(mid).toContain(0);
    expect(mid).toContain(1);
    // linear, p_max 1: rates [0, 0.5, 1] again with layer 1 mixed
    const lin = keepFactors(layers, samples, 0, 10, { pMax: 1, scale: 'linear' }, 7);
    expect(Array.from(lin.subarray(0, samples))).toEqual(new Array(samples).fill(1));
    expect(Array.from(lin.subarray(2 * samples))).toEqual(new Array(samples).fill(0));
  });

  it('deterministic for (seed, step); different for another step or seed', () => {
    const o = { pMax: 0.5 };
    const a = keepFactors(6, 64, 3, 100, o, 42);
    expect(Array.from(keepFactors(6, 64, 3, 100, o, 42))).toEqual(Array.from(a));
    expect(Array.from(keepFactors(6, 64, 4, 100, o, 42))).not.toEqual(Array.from(a));
    expect(Array.from(keepFactors(6, 64, 3, 100, o, 43))).not.toEqual(Array.from(a));
  });

  it('no dropout: all ones', () => {
    expect(Array.from(keepFactors(3, 5, 2, 10, undefined, 1))).toEqual(new Array(15).fill(1));
    expect(Array.from(keepFactors(3, 5, 2, 10, { pMax: 0 }, 1))).toEqual(new Array(15).fill(1));
    // fromScratch at t = 0: S = 0
    expect(Array.from(keepFactors(3, 5, 0, 10, { pMax: 0.9, fromScratch: true }, 1))).toEqual(new Array(15).fill(1));
  });
});

describe('learningRate', () => {
  const peak = 1e-3,
    floor = 1e-4,
    W = 10,
    T = 110;

  it('linear warm-up: (step + 1) / warmup * peak, reaching the peak at step warmup - 1', () => {
    for (let s = 0; s < W; s++) expect(learningRate(s, T, peak, W, floor)).toBeCloseTo(((s + 1) / W) * peak, 15);
    expect(learningRate(0, T, peak, W, floor)).toBeCloseTo(peak / 10, 15);
    expect(learningRate(W - 1, T, peak, W, floor)).toBeCloseTo(peak, 15);
    expect(learningRate(0, T, peak, 1, floor)).toBeCloseTo(peak, 15);
    // no warm-up: the peak at step 0
    expect(learningRate(0, T, peak, 0, floor)).toBeCloseTo(peak, 15);
  });

  it('cosine decay: the peak at step warmup, (peak + floor)/2 half-way, the floor at the end', () => {
    expect(learningRate(W, T, peak, W, floor)).toBeCloseTo(peak, 15);
    const mid = W + (T - W) / 2;
    expect(learningRate(mid, T, peak, W, floor)).toBeCloseTo((peak + floor) / 2, 15);
    // a quarter of the way: cos(pi/4) = sqrt(1/2)
    expect(learningRate(W + (T - W) / 4, T, peak, W, floor)).toBeCloseTo(floor + ((peak - floor) * (1 + Math.SQRT1_2)) / 2, 15);
    expect(learningRate(W + (3 * (T - W)) / 4, T, peak, W, floor)).toBeCloseTo(floor + ((peak - floor) * (1 - Math.SQRT1_2)) / 2, 15);
    expect(learningRate(T, T, peak, W, floor)).toBeCloseTo(floor, 15);
    // past the end it stays at the floor
    expect(learningRate(T + 50, T, peak, W, floor)).toBeCloseTo(floor, 15);
    // the last trained step (T - 1, steps run 0..T-1) is within one step's decay of the floor
    const last = learningRate(T - 1, T, peak, W, floor);
    expect(last).toBeGreaterThanOrEqual(floor);
    expect(last - floor).toBeLessThan((peak - floor) * (1 - Math.cos(Math.PI / (T - W))));
  });

  it('monotone non-increasing after warm-up, between floor and peak', () => {
    for (const [w, t, f] of [
      [W, T, floor],
      [0, 37, 0],
      [5, 6, 2e-4],
      [20, 1000, 1e-5],
    ] as const) {
      let prev = Infinity;
      for (let s = w; s <= t + 3; s++) {
        const lr = learningRate(s, t, peak, w, f);
        expect(lr).toBeLessThanOrEqual(prev + 1e-18);
        expect(lr).toBeGreaterThanOrEqual(f - 1e-18);
        expect(lr).toBeLessThanOrEqual(peak + 1e-18);
        prev = lr;
      }
      // warm-up strictly increasing
      for (let s = 1; s < w; s++) expect(learningRate(s, t, peak, w, f)).toBeGreaterThan(learningRate(s - 1, t, peak, w, f));
    }
  });
});

describe('data windows', () => {
  // distinct, strictly increasing values: a window's first value names its offset
  const N = 1000;
  const stream = Int32Array.from({ length: N }, (_, i) => 3 + 7 * i);
  const offsetOf = (v: number): number => (v - 3) / 7;

  it('sampleWindows: count * length tokens, each window a contiguous slice of the stream', () => {
    const count = 16,
      length = 33;
    const w = sampleWindows(stream, count, length, 5, 0);
    expect(w).toBeInstanceOf(Int32Array);
    expect(w.length).toBe(count * length);
    for (let i = 0; i < count; i++) {
      const at = offsetOf(w[i * length]);
      expect(Number.isInteger(at)).toBe(true);
      expect(at).toBeGreaterThanOrEqual(0);
      expect(at + length).toBeLessThanOrEqual(N);
      expect(Array.from(w.subarray(i * length, (i + 1) * length))).toEqual(Array.from(stream.subarray(at, at + length)));
    }
  });

  it('sampleWindows: offsets cover the whole stream, both ends included, never past it', () => {
    const small = stream.subarray(0, 50),
      length = 10;
    const w = sampleWindows(small, 3000, length, 9, 2);
    const seen = new Set<number>();
    for (let i = 0; i < 3000; i++) {
      const at = offsetOf(w[i * length]);
      expect(Array.from(w.subarray(i * length, (i + 1) * length))).toEqual(Array.from(small.subarray(at, at + length)));
      seen.add(at);
    }
    expect(Math.min(...seen)).toBe(0);
    expect(Math.max(...seen)).toBe(50 - length);
    expect(seen.size).toBe(50 - length + 1);
    // a stream exactly one window long: that window, every time
    const one = sampleWindows(small, 4, 50, 1, 0);
    for (let i = 0; i < 4; i++) expect(Array.from(one.subarray(i * 50, (i + 1) * 50))).toEqual(Array.from(small));
  });

  it('sampleWindows: deterministic for (seed, step), different across steps and seeds', () => {
    const a = Array.from(sampleWindows(stream, 8, 16, 11, 4));
    expect(Array.from(sampleWindows(stream, 8, 16, 11, 4))).toEqual(a);
    expect(Array.from(sampleWindows(stream, 8, 16, 11, 5))).not.toEqual(a);
    expect(Array.from(sampleWindows(stream, 8, 16, 12, 4))).not.toEqual(a);
  });

  /** The expected batch count, by walking: whole batches while data and the token budget last, at least one. */
  function expectedBatches(n: number, batch: number, length: number, maxTokens: number): number {
    if (n < batch * length) return 0;
    let k = 0;
    while ((k + 1) * batch * length <= n && (k + 1) * batch * (length - 1) <= maxTokens) k++;
    return Math.max(1, k);
  }

  it('evaluationBatches: contiguous non-overlapping windows from the start, whole batches, at most maxTokens predicted', () => {
    for (const [n, batch, length, maxTokens] of [
      [1000, 2, 10, 100], // budget-bound: floor(100 / 18) = 5
      [1000, 2, 10, 1e9], // data-bound: 100 windows -> 50 batches
      [990, 2, 10, 1e9], // 99 windows -> 49 batches, the odd window left out
      [1005, 4, 10, 1e9], // 100 windows -> 25 batches
      [1000, 3, 17, 48], // exactly one batch's budget: 3 * 16 = 48
      [1000, 3, 17, 47], // below one batch's budget: still one batch
      [1000, 1, 2, 7], // 7 one-token windows
      [40, 2, 20, 1e9], // exactly one batch of data
    ] as const) {
      const got = evaluationBatches(stream.subarray(0, n), batch, length, maxTokens);
      const want = expectedBatches(n, batch, length, maxTokens);
      expect(got.length, `n ${n} batch ${batch} length ${length} maxTokens ${maxTokens}`).toBe(want);
      for (const [b, t] of got.entries()) {
        expect(t).toBeInstanceOf(Int32Array);
        expect(t.length).toBe(batch * length);
        expect(Array.from(t)).toEqual(Array.from(stream.subarray(b * batch * length, (b + 1) * batch * length)));
      }
      if (maxTokens >= batch * (length - 1)) expect(got.length * batch * (length - 1)).toBeLessThanOrEqual(maxTokens);
      expect(got.length).toBeGreaterThanOrEqual(1);
    }
    // the budget counts predicted tokens (length - 1 per window), not stored ones
    expect(evaluationBatches(stream, 2, 10, 36)).toHaveLength(2); // 2 * 18 = 36 <= 36, 2 * 20 = 40 > 36
  });

  it('evaluationBatches: none when the stream holds fewer than one batch of windows', () => {
    expect(evaluationBatches(stream.subarray(0, 39), 2, 20, 1e9)).toEqual([]);
    expect(evaluationBatches(stream.subarray(0, 19), 1, 20, 1e9)).toEqual([]);
    expect(evaluationBatches(new Int32Array(0), 1, 2, 100)).toEqual([]);
    expect(evaluationBatches(stream, 101, 10, 1e9)).toEqual([]); // 100 windows < 101
  });
});
