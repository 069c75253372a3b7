/**
 * Shared core of the simultaneous (two-view) reductions: PLS, CCA and
 * regularised CCA, all computed in the span of the centred data.
 *
 * ## Method
 * With centred data `Xc = Ux Sx Vxᵀ` (thin SVD, rank `rx`) and likewise for Y,
 * the covariances are `Cx = Vx Λx Vxᵀ` with `Λx = Sx² / (n − 1)`, and the
 * cross-covariance is `Cxy = Vx Sx (Uxᵀ Uy) Sy Vyᵀ / (n − 1)`.
 *
 * Regularised CCA shrinks each covariance toward a multiple of the identity,
 * `Rx = (1 − cx) Cx + cx τx I` with `τx = tr(Cx) / dx` (the average per-feature
 * variance; scaling the target by it makes the coefficient dimensionless and the
 * method invariant to rescaling a modality). `cx = 0` is CCA; `cx = 1` turns `Rx`
 * into `τx I`, whose whitening is a scalar, so the directions become PLS's.
 *
 * `Rx` acts as `Dx = (1 − cx) Λx + cx τx` on span(Vx) and as `cx τx` on its
 * orthogonal complement, so `Rx^{-1/2} Cxy Ry^{-1/2} = Vx K Vyᵀ` with the small
 * `rx × ry` matrix
 *
 *     K = Dx^{-1/2} Sx (Uxᵀ Uy) Sy Dy^{-1/2} / (n − 1).
 *
 * The complement never contributes (`Cxy` maps into and out of the spans only),
 * so with `K = P Σ Qᵀ` the canonical weights are exactly `Wx = Vx Dx^{-1/2} P`
 * (and `Wy = Vy Dy^{-1/2} Q`), normalised by `Wxᵀ Rx Wx = I`. This is exact, not
 * an approximation, and costs `O(n · d · min(n, d))` for the thin SVDs plus
 * `O(r³)` for `K`: governed by `n` when `n < d`. It requires `Dx` invertible:
 * `cx > 0`, or `cx = 0` with full-rank data (`rx = dx`, which needs `n > dx`).
 *
 * The reported directions (loadings) are `Rx Wx = Vx Dx^{1/2} P`, normalised:
 * the covariance (under the regularised `Rx`) between the features and each
 * unit-variance canonical variate, i.e. the feature-space pattern a component
 * stands for. For PLS this is the weight vector itself; for CCA it is the
 * classical structure (covariance) loading. In the SDR generative model
 * `x = A s + B z + noise`, with `k` equal to the number of shared signals, the
 * population rCCA weights span `Rx^{-1} B` for every coefficient, so the
 * loadings span `B` itself: this is what subspace recovery against the true
 * shared loadings should compare.
 *
 * Plain CCA on rank-deficient data (in particular whenever `n ≤ d`) is refused
 * with a {@link SingularCovarianceError}: the covariance is singular, every
 * direction in its null space gives a perfect in-sample correlation of 1, and the
 * solution is arbitrary. Use regularised CCA there.
 *
 * @module
 */
import type { Matrix } from 'ml-matrix';
import { type CentredSpan, centredSpan, fixSigns, mulAtB, topSvd, zeros } from './linalg.js';
import { checkComponents, type MatrixInput, type Rows, ShapeError } from './matrix-input.js';
import { type LinearProjection, makeProjection } from './projection.js';

/** Which simultaneous reduction produced a {@link TwoViewResult}. */
export type TwoViewMethod = 'pls' | 'cca' | 'rcca';

/** Thrown by plain CCA when a covariance matrix is singular (e.g. `n ≤ d`). */
export class SingularCovarianceError extends Error {
  /** Which modality is rank-deficient. */
  readonly modality: 'X' | 'Y';
  /** Number of samples. */
  readonly samples: number;
  /** Dimension of the modality. */
  readonly dimension: number;
  /** Numerical rank of the centred data. */
  readonly rank: number;
  constructor(modality: 'X' | 'Y', samples: number, dimension: number, rank: number) {
    const why =
      samples <= dimension
        ? `n = ${samples} samples <= d = ${dimension} dimensions, so the centred data has rank at most n - 1 = ${samples - 1}`
        : `the centred data has numerical rank ${rank} < d = ${dimension}`;
    super(
      `CCA is undefined: the ${modality} covariance is singular (${why}); ` +
        'every direction in its null space has in-sample canonical correlation 1. Use rcca() with a coefficient > 0.',
    );
    this.name = 'SingularCovarianceError';
    this.modality = modality;
    this.samples = samples;
    this.dimension = dimension;
    this.rank = rank;
  }
}

/** Result of {@link pls}, {@link cca}, {@link rcca} and {@link rccaCv}. */
export interface TwoViewResult {
  /** The method. */
  method: TwoViewMethod;
  /** Number of component pairs. */
  k: number;
  /** Projection of the X modality. */
  x: LinearProjection;
  /** Projection of the Y modality. */
  y: LinearProjection;
  /**
   * Singular values (descending) of the matrix whose singular vectors give the
   * directions: PLS, the cross-covariance `Cxy`; CCA, `Cx^{-1/2} Cxy Cy^{-1/2}`
   * (the canonical correlations); rCCA, `Rx^{-1/2} Cxy Ry^{-1/2}`.
   */
  singularValues: Float64Array;
  /**
   * In-sample Pearson correlation between each pair of projections (paired
   * columns of `x.transform(X)` and `y.transform(Y)`); equals `singularValues`
   * for CCA.
   */
  correlations: Float64Array;
  /** Shrinkage coefficients used (`{x: 1, y: 1}` for PLS, `{x: 0, y: 0}` for CCA). */
  regularization: { x: number; y: number };
  /** Project new paired data. */
  transform(x: MatrixInput, y: MatrixInput): { x: Matrix; y: Matrix };
}

/** Both modalities' spans plus the cross term `Uxᵀ Uy` (everything rCCA needs for any coefficients). */
export interface SpanPair {
  sx: CentredSpan;
  sy: CentredSpan;
  /** `Uxᵀ Uy` (`rx × ry`). */
  cross: Rows;
}

/** Compute a {@link SpanPair} from paired, validated rows. */
export function spanPair(x: Rows, y: Rows): SpanPair {
  const sx = centredSpan(x);
  const sy = centredSpan(y);
  if (sx.rank === 0) throw new ShapeError('X is constant (zero variance in every column)');
  if (sy.rank === 0) throw new ShapeError('Y is constant (zero variance in every column)');
  return { sx, sy, cross: mulAtB(sx.u, sy.u) };
}

/** Raw fit on a {@link SpanPair}: weight rows and spectra. */
export interface SpanFit {
  /** Weights (`dx × k`), `Wxᵀ Rx Wx = I` (unit-norm for PLS). */
  wx: Rows;
  wy: Rows;
  /** Loadings `Rx Wx` (`dx × k`; equal to `wx` for PLS). */
  lx: Rows;
  ly: Rows;
  singularValues: Float64Array;
  correlations: Float64Array;
}

/** Validate a shrinkage coefficient. */
export function checkCoefficient(c: number, name: string): void {
  if (!(c >= 0 && c <= 1)) throw new ShapeError(`regularization coefficient ${name} must be in [0, 1], got ${c}`);
}

/**
 * Fit PLS (`method: 'pls'`) or (regularised) CCA with coefficients `cx`, `cy`
 * on precomputed spans. See the module comment for the derivation.
 *
 * @throws {@link SingularCovarianceError} when a coefficient is 0 and that
 *   modality's covariance is singular
 */
export function fitOnSpans(pair: SpanPair, k: number, method: 'pls' | 'rcca', cx: number, cy: number): SpanFit {
  const { sx, sy, cross } = pair;
  checkComponents(k, Math.min(sx.rank, sy.rank), `min(rank X, rank Y) = min(${sx.rank}, ${sy.rank}) after centring`);
  const n = sx.n;
  const dxEff = method === 'pls' ? unitSpectrum(sx) : shrunkSpectrum(sx, cx, 'X');
  const dyEff = method === 'pls' ? unitSpectrum(sy) : shrunkSpectrum(sy, cy, 'Y');
  // K = D^{-1/2} S (Uxᵀ Uy) S D^{-1/2} / (n − 1); for PLS D ≡ 1 so K = Vxᵀ Cxy Vy.
  const fx = new Float64Array(sx.rank);
  const fy = new Float64Array(sy.rank);
  for (let i = 0; i < sx.rank; i++) fx[i] = sx.s[i] / Math.sqrt(dxEff[i]);
  for (let j = 0; j < sy.rank; j++) fy[j] = sy.s[j] / Math.sqrt(dyEff[j]);
  const kMat = zeros(sx.rank, sy.rank);
  for (let i = 0; i < sx.rank; i++) {
    const ci = cross[i];
    const ki = kMat[i];
    for (let j = 0; j < sy.rank; j++) ki[j] = (fx[i] * ci[j] * fy[j]) / (n - 1);
  }
  const svd = topSvd(kMat, k);
  const wx = spanMap(sx, dxEff, -0.5, svd.p, k);
  const wy = spanMap(sy, dyEff, -0.5, svd.q, k);
  // Loadings R·W = V D^{1/2} P (R acts as D on the span; W lies in the span).
  const lx = spanMap(sx, dxEff, 0.5, svd.p, k);
  const ly = spanMap(sy, dyEff, 0.5, svd.q, k);
  // Sign convention on the reported directions (the loadings): largest-magnitude
  // entry positive; the same flips go to the weights and the paired Y columns.
  fixSigns(lx, [wx, wy, ly]);
  // Projected variances: Σ_j Λ_j / D_j · P_ji² (the cross-covariance of pair i is σ_i).
  const correlations = new Float64Array(k);
  for (let i = 0; i < k; i++) {
    const vx = projectedVariance(sx, dxEff, svd.p, i);
    const vy = projectedVariance(sy, dyEff, svd.q, i);
    correlations[i] = vx > 0 && vy > 0 ? Math.min(1, svd.sigma[i] / Math.sqrt(vx * vy)) : 0;
  }
  return { wx, wy, lx, ly, singularValues: svd.sigma, correlations };
}

/** PLS: no whitening (`D ≡ 1`), so `K = Vxᵀ Cxy Vy` and the weights are unit-norm. */
function unitSpectrum(span: CentredSpan): Float64Array {
  return new Float64Array(span.rank).fill(1);
}

/** `D = (1 − c) Λ + c τ` on the span, with `τ = tr(C) / d`. */
function shrunkSpectrum(span: CentredSpan, c: number, modality: 'X' | 'Y'): Float64Array {
  checkCoefficient(c, modality === 'X' ? 'cx' : 'cy');
  const out = new Float64Array(span.rank);
  if (c === 0 && span.rank < span.d) throw new SingularCovarianceError(modality, span.n, span.d, span.rank);
  const tau = span.totalVariance / span.d;
  for (let i = 0; i < span.rank; i++) out[i] = (1 - c) * ((span.s[i] * span.s[i]) / (span.n - 1)) + c * tau;
  return out;
}

/** `V D^power P[:, :k]` (`d × k`): weights for `power = −1/2`, loadings for `+1/2`. */
function spanMap(span: CentredSpan, dEff: Float64Array, power: number, p: Rows, k: number): Rows {
  const scaled = zeros(span.rank, k);
  for (let i = 0; i < span.rank; i++) {
    const f = dEff[i] ** power;
    for (let j = 0; j < k; j++) scaled[i][j] = p[i][j] * f;
  }
  const w = zeros(span.d, k);
  for (let a = 0; a < span.d; a++) {
    const va = span.v[a];
    const wa = w[a];
    for (let i = 0; i < span.rank; i++) {
      const v = va[i];
      if (v === 0) continue;
      const si = scaled[i];
      for (let j = 0; j < k; j++) wa[j] += v * si[j];
    }
  }
  return w;
}

function projectedVariance(span: CentredSpan, dEff: Float64Array, p: Rows, col: number): number {
  let s = 0;
  for (let i = 0; i < span.rank; i++) {
    const lambda = (span.s[i] * span.s[i]) / (span.n - 1);
    s += (lambda / dEff[i]) * p[i][col] * p[i][col];
  }
  return s;
}

/** Wrap a {@link SpanFit} into a public {@link TwoViewResult}. */
export function twoViewResult(method: TwoViewMethod, pair: SpanPair, fit: SpanFit, regularization: { x: number; y: number }): TwoViewResult {
  const x = makeProjection(pair.sx.mean, fit.wx, 'X', fit.lx);
  const y = makeProjection(pair.sy.mean, fit.wy, 'Y', fit.ly);
  return {
    method,
    k: fit.wx[0].length,
    x,
    y,
    singularValues: fit.singularValues,
    correlations: fit.correlations,
    regularization,
    transform: (xs, ys) => ({ x: x.transform(xs), y: y.transform(ys) }),
  };
}
