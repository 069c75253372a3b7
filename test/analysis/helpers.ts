/**
 * Test helpers for the analysis module: seeded random matrices and naive
 * full-dimension reference implementations (dense `d × d` algebra via ml-matrix)
 * to check the span-based code against.
 */
import { EigenvalueDecomposition, Matrix, SingularValueDecomposition } from 'ml-matrix';
import { createRng, type Rng } from '../../lib/analysis/index.js';

export function gaussian(rng: Rng, rows: number, cols: number): Matrix {
  const m = new Matrix(rows, cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) m.set(i, j, rng.normal());
  return m;
}

/** Random orthogonal matrix (QR of a Gaussian matrix, via the symmetric polar factor). */
export function randomOrthogonal(rng: Rng, d: number): Matrix {
  const g = gaussian(rng, d, d);
  const svd = new SingularValueDecomposition(g);
  return svd.leftSingularVectors.mmul(svd.rightSingularVectors.transpose());
}

export function columnOf(m: Matrix, j: number): number[] {
  return m.getColumn(j);
}

export function absCos(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return Math.abs(ab) / Math.sqrt(aa * bb);
}

export function centred(m: Matrix): Matrix {
  return m.clone().center('column');
}

export function covariance(a: Matrix, b: Matrix = a): Matrix {
  return centred(a)
    .transpose()
    .mmul(centred(b))
    .div(a.rows - 1);
}

/** Symmetric matrix power via eigendecomposition (eigenvalues clamped at 0 for p > 0). */
export function symPower(s: Matrix, p: number): Matrix {
  const evd = new EigenvalueDecomposition(s, { assumeSymmetric: true });
  const v = evd.eigenvectorMatrix;
  const vals = evd.realEigenvalues.map((l) => Math.max(l, 0) ** p);
  return v.mmul(Matrix.diag(vals)).mmul(v.transpose());
}

/**
 * Naive regularised CCA in full dimension: `R = (1 − c) C + c (tr C / d) I`,
 * SVD of `Rx^{-1/2} Cxy Ry^{-1/2}`, weights `R^{-1/2} p`.
 */
export function naiveRcca(x: Matrix, y: Matrix, cx: number, cy: number, k: number) {
  const reg = (c: Matrix, coef: number) => {
    const tau = c.trace() / c.rows;
    return c
      .clone()
      .mul(1 - coef)
      .add(Matrix.eye(c.rows).mul(coef * tau));
  };
  const rx = reg(covariance(x), cx);
  const ry = reg(covariance(y), cy);
  const rxih = symPower(rx, -0.5);
  const ryih = symPower(ry, -0.5);
  const m = rxih.mmul(covariance(x, y)).mmul(ryih);
  const svd = new SingularValueDecomposition(m, { autoTranspose: true });
  const sigma = svd.diagonal.slice(0, k);
  const wx = rxih.mmul(svd.leftSingularVectors.subMatrix(0, m.rows - 1, 0, k - 1));
  const wy = ryih.mmul(svd.rightSingularVectors.subMatrix(0, m.columns - 1, 0, k - 1));
  return { sigma, wx, wy, loadingsX: rx.mmul(wx), loadingsY: ry.mmul(wy) };
}

/** A seeded source for tests. */
export function rng(seed: number): Rng {
  return createRng(seed);
}
