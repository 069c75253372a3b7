/**
 * Partial least squares in its SVD form (PLS-SVD): the top singular vectors of
 * the cross-covariance `Cxy`.
 *
 * @module
 */
import { type MatrixInput, toPairedRows } from './matrix-input.js';
import { fitOnSpans, spanPair, type TwoViewResult, twoViewResult } from './two-view.js';
import { checkOptionKeys, type KeysOf } from '../util/option-keys.js';

/** Options for {@link pls}. */
export interface PlsOptions {
  /** Number of direction pairs to keep. */
  k: number;
}

/**
 * PLS-SVD: directions `wx_i`, `wy_i` (unit norm) are the top-`k` left/right
 * singular vectors of the sample cross-covariance `Cxy = Xcᵀ Yc / (n − 1)`;
 * `singularValues` are its singular values (the covariances of the paired
 * projections). Computed in the span of the data (see `two-view.ts`), so the
 * `dx × dy` cross-covariance is never formed.
 *
 * Sign convention: each X direction's largest-magnitude entry is positive; the
 * paired Y direction is flipped with it (paired covariances stay positive).
 *
 * @throws {@link ShapeError} on mismatched or too few rows, or `k` above
 *   `min(rank X, rank Y)`
 */
export function pls(x: MatrixInput, y: MatrixInput, options: PlsOptions): TwoViewResult {
  checkOptionKeys('pls options', options, { k: true } as const satisfies KeysOf<PlsOptions>);
  const rows = toPairedRows(x, y);
  const pair = spanPair(rows.x, rows.y);
  return twoViewResult('pls', pair, fitOnSpans(pair, options.k, 'pls', 1, 1), { x: 1, y: 1 });
}
