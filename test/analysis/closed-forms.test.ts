/**
 * Closed-form checks: data with known canonical correlations, principal and
 * singular directions; consistency between CCA / rCCA / PLS; the span-based
 * computation against a naive full-dimension one; linear CKA identities.
 */
import { inverse, Matrix } from 'ml-matrix';
import { describe, expect, it } from 'vitest';
import { cca, linearCka, pca, pls, rcca, SingularCovarianceError } from '../../lib/analysis/index.js';
import { absCos, columnOf, covariance, gaussian, naiveRcca, randomOrthogonal, rng } from './helpers.js';

describe('CCA on data with known canonical correlations', () => {
  // u ~ N(0, I_5); X = u · Mxᵀ with an invertible, non-orthogonal Mx (CCA is
  // invariant to invertible maps, so the answer is the same as for u itself);
  // v = [u1 + 0.5 e1, u2 + 1.0 e2, e3, e4] and Y = v · Myᵀ.
  // Canonical correlations: corr(u1, u1 + 0.5 e1) = 1/sqrt(1.25) ≈ 0.894 and
  // corr(u2, u2 + e2) = 1/sqrt(2) ≈ 0.707; the rest are 0.
  // Canonical weights: wxᵀ x = u1 ⇒ wx ∝ Mx⁻ᵀ e1; loadings Cx wx = Mx e1.
  const n = 5000;
  const r = rng(11);
  const u = gaussian(r, n, 5);
  const e = gaussian(r, n, 4);
  const mx = randomOrthogonal(r, 5)
    .mmul(Matrix.diag([3, 2, 1, 0.5, 0.25]))
    .mmul(randomOrthogonal(r, 5));
  const my = randomOrthogonal(r, 4).mmul(Matrix.diag([1, 4, 2, 0.3]));
  const v = new Matrix(n, 4);
  for (let t = 0; t < n; t++) {
    v.set(t, 0, u.get(t, 0) + 0.5 * e.get(t, 0));
    v.set(t, 1, u.get(t, 1) + 1.0 * e.get(t, 1));
    v.set(t, 2, e.get(t, 2));
    v.set(t, 3, e.get(t, 3));
  }
  const x = u.mmul(mx.transpose());
  const y = v.mmul(my.transpose());
  const rho = [1 / Math.sqrt(1.25), 1 / Math.sqrt(2)];

  it('recovers the canonical correlations within sampling error', () => {
    const res = cca(x, y, { k: 2 });
    // Sampling sd of a canonical correlation is ≈ (1 − ρ²)/√n: 0.0028 and 0.0071
    // at n = 5000; the upward in-sample bias from fitting 5 + 4 dimensions is
    // O((dx + dy)/n) ≈ 0.002. Tolerances 0.02 and 0.03 are > 4 sd plus the bias.
    expect(Math.abs(res.correlations[0] - rho[0])).toBeLessThan(0.02);
    expect(Math.abs(res.correlations[1] - rho[1])).toBeLessThan(0.03);
    // For CCA the singular values are the canonical correlations.
    for (let i = 0; i < 2; i++) expect(res.singularValues[i]).toBeCloseTo(res.correlations[i], 10);
  });

  it('recovers the canonical weights and loadings', () => {
    const res = cca(x, y, { k: 2 });
    // True weights: columns of (Mxᵀ)⁻¹ (so that wᵢᵀ x = uᵢ).
    const wTrue = inverse(mx.transpose());
    // The directions are separated by a correlation gap of 0.19 against sampling
    // noise of order 1/√n = 0.014, so |cos| > 0.98 leaves a wide margin.
    for (let i = 0; i < 2; i++) {
      expect(absCos(columnOf(res.x.weights, i), columnOf(wTrue, i))).toBeGreaterThan(0.98);
      expect(absCos(columnOf(res.x.directions, i), columnOf(mx, i))).toBeGreaterThan(0.98);
    }
    // Canonical variates have unit variance and the canonical correlations.
    const z = res.transform(x, y);
    const cz = covariance(z.x);
    expect(cz.get(0, 0)).toBeCloseTo(1, 8);
    expect(cz.get(1, 1)).toBeCloseTo(1, 8);
    expect(cz.get(0, 1)).toBeCloseTo(0, 8);
    const cxy = covariance(z.x, z.y);
    expect(cxy.get(0, 0)).toBeCloseTo(res.correlations[0], 8);
    expect(cxy.get(1, 1)).toBeCloseTo(res.correlations[1], 8);
  });

  it('is deterministic, with the largest-magnitude loading entry positive', () => {
    const a = cca(x, y, { k: 2 });
    const b = cca(x, y, { k: 2 });
    expect(a.x.weights.to2DArray()).toEqual(b.x.weights.to2DArray());
    for (let j = 0; j < 2; j++) {
      const col = columnOf(a.x.directions, j);
      const big = col.reduce((best, v) => (Math.abs(v) > Math.abs(best) ? v : best), 0);
      expect(big).toBeGreaterThan(0);
    }
    // Paired projections correlate positively.
    expect(a.correlations[0]).toBeGreaterThan(0);
    expect(a.correlations[1]).toBeGreaterThan(0);
  });
});

describe('CCA refuses singular covariances', () => {
  it('throws SingularCovarianceError when n <= d', () => {
    const r = rng(3);
    const x = gaussian(r, 20, 30);
    const y = gaussian(r, 20, 5);
    expect(() => cca(x, y, { k: 1 })).toThrow(SingularCovarianceError);
    expect(() => cca(x, y, { k: 1 })).toThrow(/n = 20 samples <= d = 30/);
    // n = d is also singular after centring (rank n − 1).
    expect(() => cca(gaussian(r, 10, 10), gaussian(r, 10, 3), { k: 1 })).toThrow(SingularCovarianceError);
  });

  it('throws when n > d but the data are rank-deficient', () => {
    const r = rng(4);
    const x = gaussian(r, 100, 4);
    const dup = new Matrix(100, 5);
    for (let t = 0; t < 100; t++) {
      for (let j = 0; j < 4; j++) dup.set(t, j, x.get(t, j));
      dup.set(t, 4, x.get(t, 0) + 2 * x.get(t, 1));
    }
    expect(() => cca(dup, gaussian(r, 100, 3), { k: 1 })).toThrow(/numerical rank 4 < d = 5/);
  });

  it('rCCA with a positive coefficient still works there', () => {
    const r = rng(3);
    const res = rcca(gaussian(r, 20, 30), gaussian(r, 20, 5), { k: 1, regularization: 0.1 });
    expect(res.x.weights.rows).toBe(30);
  });
});

describe('PCA and PLS on data with known directions', () => {
  it('PCA returns the known eigenvectors and variances', () => {
    // x = z · diag(σ) · Qᵀ, so Cov = Q diag(σ²) Qᵀ with well-separated σ² = 25, 9, 4, 1, 0.25.
    const n = 5000;
    const r = rng(21);
    const q = randomOrthogonal(r, 5);
    const sig = [5, 3, 2, 1, 0.5];
    const x = gaussian(r, n, 5).mmul(Matrix.diag(sig)).mmul(q.transpose());
    const res = pca(x, { k: 3 });
    // Relative sd of a sample variance is √(2/n) = 2%; 8% is 4 sd. Eigenvector
    // error ≈ σ_i σ_j / (σ_i² − σ_j²)/√n ≤ 0.03 rad here, so |cos| > 0.99 is safe.
    for (let i = 0; i < 3; i++) {
      expect(Math.abs(res.variances[i] / sig[i] ** 2 - 1)).toBeLessThan(0.08);
      expect(absCos(columnOf(res.projection.directions, i), columnOf(q, i))).toBeGreaterThan(0.99);
    }
    const total = sig.reduce((a, s) => a + s * s, 0);
    expect(Math.abs(res.explainedVarianceRatio[0] - 25 / total)).toBeLessThan(0.03);
  });

  it('PCA with n < d (Gram route) matches the d × d covariance eigenvectors', () => {
    const r = rng(22);
    const x = gaussian(r, 15, 40).mmul(Matrix.diag(Array.from({ length: 40 }, (_, i) => 1 + 3 / (1 + i))));
    const res = pca(x, { k: 4 });
    const c = covariance(x);
    for (let i = 0; i < 4; i++) {
      const w = columnOf(res.projection.directions, i);
      // Cw = λw exactly (up to rounding) with λ the reported variance.
      const cw = c.mmul(Matrix.columnVector(w)).getColumn(0);
      for (let j = 0; j < 40; j++) expect(cw[j]).toBeCloseTo(res.variances[i] * w[j], 9);
    }
    expect(() => pca(x, { k: 15 })).toThrow(/exceeds the 14 component/);
  });

  it('PLS returns the known singular directions of the cross-covariance', () => {
    // x = u · Qxᵀ (u ~ N(0, I_6)); y = [3 u1 + ε1, 1.5 u2 + ε2, ε3, ε4] · Qyᵀ.
    // Then Cxy = Qx · G · Qyᵀ with G = diag(3, 1.5) in the top-left corner.
    const n = 20000;
    const r = rng(31);
    const qx = randomOrthogonal(r, 6);
    const qy = randomOrthogonal(r, 4);
    const u = gaussian(r, n, 6);
    const eps = gaussian(r, n, 4);
    const v = new Matrix(n, 4);
    for (let t = 0; t < n; t++) {
      v.set(t, 0, 3 * u.get(t, 0) + eps.get(t, 0));
      v.set(t, 1, 1.5 * u.get(t, 1) + eps.get(t, 1));
      v.set(t, 2, eps.get(t, 2));
      v.set(t, 3, eps.get(t, 3));
    }
    const res = pls(u.mmul(qx.transpose()), v.mmul(qy.transpose()), { k: 2 });
    // First-order error of a singular value is one entry of the sampling noise of
    // Cxy: sd ≈ √(E[u²y²]/n) ≤ √(28/20000) ≈ 0.037; 0.15 is 4 sd.
    expect(Math.abs(res.singularValues[0] - 3)).toBeLessThan(0.15);
    expect(Math.abs(res.singularValues[1] - 1.5)).toBeLessThan(0.15);
    // Singular gap 1.5 vs noise ~0.04 ⇒ angle error ~0.03 rad.
    for (let i = 0; i < 2; i++) {
      expect(absCos(columnOf(res.x.directions, i), columnOf(qx, i))).toBeGreaterThan(0.99);
      expect(absCos(columnOf(res.y.directions, i), columnOf(qy, i))).toBeGreaterThan(0.99);
    }
    // PLS directions are orthonormal and equal the weights.
    const w = res.x.weights;
    const g = w.transpose().mmul(w);
    expect(g.get(0, 0)).toBeCloseTo(1, 10);
    expect(g.get(0, 1)).toBeCloseTo(0, 10);
    for (let i = 0; i < 6; i++) for (let j = 0; j < 2; j++) expect(res.x.directions.get(i, j)).toBeCloseTo(w.get(i, j), 12);
  });
});

describe('regularised CCA', () => {
  const r = rng(41);
  const n = 80;
  const z = gaussian(r, n, 2);
  const x = z
    .mmul(gaussian(r, 2, 12))
    .add(gaussian(r, n, 12))
    .mmul(Matrix.diag(Array.from({ length: 12 }, (_, i) => 1 + i / 4)));
  const y = z.mmul(gaussian(r, 2, 9)).add(gaussian(r, n, 9).mul(2));

  it('with coefficient 0 matches CCA', () => {
    const a = cca(x, y, { k: 3 });
    const b = rcca(x, y, { k: 3, regularization: 0 });
    for (let i = 0; i < 3; i++) {
      expect(b.singularValues[i]).toBeCloseTo(a.singularValues[i], 12);
      for (let j = 0; j < 12; j++) expect(b.x.weights.get(j, i)).toBeCloseTo(a.x.weights.get(j, i), 10);
    }
  });

  it('with coefficient 1 gives PLS directions', () => {
    const a = pls(x, y, { k: 3 });
    const b = rcca(x, y, { k: 3, regularization: 1 });
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 12; j++) expect(b.x.directions.get(j, i)).toBeCloseTo(a.x.directions.get(j, i), 10);
      for (let j = 0; j < 9; j++) expect(b.y.directions.get(j, i)).toBeCloseTo(a.y.directions.get(j, i), 10);
      // Singular values differ only by the trace scaling 1/√(τx τy).
    }
    const tau = (m: Matrix) => covariance(m).trace() / m.columns;
    expect(b.singularValues[0]).toBeCloseTo(a.singularValues[0] / Math.sqrt(tau(x) * tau(y)), 10);
  });

  it('matches a naive full-dimension computation (n > d, per-modality coefficients)', () => {
    const ours = rcca(x, y, { k: 2, regularization: { x: 0.3, y: 0.05 } });
    const ref = naiveRcca(x, y, 0.3, 0.05, 2);
    for (let i = 0; i < 2; i++) {
      expect(ours.singularValues[i]).toBeCloseTo(ref.sigma[i], 9);
      expect(absCos(columnOf(ours.x.weights, i), columnOf(ref.wx, i))).toBeGreaterThan(1 - 1e-9);
      expect(absCos(columnOf(ours.y.weights, i), columnOf(ref.wy, i))).toBeGreaterThan(1 - 1e-9);
      expect(absCos(columnOf(ours.x.directions, i), columnOf(ref.loadingsX, i))).toBeGreaterThan(1 - 1e-9);
    }
  });

  it('the span computation is exact when n < d', () => {
    // 15 samples in 40 and 30 dimensions: the naive version works with 40 × 40
    // and 30 × 30 regularised covariances; ours with 14 × 14 matrices.
    const r2 = rng(42);
    const zz = gaussian(r2, 15, 1);
    const xs = zz.mmul(gaussian(r2, 1, 40)).add(gaussian(r2, 15, 40));
    const ys = zz.mmul(gaussian(r2, 1, 30)).add(gaussian(r2, 15, 30));
    const ours = rcca(xs, ys, { k: 3, regularization: { x: 0.2, y: 0.6 } });
    const ref = naiveRcca(xs, ys, 0.2, 0.6, 3);
    for (let i = 0; i < 3; i++) {
      expect(ours.singularValues[i]).toBeCloseTo(ref.sigma[i], 9);
      expect(absCos(columnOf(ours.x.weights, i), columnOf(ref.wx, i))).toBeGreaterThan(1 - 1e-8);
      expect(absCos(columnOf(ours.y.weights, i), columnOf(ref.wy, i))).toBeGreaterThan(1 - 1e-8);
    }
    // Weights are normalised so that wᵀ R w = 1.
    const w = Matrix.columnVector(columnOf(ours.x.weights, 0));
    const c = covariance(xs);
    const rx = c
      .clone()
      .mul(0.8)
      .add(Matrix.eye(40).mul((0.2 * c.trace()) / 40));
    expect(w.transpose().mmul(rx).mmul(w).get(0, 0)).toBeCloseTo(1, 9);
  });

  it('validates coefficients', () => {
    expect(() => rcca(x, y, { k: 1, regularization: 1.5 })).toThrow(/\[0, 1\]/);
    expect(() => rcca(x, y, { k: 1, regularization: { x: -0.1, y: 0 } })).toThrow(/\[0, 1\]/);
  });
});

describe('linear CKA', () => {
  it('is 1 for an orthogonally rotated, scaled copy (both evaluation routes)', () => {
    const r = rng(51);
    for (const [n, d] of [
      [200, 10], // feature-space route
      [12, 30], // Gram route (n < d)
    ]) {
      const x = gaussian(r, n, d);
      const y = x.mmul(randomOrthogonal(r, d)).mul(3.7);
      expect(linearCka(x, y)).toBeCloseTo(1, 10);
      // Translation does not matter either (centring).
      expect(linearCka(x, y.clone().add(5))).toBeCloseTo(1, 10);
    }
  });

  it('is small for independent noise', () => {
    // For independent Gaussian X (n × dx), Y (n × dy): ‖Ycᵀ Xc‖² ≈ n² dx dy / n and
    // ‖Xcᵀ Xc‖ ≈ n √(dx (1 + dx/n)), so CKA ≈ √(dx dy)/n ≈ 0.04 here; 0.1 is safe.
    const r = rng(52);
    const v = linearCka(gaussian(r, 500, 20), gaussian(r, 500, 20));
    expect(v).toBeGreaterThan(0);
    expect(v).toBeLessThan(0.1);
  });

  it('agrees between the Gram and feature-space routes', () => {
    const r = rng(53);
    const x = gaussian(r, 30, 25);
    const y = x.mmul(gaussian(r, 25, 20)).add(gaussian(r, 30, 20));
    const xc = x.clone().center('column');
    const yc = y.clone().center('column');
    const fro2 = (m: Matrix) => m.to1DArray().reduce((a, v) => a + v * v, 0);
    const naive = fro2(yc.transpose().mmul(xc)) / Math.sqrt(fro2(xc.transpose().mmul(xc)) * fro2(yc.transpose().mmul(yc)));
    expect(linearCka(x, y)).toBeCloseTo(naive, 12); // n = 30 < dx + dy: Gram route
  });
});
