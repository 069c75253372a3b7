/**
 * Principal component analysis of one modality (the "independent dimensionality
 * reduction" baseline of the SDR paper).
 *
 * @module
 */
import type { Matrix } from 'ml-matrix';
import { centredSpan, fixSigns, zeros } from './linalg.js';
import { checkComponents, type MatrixInput, ShapeError, toRows } from './matrix-input.js';
import { type LinearProjection, makeProjection } from './projection.js';
import { checkOptionKeys, type KeysOf } from '../util/option-keys.js';

/** Options for {@link pca}. */
export interface PcaOptions {
  /** Number of components to keep. */
  k: number;
}

/** Result of {@link pca}. */
export interface PcaResult {
  /** The fitted projection; `directions` are the top-`k` unit eigenvectors of the covariance. */
  projection: LinearProjection;
  /** Variances along the kept directions: the top-`k` eigenvalues of the sample covariance (divisor `n − 1`). */
  variances: Float64Array;
  /** `variances` divided by the total variance (trace of the covariance). */
  explainedVarianceRatio: Float64Array;
  /** Total variance (trace of the sample covariance). */
  totalVariance: number;
  /** Project new data (same as `projection.transform`). */
  transform(data: MatrixInput): Matrix;
}

/**
 * PCA: the top-`k` eigenvectors of the sample covariance.
 *
 * Computed from a thin SVD of the centred data (via the `n × n` Gram matrix
 * when `n ≤ d`), so it costs `O(n · d · min(n, d))`. Each direction is signed so
 * that its largest-magnitude entry is positive.
 *
 * @throws {@link ShapeError} if fewer than 2 samples are given or `k` exceeds the
 *   data's numerical rank (at most `min(n − 1, d)`)
 */
export function pca(data: MatrixInput, options: PcaOptions): PcaResult {
  checkOptionKeys('pca options', options, { k: true } as const satisfies KeysOf<PcaOptions>);
  const rows = toRows(data, 'X');
  if (rows.length < 2) throw new ShapeError(`PCA needs at least 2 samples, got ${rows.length}`);
  const span = centredSpan(rows);
  checkComponents(options.k, span.rank, `numerical rank of the centred data, at most min(n - 1, d) = ${Math.min(rows.length - 1, span.d)}`);
  const k = options.k;
  const w = zeros(span.d, k);
  for (let i = 0; i < span.d; i++) for (let j = 0; j < k; j++) w[i][j] = span.v[i][j];
  fixSigns(w);
  const variances = new Float64Array(k);
  for (let j = 0; j < k; j++) variances[j] = (span.s[j] * span.s[j]) / (span.n - 1);
  const explainedVarianceRatio = variances.map((v) => (span.totalVariance > 0 ? v / span.totalVariance : 0));
  const projection = makeProjection(span.mean, w, 'X');
  return {
    projection,
    variances,
    explainedVarianceRatio,
    totalVariance: span.totalVariance,
    transform: (d) => projection.transform(d),
  };
}
