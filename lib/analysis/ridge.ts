/**
 * Multi-output ridge regression `y ≈ x·B + c` with the ridge strength chosen by k-fold
 * cross-validation. One eigendecomposition of the centred Gram matrix `XᵀX = V Λ Vᵀ` per fold
 * serves every candidate strength: `B(λ) = V diag(1 / (Λ + λ)) Vᵀ XᵀY`.
 *
 * The strengths are relative: λ = `lambda` × mean eigenvalue of XᵀX (trace / d), so one grid
 * fits data of any scale.
 *
 * @module
 */
import { columnMeans, centre, mulAtB, symmetricEigen } from './linalg.js';
import { toPairedRows, type MatrixInput, type Rows } from './matrix-input.js';

export interface RidgeResult {
  /** d_x × d_y coefficients: prediction = x·coefficients + intercept. */
  coefficients: Rows;
  intercept: Float64Array;
  /** The relative strength used. */
  lambda: number;
}

export interface RidgeCvResult extends RidgeResult {
  /** Mean held-out squared error per candidate, in the order of `lambdas`. */
  scores: { lambda: number; mse: number }[];
}

export const DEFAULT_RIDGE_GRID: readonly number[] = [1e-4, 1e-3, 1e-2, 1e-1, 1];

interface GramFit {
  meanX: Float64Array;
  meanY: Float64Array;
  values: Float64Array;
  vectors: Rows;
  /** Vᵀ XᵀY (d_x × d_y). */
  projected: Rows;
  scale: number;
}

function gramFit(x: Rows, y: Rows): GramFit {
  const meanX = columnMeans(x);
  const meanY = columnMeans(y);
  const xc = centre(x, meanX);
  const { values, vectors } = symmetricEigen(mulAtB(xc, xc));
  const xty = mulAtB(xc, centre(y, meanY));
  const projected = mulAtB(vectors, xty);
  const scale = values.reduce((a, v) => a + Math.max(v, 0), 0) / values.length || 1;
  return { meanX, meanY, values, vectors, projected, scale };
}

function solve(f: GramFit, lambda: number): RidgeResult {
  const dx = f.values.length;
  const dy = f.meanY.length;
  const lam = lambda * f.scale;
  const coefficients: Rows = Array.from({ length: dx }, () => new Float64Array(dy));
  for (let k = 0; k < dx; k++) {
    const inv = 1 / (Math.max(f.values[k], 0) + lam);
    const pk = f.projected[k];
    for (let i = 0; i < dx; i++) {
      const v = f.vectors[i][k] * inv;
      if (v === 0) continue;
      const row = coefficients[i];
      for (let j = 0; j < dy; j++) row[j] += v * pk[j];
    }
  }
  const intercept = Float64Array.from(f.meanY);
  for (let i = 0; i < dx; i++) {
    const mx = f.meanX[i];
    const row = coefficients[i];
    for (let j = 0; j < dy; j++) intercept[j] -= mx * row[j];
  }
  return { coefficients, intercept, lambda };
}

/** Ridge regression at one relative strength. */
export function ridge(x: MatrixInput, y: MatrixInput, lambda: number): RidgeResult {
  if (!(lambda > 0)) throw new RangeError('ridge: lambda must be positive');
  const p = toPairedRows(x, y);
  return solve(gramFit(p.x, p.y), lambda);
}

/** Predictions of a ridge fit for the rows of `x`. */
export function ridgePredict(fit: RidgeResult, x: Rows): Rows {
  return x.map((row) => {
    const out = Float64Array.from(fit.intercept);
    for (let i = 0; i < row.length; i++) {
      const v = row[i];
      if (v === 0) continue;
      const c = fit.coefficients[i];
      for (let j = 0; j < out.length; j++) out[j] += v * c[j];
    }
    return out;
  });
}

/**
 * Ridge regression with the strength chosen by k-fold cross-validation (contiguous folds, so
 * neighbouring positions of one text stay together) on held-out mean squared error, then refitted
 * on all rows.
 */
export function ridgeCv(x: MatrixInput, y: MatrixInput, options: { lambdas?: readonly number[]; folds?: number } = {}): RidgeCvResult {
  const p = toPairedRows(x, y);
  const lambdas = options.lambdas ?? DEFAULT_RIDGE_GRID;
  if (lambdas.length === 0 || lambdas.some((l) => !(l > 0))) throw new RangeError('ridgeCv: lambdas must be positive');
  const folds = Math.min(options.folds ?? 4, p.x.length);
  if (folds < 2) throw new RangeError('ridgeCv: need at least 2 rows for 2 folds');
  const n = p.x.length;
  const sse = new Float64Array(lambdas.length);
  for (let f = 0; f < folds; f++) {
    const lo = Math.floor((f * n) / folds);
    const hi = Math.floor(((f + 1) * n) / folds);
    const trainX = [...p.x.slice(0, lo), ...p.x.slice(hi)];
    const trainY = [...p.y.slice(0, lo), ...p.y.slice(hi)];
    const g = gramFit(trainX, trainY);
    lambdas.forEach((lambda, li) => {
      const pred = ridgePredict(solve(g, lambda), p.x.slice(lo, hi));
      for (let r = 0; r < pred.length; r++) {
        const want = p.y[lo + r];
        for (let j = 0; j < want.length; j++) sse[li] += (pred[r][j] - want[j]) ** 2;
      }
    });
  }
  const scores = lambdas.map((lambda, i) => ({ lambda, mse: sse[i] / (n * p.y[0].length) }));
  const best = scores.reduce((a, b) => (b.mse < a.mse ? b : a));
  return { ...solve(gramFit(p.x, p.y), best.lambda), scores };
}
