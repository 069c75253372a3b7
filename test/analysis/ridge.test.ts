// Ridge regression against its closed form (XcᵀXc + λI)⁻¹ XcᵀYc solved directly, in both the
// primal (n ≥ d) and the dual (n < d) form, and the cross-validated strength choice.
import { Matrix, solve } from 'ml-matrix';
import { describe, expect, it } from 'vitest';
import { ridge, ridgeCv, ridgePredict } from '../../lib/analysis/ridge.js';
import { createRng } from '../../lib/analysis/random.js';

function data(n: number, dx: number, dy: number, noise: number, seed: number) {
  const rng = createRng(seed);
  const b = Array.from({ length: dx }, () => Array.from({ length: dy }, () => rng.normal()));
  const x = Array.from({ length: n }, () => Float64Array.from({ length: dx }, () => rng.normal() + 0.5));
  const y = x.map((row) => Float64Array.from({ length: dy }, (_, j) => 1 + row.reduce((s, v, i) => s + v * b[i][j], 0) + noise * rng.normal()));
  return { x, y };
}

/** The closed form with the relative strength's scale (mean eigenvalue of XcᵀXc = trace / d). */
function direct(x: Float64Array[], y: Float64Array[], lambda: number): Matrix {
  const X = new Matrix(x.map((r) => Array.from(r)));
  const Y = new Matrix(y.map((r) => Array.from(r)));
  const Xc = X.clone().subRowVector(X.mean('column'));
  const Yc = Y.clone().subRowVector(Y.mean('column'));
  const G = Xc.transpose().mmul(Xc);
  const scale = G.trace() / G.rows;
  return solve(G.add(Matrix.eye(G.rows).mul(lambda * scale)), Xc.transpose().mmul(Yc));
}

describe('ridge', () => {
  it.each([
    ['primal (n >= d)', 40, 8],
    ['dual (n < d)', 9, 20],
  ])('%s equals the closed form', (_, n, d) => {
    const { x, y } = data(n, d, 3, 0.1, n + d);
    for (const lambda of [1e-3, 0.1, 1]) {
      const fit = ridge(x, y, lambda);
      const want = direct(x, y, lambda);
      for (let i = 0; i < d; i++) for (let j = 0; j < 3; j++) expect(fit.coefficients[i][j]).toBeCloseTo(want.get(i, j), 8);
      // the intercept makes the prediction of the mean row the mean target
      const meanX = Float64Array.from({ length: d }, (_, i) => x.reduce((s, r) => s + r[i], 0) / n);
      const pred = ridgePredict(fit, [meanX])[0];
      for (let j = 0; j < 3; j++) expect(pred[j]).toBeCloseTo(y.reduce((s, r) => s + r[j], 0) / n, 8);
    }
  });

  it('cross-validation picks a small strength for clean data and a large one for noise', () => {
    const clean = data(60, 6, 2, 0, 1);
    expect(ridgeCv(clean.x, clean.y).lambda).toBe(1e-4);
    const rng = createRng(5);
    const noiseY = clean.x.map(() => Float64Array.from({ length: 2 }, () => rng.normal()));
    expect(ridgeCv(clean.x, noiseY).lambda).toBe(1);
    // the dual path's cross-validation agrees with the primal one on the same choice
    const wide = data(12, 30, 2, 0.01, 3);
    const r = ridgeCv(wide.x, wide.y, { folds: 3 });
    expect(r.scores.length).toBe(5);
    expect(r.scores.every((s) => Number.isFinite(s.mse))).toBe(true);
  });
});
