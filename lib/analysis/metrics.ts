/**
 * Quality metrics for reductions: subspace recovery against known loadings
 * (principal angles) and the SDR paper's held-out "reconstructed correlation"
 * with a shuffled baseline.
 *
 * @module
 */
import { centredSpan, mulAtB, orthonormalColumns, topSvd } from './linalg.js';
import { type MatrixInput, ShapeError, toPairedRows, toRows } from './matrix-input.js';
import { createRng } from './random.js';
import { checkOptionKeys, type KeysOf } from '../util/option-keys.js';

/**
 * Cosines of the principal angles between span(A) and span(B) (`d × ka` and
 * `d × kb`, columns need not be orthonormal), largest first; there are
 * `min(ka, kb)` of them.
 *
 * @throws {@link ShapeError} if the row counts (dimensions) differ
 * @throws Error if either matrix has linearly dependent columns
 */
export function principalAngleCosines(a: MatrixInput, b: MatrixInput): Float64Array {
  const ar = toRows(a, 'A');
  const br = toRows(b, 'B');
  if (ar.length !== br.length) throw new ShapeError(`subspaces live in different dimensions: ${ar.length} vs ${br.length} rows`);
  const qa = orthonormalColumns(ar);
  const qb = orthonormalColumns(br);
  const m = mulAtB(qa, qb);
  const k = Math.min(m.length, m[0].length);
  const out = new Float64Array(k);
  let svd: ReturnType<typeof topSvd> | undefined;
  try {
    svd = topSvd(m, k);
  } catch {
    // Rank of Qaᵀ Qb below k: some angles are exactly 90°. Fall back one at a time.
    for (let i = k; i >= 1; i--) {
      try {
        svd = topSvd(m, i);
        break;
      } catch {
        /* keep shrinking */
      }
    }
  }
  if (svd) for (let i = 0; i < svd.sigma.length; i++) out[i] = Math.min(1, svd.sigma[i]);
  return out;
}

/**
 * Subspace-recovery quality: the mean squared cosine of the principal angles
 * between an estimated subspace and the true one. 1 means identical subspaces;
 * for a uniformly random `ka`-dimensional subspace against a fixed
 * `kb`-dimensional one in `d` dimensions the expected value is
 * `max(ka, kb) / d` (see {@link chanceSubspaceQuality}).
 */
export function subspaceQuality(estimated: MatrixInput, truth: MatrixInput): number {
  const c = principalAngleCosines(estimated, truth);
  let s = 0;
  for (const v of c) s += v * v;
  return s / c.length;
}

/**
 * Expected {@link subspaceQuality} of a uniformly random `ka`-dimensional
 * subspace against a fixed `kb`-dimensional one in `R^d`: `E[Σ cos²θ_i] =
 * tr(P_a P_b) = ka·kb/d` in expectation, averaged over `min(ka, kb)` angles gives
 * `max(ka, kb) / d` (`k/d` when both are `k`-dimensional).
 */
export function chanceSubspaceQuality(d: number, ka: number, kb = ka): number {
  return Math.max(ka, kb) / d;
}

/**
 * Mean squared canonical correlation between two reduced representations
 * `zx` (`n × kx`) and `zy` (`n × ky`) of the same samples: the canonical
 * correlations are the singular values of `Uxᵀ Uy` for orthonormal bases of the
 * centred columns; the mean is over `min(kx, ky)` (missing ones count as 0).
 * It depends only on the two column spans, so any basis of a reduced space
 * gives the same value (PCA components need not be paired with anything).
 */
export function meanSquaredCanonicalCorrelation(zx: MatrixInput, zy: MatrixInput): number {
  const rows = toPairedRows(zx, zy);
  return msccRows(rows.x, rows.y);
}

function msccRows(zx: Float64Array[], zy: Float64Array[]): number {
  const kx = zx[0].length;
  const ky = zy[0].length;
  const sx = centredSpan(zx);
  const sy = centredSpan(zy);
  const denom = Math.min(kx, ky);
  if (sx.rank === 0 || sy.rank === 0) return 0;
  // Σ σ_i² of Uxᵀ Uy is its squared Frobenius norm: no decomposition needed.
  let sumSq = 0;
  for (const row of mulAtB(sx.u, sy.u)) for (const v of row) sumSq += v * v;
  return Math.min(1, sumSq / denom);
}

/** Options for {@link reconstructedCorrelation}. */
export interface ReconstructedCorrelationOptions {
  /** Number of shuffles averaged for the baseline (default 10). */
  shuffles?: number;
  /** Seed for the shuffles (default 0). */
  seed?: number;
  /**
   * The value that counts as full recovery (default 1). With known ground truth,
   * pass the raw statistic of the true shared subspaces on the same held-out data
   * (the "oracle").
   */
  reference?: number;
}

/** Output of {@link reconstructedCorrelation}. */
export interface ReconstructedCorrelation {
  /** Mean squared canonical correlation of the held-out reduced pair. */
  raw: number;
  /** The same statistic with the rows of `zy` shuffled (mean over shuffles). */
  baseline: number;
  /** The reference used for rescaling. */
  reference: number;
  /** `(raw − baseline) / (reference − baseline)`, clamped to `[0, 1]`. */
  score: number;
}

/**
 * The SDR paper's "reconstructed correlation" on held-out data: how much
 * correlation the reduced X and reduced Y still share, above what sampling noise
 * alone produces, rescaled to `[0, 1]`.
 *
 * `zx`, `zy` are held-out samples already reduced by a method fitted on training
 * data. The statistic is {@link meanSquaredCanonicalCorrelation}; the baseline
 * is the same statistic after shuffling the rows of `zy` (breaking the pairing,
 * so it measures the chance level for this `n` and `k`); the score is
 * `(raw − baseline) / (reference − baseline)` clamped to `[0, 1]`, 0 meaning "no
 * more shared correlation than unrelated data" and 1 "as much as the reference".
 */
export function reconstructedCorrelation(zx: MatrixInput, zy: MatrixInput, options: ReconstructedCorrelationOptions = {}): ReconstructedCorrelation {
  checkOptionKeys('reconstructedCorrelation options', options, {
    shuffles: true,
    seed: true,
    reference: true,
  } as const satisfies KeysOf<ReconstructedCorrelationOptions>);
  const rows = toPairedRows(zx, zy, 3);
  const shuffles = options.shuffles ?? 10;
  if (!Number.isInteger(shuffles) || shuffles < 1) throw new ShapeError(`shuffles must be a positive integer, got ${shuffles}`);
  const raw = msccRows(rows.x, rows.y);
  const rng = createRng(options.seed ?? 0);
  let base = 0;
  for (let s = 0; s < shuffles; s++) {
    const perm = rng.permutation(rows.y.length);
    base += msccRows(
      rows.x,
      perm.map((i) => rows.y[i]),
    );
  }
  const baseline = base / shuffles;
  const reference = options.reference ?? 1;
  const span = reference - baseline;
  const score = span > 0 ? Math.max(0, Math.min(1, (raw - baseline) / span)) : 0;
  return { raw, baseline, reference, score };
}
