/**
 * The seeded generator, the SDR generative model, and the quality metrics.
 */
import { describe, expect, it } from 'vitest';
import {
  chanceSubspaceQuality,
  createRng,
  createSdrModel,
  Matrix,
  meanSquaredCanonicalCorrelation,
  mulberry32,
  principalAngleCosines,
  reconstructedCorrelation,
  subspaceQuality,
} from '../../lib/analysis/index.js';
import { covariance, gaussian, rng } from './helpers.js';

describe('seeded random numbers', () => {
  it('mulberry32 is deterministic and uniform-looking', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const va = Array.from({ length: 5 }, a);
    expect(va).toEqual(Array.from({ length: 5 }, b));
    expect(Array.from({ length: 5 }, mulberry32(43))).not.toEqual(va);
    const u = mulberry32(7);
    let s = 0;
    let lo = 1;
    let hi = 0;
    for (let i = 0; i < 20000; i++) {
      const v = u();
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
      s += v;
    }
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThan(1);
    // sd of the mean of 20000 uniforms: 0.289/√20000 = 0.002; 0.01 is 5 sd.
    expect(Math.abs(s / 20000 - 0.5)).toBeLessThan(0.01);
  });

  it('Box–Muller normals have mean 0 and variance 1', () => {
    const r = createRng(9);
    const n = 40000;
    let m = 0;
    let m2 = 0;
    for (let i = 0; i < n; i++) {
      const v = r.normal();
      m += v;
      m2 += v * v;
    }
    // sd of the mean 1/√n = 0.005, of the second moment √(2/n) = 0.007: 4–5 sd margins.
    expect(Math.abs(m / n)).toBeLessThan(0.02);
    expect(Math.abs(m2 / n - 1)).toBeLessThan(0.03);
    const p = createRng(1).permutation(10);
    expect([...p].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});

describe('SDR generative model', () => {
  const options = { dx: 30, dy: 20, sharedSignals: 2, selfSignals: 3, snrShared: 0.5, snrSelf: 2, seed: 5 };

  it('has the documented shapes and per-feature SNRs', () => {
    const model = createSdrModel(options);
    expect(model.sharedLoadingsX.rows).toBe(30);
    expect(model.sharedLoadingsX.columns).toBe(2);
    expect(model.sharedLoadingsY.rows).toBe(20);
    expect(model.selfLoadingsX.columns).toBe(3);
    // Loading entries have variance snr / m, so Σ over a row of squared loadings
    // averages snr per feature. With 30·2 and 30·3 entries the relative sd of the
    // average is ≈ √(2/60) ≈ 0.18 and √(2/90) ≈ 0.15; a 45% band is ~3 sd.
    const perFeature = (m: Matrix) => m.to1DArray().reduce((a, v) => a + v * v, 0) / m.rows;
    expect(perFeature(model.sharedLoadingsX) / 0.5).toBeGreaterThan(0.55);
    expect(perFeature(model.sharedLoadingsX) / 0.5).toBeLessThan(1.45);
    expect(perFeature(model.selfLoadingsX) / 2).toBeGreaterThan(0.55);
    expect(perFeature(model.selfLoadingsX) / 2).toBeLessThan(1.45);
    // Sample covariance ≈ B Bᵀ + A Aᵀ + I (n = 20000: entry sd ≈ var/√n ≤ 0.06).
    const s = model.sample(20000, 1);
    const c = covariance(s.x);
    const pop = model.sharedLoadingsX
      .mmul(model.sharedLoadingsX.transpose())
      .add(model.selfLoadingsX.mmul(model.selfLoadingsX.transpose()))
      .add(Matrix.eye(30));
    let maxErr = 0;
    for (let i = 0; i < 30; i++) for (let j = 0; j < 30; j++) maxErr = Math.max(maxErr, Math.abs(c.get(i, j) - pop.get(i, j)));
    expect(maxErr).toBeLessThan(0.35); // max over 900 entries: ~5 sd of the largest-variance entries
  });

  it('is deterministic per (model seed, sample seed)', () => {
    const a = createSdrModel(options).sample(10, 3);
    const b = createSdrModel(options).sample(10, 3);
    expect(a.x.to2DArray()).toEqual(b.x.to2DArray());
    expect(createSdrModel(options).sample(10, 4).x.to2DArray()).not.toEqual(a.x.to2DArray());
    expect(createSdrModel({ ...options, seed: 6 }).sharedLoadingsX.to2DArray()).not.toEqual(createSdrModel(options).sharedLoadingsX.to2DArray());
  });

  it('optimal weights are C⁻¹ B', () => {
    const model = createSdrModel(options);
    const pop = model.sharedLoadingsX
      .mmul(model.sharedLoadingsX.transpose())
      .add(model.selfLoadingsX.mmul(model.selfLoadingsX.transpose()))
      .add(Matrix.eye(30));
    const back = pop.mmul(model.optimalWeightsX);
    for (let i = 0; i < 30; i++) for (let j = 0; j < 2; j++) expect(back.get(i, j)).toBeCloseTo(model.sharedLoadingsX.get(i, j), 10);
  });

  it('validates its options', () => {
    expect(() => createSdrModel({ ...options, sharedSignals: 0 })).toThrow(/sharedSignals/);
    expect(() => createSdrModel({ ...options, snrSelf: -1 })).toThrow(/snrSelf/);
    expect(() => createSdrModel({ ...options, noiseStd: 0 })).toThrow(/noiseStd/);
  });
});

describe('subspace metrics', () => {
  it('principal angles: identical, orthogonal, partial', () => {
    const e = (i: number, d: number) => Array.from({ length: d }, (_, j) => (j === i ? 1 : 0));
    const a = new Matrix([e(0, 4), e(1, 4), e(2, 4), e(3, 4)]).subMatrix(0, 3, 0, 1); // span(e0, e1)
    expect(subspaceQuality(a, a.clone().mul(3))).toBeCloseTo(1, 12);
    const b = new Matrix([e(0, 4), e(1, 4), e(2, 4), e(3, 4)]).subMatrix(0, 3, 2, 3); // span(e2, e3)
    expect(subspaceQuality(a, b)).toBeCloseTo(0, 12);
    // span(e0, (e1 + e2)/√2): cosines 1 and 1/√2 → mean cos² = 0.75.
    const c = new Matrix([
      [1, 0],
      [0, 1],
      [0, 1],
      [0, 0],
    ]);
    const cos = principalAngleCosines(a, c);
    expect(cos[0]).toBeCloseTo(1, 12);
    expect(cos[1]).toBeCloseTo(Math.SQRT1_2, 12);
    expect(subspaceQuality(a, c)).toBeCloseTo(0.75, 12);
  });

  it('random subspaces score k/d on average (the chance level)', () => {
    const r = rng(81);
    const d = 50;
    const k = 3;
    const truth = gaussian(r, d, k);
    let s = 0;
    const trials = 300;
    for (let t = 0; t < trials; t++) s += subspaceQuality(gaussian(r, d, k), truth);
    // Each draw has mean k/d = 0.06 and sd ≈ 0.03; the mean of 300 has sd ≈ 0.002.
    expect(Math.abs(s / trials - chanceSubspaceQuality(d, k))).toBeLessThan(0.01);
    expect(chanceSubspaceQuality(50, 2, 4)).toBeCloseTo(0.08, 12);
  });

  it('reconstructed correlation: 1 for the same representation, ~0 for unrelated data', () => {
    const r = rng(82);
    const zx = gaussian(r, 400, 2);
    const same = reconstructedCorrelation(
      zx,
      zx.mmul(
        new Matrix([
          [2, 1],
          [0, 1],
        ]),
      ),
    );
    expect(same.raw).toBeCloseTo(1, 10);
    expect(same.score).toBeCloseTo(1, 2);
    // Shuffled baseline for k = 2, n = 400: E[ρ²] ≈ 1/n per pair ⇒ ≈ 0.0025.
    expect(same.baseline).toBeLessThan(0.02);
    const unrelated = reconstructedCorrelation(zx, gaussian(r, 400, 2), { shuffles: 20, seed: 1 });
    expect(unrelated.raw).toBeLessThan(0.03);
    expect(unrelated.score).toBeLessThan(0.03);
    // Partial: corr 0.6 in one of two pairs → mean ρ² = 0.18.
    const noise = gaussian(r, 400, 2);
    const zy = new Matrix(400, 2);
    for (let t = 0; t < 400; t++) {
      zy.set(t, 0, 0.6 * zx.get(t, 0) + 0.8 * noise.get(t, 0));
      zy.set(t, 1, noise.get(t, 1));
    }
    // sd of ρ̂² ≈ 2ρ(1 − ρ²)/√n = 0.04 (halved by the mean) ⇒ tolerance 0.06.
    expect(Math.abs(meanSquaredCanonicalCorrelation(zx, zy) - 0.18)).toBeLessThan(0.06);
    const rc = reconstructedCorrelation(zx, zy, { reference: 0.18 });
    expect(rc.score).toBeGreaterThan(0.6);
  });
});
