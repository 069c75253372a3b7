/**
 * Multi-output ridge regression `y ≈ x·B + c` with the ridge strength chosen by k-fold
 * cross-validation. One eigendecomposition per fold serves every candidate strength; with fewer
 * samples than dimensions it is the n × n kernel's (the span of the data), not the d × d Gram's.
 *
 * The strengths are relative: λ = `lambda` × mean eigenvalue of XᵀX (trace / d), so one grid
 * fits data of any scale.
 *
 * @module
 */
import { columnMeans, centre, mul, mulABt, mulAtB, symmetricEigen } from './linalg.js';
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

/**
 * One eigendecomposition that serves every strength. Primal (n ≥ d): XᵀX = V Λ Vᵀ and
 * B(λ) = V diag(1/(Λ+λ)) Vᵀ XᵀY. Dual (n < d, the span of the data): XXᵀ = U S Uᵀ and
 * B(λ) = Xᵀ U diag(1/(S+λ)) UᵀY, the same solution at the cost of an n × n problem.
 */
interface GramFit {
  meanX: Float64Array;
  meanY: Float64Array;
  values: Float64Array;
  vectors: Rows;
  /** Primal: Vᵀ XᵀY (d_x × d_y). Dual: UᵀY (n × d_y). */
  projected: Rows;
  /** Dual only: the centred rows of X. */
  xc: Rows | null;
  /** λ unit: the mean eigenvalue of XᵀX (trace / d_x). */
  scale: number;
}

function gramFit(x: Rows, y: Rows): GramFit {
  const meanX = columnMeans(x);
  const meanY = columnMeans(y);
  const xc = centre(x, meanX);
  const yc = centre(y, meanY);
  const dual = x.length < meanX.length;
  const { values, vectors } = symmetricEigen(dual ? mulABt(xc, xc) : mulAtB(xc, xc));
  const projected = mulAtB(vectors, dual ? yc : mulAtB(xc, yc));
  const scale = values.reduce((a, v) => a + Math.max(v, 0), 0) / meanX.length || 1;
  return { meanX, meanY, values, vectors, projected, xc: dual ? xc : null, scale };
}

/** diag(1/(values + λ)) applied to the rows of `projected`, then the eigenvectors: V diag(·) P. */
function shrink(f: GramFit, lambda: number): Rows {
  const lam = lambda * f.scale;
  const scaled = f.projected.map((row, k) => {
    const inv = 1 / (Math.max(f.values[k], 0) + lam);
    return row.map((v) => v * inv);
  });
  return mul(f.vectors, scaled);
}

function solve(f: GramFit, lambda: number): RidgeResult {
  const inner = shrink(f, lambda);
  const coefficients = f.xc ? mulAtB(f.xc, inner) : inner;
  const dx = f.meanX.length;
  const dy = f.meanY.length;
  const intercept = Float64Array.from(f.meanY);
  for (let i = 0; i < dx; i++) {
    const mx = f.meanX[i];
    const row = coefficients[i];
    for (let j = 0; j < dy; j++) intercept[j] -= mx * row[j];
  }
  return { coefficients, intercept, lambda };
}

/** Held-out squared error of every strength; the dual form predicts through the kernel (no d_x × d_y solve). */
function foldErrors(f: GramFit, xTest: Rows, yTest: Rows, lambdas: readonly number[]): number[] {
  const kernel = f.xc ? mulABt(centre(xTest, f.meanX), f.xc) : null;
  return lambdas.map((lambda) => {
    let pred: Rows;
    if (kernel) {
      pred = mul(kernel, shrink(f, lambda)).map((row) => row.map((v, j) => v + f.meanY[j]));
    } else {
      pred = ridgePredict(solve(f, lambda), xTest);
    }
    let sse = 0;
    for (let r = 0; r < pred.length; r++) for (let j = 0; j < pred[r].length; j++) sse += (pred[r][j] - yTest[r][j]) ** 2;
    return sse;
  });
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
    const errors = foldErrors(gramFit(trainX, trainY), p.x.slice(lo, hi), p.y.slice(lo, hi), lambdas);
    errors.forEach((e, li) => (sse[li] += e));
  }
  const scores = lambdas.map((lambda, i) => ({ lambda, mse: sse[i] / (n * p.y[0].length) }));
  const best = scores.reduce((a, b) => (b.mse < a.mse ? b : a));
  return { ...solve(gramFit(p.x, p.y), best.lambda), scores };
}
