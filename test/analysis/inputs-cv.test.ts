/**
 * Input validation, input formats, transform, and the cross-validated choice of
 * the rCCA coefficient.
 */
import { describe, expect, it } from 'vitest';
import { Matrix, crossValidateRegularization, DEFAULT_RCCA_GRID, pca, pls, rcca, rccaCv, ShapeError } from '../../lib/analysis/index.js';
import { gaussian, rng } from './helpers.js';

describe('input handling', () => {
  const r = rng(61);
  const x = gaussian(r, 30, 6);
  const y = x.mmul(gaussian(r, 6, 4)).add(gaussian(r, 30, 4));

  it('accepts Matrix, Float32Array rows, Float64Array rows and number[][] alike', () => {
    const ref = pls(x, y, { k: 2 });
    const f64 = pls(
      x.to2DArray().map((row) => Float64Array.from(row)),
      y.to2DArray().map((row) => Float64Array.from(row)),
      { k: 2 },
    );
    const arr = pls(x.to2DArray(), y.to2DArray(), { k: 2 });
    expect(f64.x.weights.to2DArray()).toEqual(ref.x.weights.to2DArray());
    expect(arr.x.weights.to2DArray()).toEqual(ref.x.weights.to2DArray());
    // Float32 rounding changes the numbers slightly, not the answer.
    const f32 = pls(
      x.to2DArray().map((row) => Float32Array.from(row)),
      y.to2DArray().map((row) => Float32Array.from(row)),
      { k: 2 },
    );
    expect(f32.singularValues[0]).toBeCloseTo(ref.singularValues[0], 5);
  });

  it('rejects bad shapes and values with clear errors', () => {
    expect(() => pca([], { k: 1 })).toThrow(ShapeError);
    expect(() => pca([[1, 2], [3]], { k: 1 })).toThrow(/row 1 has 1 columns, row 0 has 2/);
    expect(() =>
      pca(
        [
          [1, Number.NaN],
          [3, 4],
        ],
        { k: 1 },
      ),
    ).toThrow(/non-finite value NaN at row 0, column 1/);
    expect(() => pca([[1, 2]], { k: 1 })).toThrow(/at least 2 samples/);
    expect(() => pls(x, gaussian(r, 29, 4), { k: 1 })).toThrow(/X has 30 rows but Y has 29/);
    expect(() => pls(x, y, { k: 0 })).toThrow(/positive integer/);
    expect(() => pls(x, y, { k: 5 })).toThrow(/exceeds/);
    expect(() => pca('nope' as unknown as number[][], { k: 1 })).toThrow(/expected a Matrix or an array of rows/);
    const fit = pca(x, { k: 2 });
    expect(() => fit.transform(gaussian(r, 3, 5))).toThrow(/expected 6 columns/);
  });

  it('transform of the training data reproduces the fitted projections', () => {
    const fit = rcca(x, y, { k: 2, regularization: 0.2 });
    const z = fit.transform(x, y);
    expect(z.x.rows).toBe(30);
    expect(z.x.columns).toBe(2);
    // New single sample: (x − mean) · W.
    const row = x.getRow(0);
    const manual = fit.x.weights.getColumn(0).reduce((a, w, j) => a + w * (row[j] - fit.x.mean[j]), 0);
    expect(fit.x.transform([row]).get(0, 0)).toBeCloseTo(manual, 12);
    expect(z.x.get(0, 0)).toBeCloseTo(manual, 12);
  });
});

describe('cross-validated rCCA', () => {
  it('scores every grid candidate and refits with the best one', () => {
    const r = rng(71);
    const n = 120;
    const z = gaussian(r, n, 1);
    const x = z.mmul(gaussian(r, 1, 10)).add(gaussian(r, n, 10));
    const y = z.mmul(gaussian(r, 1, 8)).add(gaussian(r, n, 8));
    const res = rccaCv(x, y, { k: 1, seed: 3 });
    const cv = res.crossValidation;
    expect(cv.folds).toBe(5);
    expect(cv.scores).toHaveLength(DEFAULT_RCCA_GRID.length);
    const finite = cv.scores.filter((s) => Number.isFinite(s.score));
    expect(finite).toHaveLength(DEFAULT_RCCA_GRID.length); // n > d: c = 0 is feasible
    expect(cv.bestScore).toBe(Math.max(...finite.map((s) => s.score)));
    expect(res.regularization).toEqual(cv.best);
    // A real shared signal: held-out correlation well above 0.
    expect(cv.bestScore).toBeGreaterThan(0.5);
    // Refit equals a direct rcca with the chosen coefficients.
    const direct = rcca(x, y, { k: 1, regularization: cv.best });
    expect(res.x.weights.to2DArray()).toEqual(direct.x.weights.to2DArray());
    // Deterministic for a given seed.
    expect(crossValidateRegularization(x, y, { k: 1, seed: 3 })).toEqual(cv);
  });

  it('skips c = 0 when n < d, and supports per-modality grids', () => {
    const r = rng(72);
    const n = 25;
    const z = gaussian(r, n, 1);
    const x = z.mmul(gaussian(r, 1, 40)).add(gaussian(r, n, 40));
    const y = z.mmul(gaussian(r, 1, 6)).add(gaussian(r, n, 6).mul(0.5));
    const cv = crossValidateRegularization(x, y, { k: 1, grid: [0, 0.1, 0.5, 1], perModality: true, folds: 4 });
    expect(cv.scores).toHaveLength(16);
    for (const s of cv.scores) {
      // X (40 dims, 18–19 training samples) is singular: cx = 0 infeasible. Y (6 dims) is not.
      expect(Number.isNaN(s.score)).toBe(s.x === 0);
    }
    expect(cv.best.x).toBeGreaterThan(0);
    expect(() => crossValidateRegularization(x.subMatrix(0, 4, 0, 39), y.subMatrix(0, 4, 0, 5), { k: 1 })).toThrow(/at least 2 folds/);
    expect(() => crossValidateRegularization(x, y, { k: 1, grid: [0] })).toThrow(/infeasible/);
  });

  it('works on Matrix and arrays identically', () => {
    const r = rng(73);
    const x = gaussian(r, 40, 5);
    const y = x.mmul(gaussian(r, 5, 3)).add(gaussian(r, 40, 3));
    const a = crossValidateRegularization(x, y, { k: 1, grid: [0.1, 0.5] });
    const b = crossValidateRegularization(x.to2DArray(), new Matrix(y.to2DArray()), { k: 1, grid: [0.1, 0.5] });
    expect(a).toEqual(b);
  });
});
