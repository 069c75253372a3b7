/**
 * Cross-validated choice of the regularised-CCA shrinkage coefficient(s).
 *
 * @module
 */
import { pearson, column } from './linalg.js';
import { type MatrixInput, type Rows, ShapeError, toPairedRows } from './matrix-input.js';
import { projectRows } from './projection.js';
import { createRng } from './random.js';
import { fitOnSpans, SingularCovarianceError, spanPair, type TwoViewResult, twoViewResult } from './two-view.js';
import { checkOptionKeys, type KeysOf } from '../util/option-keys.js';

/** Default coefficient grid: plain CCA, light to heavy shrinkage, PLS. */
export const DEFAULT_RCCA_GRID: readonly number[] = [0, 1e-4, 1e-3, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1];

/** Options for {@link crossValidateRegularization} and {@link rccaCv}. */
export interface RccaCvOptions {
  /** Number of canonical pairs. */
  k: number;
  /**
   * Number of folds (default 5). Reduced to `floor(n / 3)` when the data are too
   * few for 3 held-out samples per fold; at least 2 folds are required.
   */
  folds?: number;
  /** Candidate coefficients in `[0, 1]` (default {@link DEFAULT_RCCA_GRID}). */
  grid?: readonly number[];
  /**
   * `false` (default): one coefficient shared by both modalities (`|grid|` fits
   * per fold). `true`: every pair `(cx, cy)` from the grid (`|grid|²` fits).
   */
  perModality?: boolean;
  /** Seed of the shuffle that assigns samples to folds (default 0). */
  seed?: number;
}

/** Held-out score of one candidate. */
export interface RccaCvScore {
  /** X coefficient. */
  x: number;
  /** Y coefficient. */
  y: number;
  /**
   * Mean over folds of the mean over the `k` pairs of the held-out Pearson
   * correlation between paired projections; `NaN` when the candidate was
   * infeasible (a zero coefficient on a singular training covariance).
   */
  score: number;
  /** Per-fold scores. */
  foldScores: number[];
}

/** Outcome of {@link crossValidateRegularization}. */
export interface RccaCvSummary {
  /** Chosen coefficients. */
  best: { x: number; y: number };
  /** Its held-out score. */
  bestScore: number;
  /** Every candidate's score, in grid order. */
  scores: RccaCvScore[];
  /** Number of folds actually used. */
  folds: number;
}

/** An rCCA fit on all the data with cross-validated coefficients. */
export interface RccaCvResult extends TwoViewResult {
  /** How the coefficients were chosen. */
  crossValidation: RccaCvSummary;
}

/**
 * K-fold cross-validation of the shrinkage coefficients: for each fold, fit rCCA
 * on the other folds and score the held-out canonical correlation (mean over
 * the `k` pairs of the Pearson correlation between paired held-out
 * projections); average over folds and keep the best candidate. Ties (within
 * 1e-12) go to the larger total shrinkage, the more stable choice.
 *
 * The thin SVDs of each training split are computed once per fold and reused
 * for every candidate, so a candidate costs only an `r × r` eigenproblem.
 * Candidates with a 0 coefficient on a modality whose training covariance is
 * singular (e.g. `n < d`) are infeasible and skipped (score `NaN`).
 *
 * @throws {@link ShapeError} if there are too few samples for 2 folds of 3, or
 *   every candidate is infeasible
 */
export function crossValidateRegularization(x: MatrixInput, y: MatrixInput, options: RccaCvOptions): RccaCvSummary {
  const rows = toPairedRows(x, y);
  return crossValidateRows(rows.x, rows.y, options);
}

const RCCA_CV_KEYS = { k: true, folds: true, grid: true, perModality: true, seed: true } as const satisfies KeysOf<RccaCvOptions>;

function crossValidateRows(xr: Rows, yr: Rows, options: RccaCvOptions): RccaCvSummary {
  checkOptionKeys('rccaCv options', options, RCCA_CV_KEYS);
  const n = xr.length;
  const k = options.k;
  const grid = options.grid ?? DEFAULT_RCCA_GRID;
  if (grid.length === 0) throw new ShapeError('rCCA cross-validation: empty coefficient grid');
  for (const c of grid) if (!(c >= 0 && c <= 1)) throw new ShapeError(`rCCA grid value ${c} is outside [0, 1]`);
  const folds = Math.min(options.folds ?? 5, Math.floor(n / 3));
  if (!Number.isInteger(folds) || folds < 2) {
    throw new ShapeError(`rCCA cross-validation needs at least 2 folds of 3 samples: got n = ${n}, folds = ${options.folds ?? 5}`);
  }
  const candidates: { x: number; y: number }[] = [];
  if (options.perModality) {
    for (const cx of grid) for (const cy of grid) candidates.push({ x: cx, y: cy });
  } else {
    for (const c of grid) candidates.push({ x: c, y: c });
  }
  const perm = createRng(options.seed ?? 0).permutation(n);
  const foldOf = new Int32Array(n);
  perm.forEach((sample, pos) => {
    foldOf[sample] = Math.floor((pos * folds) / n);
  });
  const foldScores: number[][] = candidates.map(() => []);
  for (let f = 0; f < folds; f++) {
    const trX: Rows = [];
    const trY: Rows = [];
    const teX: Rows = [];
    const teY: Rows = [];
    for (let i = 0; i < n; i++) {
      if (foldOf[i] === f) {
        teX.push(xr[i]);
        teY.push(yr[i]);
      } else {
        trX.push(xr[i]);
        trY.push(yr[i]);
      }
    }
    const pair = spanPair(trX, trY);
    candidates.forEach((cand, ci) => {
      let fit: ReturnType<typeof fitOnSpans>;
      try {
        fit = fitOnSpans(pair, k, 'rcca', cand.x, cand.y);
      } catch (e) {
        if (e instanceof SingularCovarianceError) {
          foldScores[ci].push(Number.NaN);
          return;
        }
        throw e;
      }
      const px = projectRows(teX, pair.sx.mean, fit.wx);
      const py = projectRows(teY, pair.sy.mean, fit.wy);
      let s = 0;
      for (let j = 0; j < k; j++) s += pearson(column(px, j), column(py, j));
      foldScores[ci].push(s / k);
    });
  }
  const scores: RccaCvScore[] = candidates.map((cand, ci) => {
    const fs = foldScores[ci];
    const score = fs.some((v) => Number.isNaN(v)) ? Number.NaN : fs.reduce((a, b) => a + b, 0) / fs.length;
    return { x: cand.x, y: cand.y, score, foldScores: fs };
  });
  let bestIndex = -1;
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i].score;
    if (Number.isNaN(s)) continue;
    if (bestIndex < 0) {
      bestIndex = i;
      continue;
    }
    const b = scores[bestIndex];
    if (s > b.score + 1e-12 || (Math.abs(s - b.score) <= 1e-12 && scores[i].x + scores[i].y > b.x + b.y)) bestIndex = i;
  }
  if (bestIndex < 0) throw new ShapeError('rCCA cross-validation: every candidate coefficient was infeasible (singular covariance with coefficient 0)');
  const best = scores[bestIndex];
  return { best: { x: best.x, y: best.y }, bestScore: best.score, scores, folds };
}

/**
 * Regularised CCA with coefficients chosen by {@link crossValidateRegularization},
 * refitted on all the data.
 */
export function rccaCv(x: MatrixInput, y: MatrixInput, options: RccaCvOptions): RccaCvResult {
  const rows = toPairedRows(x, y);
  const summary = crossValidateRows(rows.x, rows.y, options);
  const pair = spanPair(rows.x, rows.y);
  const fit = fitOnSpans(pair, options.k, 'rcca', summary.best.x, summary.best.y);
  return { ...twoViewResult('rcca', pair, fit, summary.best), crossValidation: summary };
}
