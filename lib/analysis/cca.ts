/**
 * Canonical correlation analysis and regularised CCA (covariances shrunk toward
 * a multiple of the identity).
 *
 * @module
 */
import { type MatrixInput, ShapeError, toPairedRows } from './matrix-input.js';
import { checkCoefficient, fitOnSpans, spanPair, type TwoViewResult, twoViewResult } from './two-view.js';
import { checkOptionKeys, type KeysOf } from '../util/option-keys.js';

/** Options for {@link cca}. */
export interface CcaOptions {
  /** Number of canonical pairs to keep. */
  k: number;
}

/**
 * Shrinkage coefficients: one number for both modalities, or one per modality.
 * Each must lie in `[0, 1]`.
 */
export type Regularization = number | { x: number; y: number };

/** Options for {@link rcca}. */
export interface RccaOptions {
  /** Number of canonical pairs to keep. */
  k: number;
  /**
   * Shrinkage coefficient(s) `c`: `R = (1 − c) C + c (tr(C)/d) I`.
   * 0 is plain CCA (requires non-singular covariances), 1 gives PLS's directions.
   */
  regularization: Regularization;
}

/**
 * Plain CCA: top-`k` singular vectors of `Cx^{-1/2} Cxy Cy^{-1/2}` mapped back
 * to canonical weights (`weights` give unit-variance projections on the
 * training data; `correlations` = `singularValues` are the canonical
 * correlations).
 *
 * Refuses singular covariances: whenever `n ≤ max(dx, dy)` — or the data are
 * otherwise rank-deficient — it throws {@link SingularCovarianceError} rather
 * than returning a degenerate solution with correlations of 1.
 *
 * @throws {@link SingularCovarianceError} if either covariance is singular
 * @throws {@link ShapeError} on bad shapes or `k` too large
 */
export function cca(x: MatrixInput, y: MatrixInput, options: CcaOptions): TwoViewResult {
  checkOptionKeys('cca options', options, { k: true } as const satisfies KeysOf<CcaOptions>);
  const rows = toPairedRows(x, y);
  const pair = spanPair(rows.x, rows.y);
  return twoViewResult('cca', pair, fitOnSpans(pair, options.k, 'rcca', 0, 0), { x: 0, y: 0 });
}

/** Normalise a {@link Regularization} to a pair, validating the range. */
export function regularizationPair(reg: Regularization): { x: number; y: number } {
  const pair = typeof reg === 'number' ? { x: reg, y: reg } : reg;
  if (pair == null || typeof pair.x !== 'number' || typeof pair.y !== 'number') {
    throw new ShapeError('regularization must be a number or {x, y}');
  }
  checkCoefficient(pair.x, 'x');
  checkCoefficient(pair.y, 'y');
  return { x: pair.x, y: pair.y };
}

/**
 * Regularised CCA with covariances `Rx = (1 − cx) Cx + cx τx I`, `τx = tr(Cx)/dx`
 * (likewise for Y). The target is scaled by the average per-feature variance so
 * that `c` is dimensionless and the result does not depend on the units of each
 * modality.
 *
 * Works for any `n` — including `n ≪ d` — as long as every coefficient that is
 * 0 belongs to a modality with a non-singular covariance. Computed exactly in
 * the span of the centred data (see `two-view.ts`): cost `O(n·d·min(n,d))`.
 *
 * `weights` satisfy `Wᵀ R W = I` (unit regularised variance); `singularValues`
 * are the regularised canonical correlations (the singular values of
 * `Rx^{-1/2} Cxy Ry^{-1/2}`, ≤ the true ones); `correlations` are the plain
 * in-sample correlations of the paired projections.
 */
export function rcca(x: MatrixInput, y: MatrixInput, options: RccaOptions): TwoViewResult {
  checkOptionKeys('rcca options', options, { k: true, regularization: true } as const satisfies KeysOf<RccaOptions>);
  const reg = regularizationPair(options.regularization);
  const rows = toPairedRows(x, y);
  const pair = spanPair(rows.x, rows.y);
  return twoViewResult('rcca', pair, fitOnSpans(pair, options.k, 'rcca', reg.x, reg.y), reg);
}
