/**
 * Reproduction sweep for the SDR paper's main claim on its linear generative
 * model: recovery quality versus sample count for PCA (independent reduction)
 * and PLS, CCA and cross-validated regularised CCA (simultaneous reduction).
 *
 * For every repeat a model (loadings) is drawn, a held-out test set of
 * `testSamples` is drawn from it, and for each sample count a fresh training set
 * is drawn; each method keeps `k` dimensions per modality. Two qualities:
 *  - subspace recovery: {@link subspaceQuality} of the kept X directions against
 *    span(B_X), averaged with the same for Y (1 = perfect, `k/d` = chance);
 *  - reconstructed correlation: {@link reconstructedCorrelation} on the test set,
 *    rescaled between the shuffled baseline (0) and the oracle (1: the
 *    population-optimal reductions `Cx⁻¹ B_X`, `Cy⁻¹ B_Y` applied to the same
 *    test set).
 * CCA is infeasible when `n ≤ max(dx, dy)` (singular covariance): those points
 * are reported as `NaN` with `feasible = 0` and are missing from the plot.
 *
 * @module
 */
import type { Matrix } from 'ml-matrix';
import { cca } from './cca.js';
import { createSdrModel, SDR_MODEL_KEYS, type SdrModelOptions } from './generative-model.js';
import { chanceSubspaceQuality, meanSquaredCanonicalCorrelation, reconstructedCorrelation, subspaceQuality } from './metrics.js';
import { pca } from './pca.js';
import { pls } from './pls.js';
import type { LinearProjection } from './projection.js';
import { DEFAULT_RCCA_GRID, rccaCv } from './rcca-cv.js';
import { SingularCovarianceError } from './two-view.js';
import { ShapeError } from './matrix-input.js';
import { checkOptionKeys, type KeysOf } from '../util/option-keys.js';

/** The methods compared by the sweep. */
export type SweepMethod = 'PCA' | 'PLS' | 'CCA' | 'rCCA';

/** All sweep methods, in plotting order. */
export const SWEEP_METHODS: readonly SweepMethod[] = ['PCA', 'PLS', 'CCA', 'rCCA'];

/** Options for {@link runSyntheticSweep}; every field has a default. */
export interface SyntheticSweepOptions {
  /** Dimension of X (default 100). */
  dx?: number;
  /** Dimension of Y (default 100). */
  dy?: number;
  /** Shared latent signals (default 2). */
  sharedSignals?: number;
  /** Self signals per modality (default 4). */
  selfSignals?: number;
  /** Shared SNR per feature γ_shared (default 0.3: weak). */
  snrShared?: number;
  /** Self SNR per feature γ_self (default 5: strong). */
  snrSelf?: number;
  /** Noise standard deviation (default 1). */
  noiseStd?: number;
  /** Dimensions kept per modality (default `sharedSignals`). */
  k?: number;
  /** Training sample counts (default 10, 20, 50, 100, 200, 500, 1000, 2000). */
  sampleCounts?: number[];
  /** Independent repeats (models) per point (default 3). */
  repeats?: number;
  /** Held-out samples per repeat (default 1000). */
  testSamples?: number;
  /** Base seed (default 1). */
  seed?: number;
  /** rCCA cross-validation folds (default 5). */
  rccaFolds?: number;
  /** rCCA coefficient grid (default {@link DEFAULT_RCCA_GRID}). */
  rccaGrid?: readonly number[];
  /** Shuffles for the reconstructed-correlation baseline (default 10). */
  shuffles?: number;
  /** Methods to run (default all four). */
  methods?: readonly SweepMethod[];
}

/** One aggregated point of the sweep (one method at one sample count). */
export interface SyntheticSweepRow {
  method: SweepMethod;
  /** Training samples. */
  samples: number;
  /** Repeats in which the method could be computed. */
  feasible: number;
  /** Mean over feasible repeats of the subspace quality (mean of X and Y). */
  subspaceQuality: number;
  /** Standard deviation of the same over repeats (0 for a single repeat). */
  subspaceQualitySd: number;
  /** Mean rescaled reconstructed-correlation score in `[0, 1]`. */
  reconstructedScore: number;
  /** Mean raw held-out mean squared canonical correlation. */
  reconstructedRaw: number;
  /** Mean shuffled baseline of the same. */
  reconstructedBaseline: number;
  /** Mean oracle (true-subspace) value of the same. */
  oracle: number;
  /** rCCA only: mean cross-validated coefficient (else `NaN`). */
  rccaCoefficient: number;
}

/** Output of {@link runSyntheticSweep}. */
export interface SyntheticSweepResult {
  /** Options with defaults filled in. */
  options: Required<SyntheticSweepOptions>;
  /** One row per (method, sample count), methods in {@link SWEEP_METHODS} order. */
  rows: SyntheticSweepRow[];
  /** Chance level of the subspace quality, `k / d` (mean of X and Y). */
  chance: number;
  /** CSV of `rows` (header line first). The figure: syntheticSweepSvg(result) (reports/). */
  csv: string;
}

/** Fill in the defaults of {@link SyntheticSweepOptions}. */
export function resolveSweepOptions(options: SyntheticSweepOptions = {}): Required<SyntheticSweepOptions> {
  checkOptionKeys('synthetic sweep options', options, {
    ...SDR_MODEL_KEYS,
    k: true,
    sampleCounts: true,
    repeats: true,
    testSamples: true,
    rccaFolds: true,
    rccaGrid: true,
    shuffles: true,
    methods: true,
  } as const satisfies KeysOf<SyntheticSweepOptions>);
  const sharedSignals = options.sharedSignals ?? 2;
  return {
    dx: options.dx ?? 100,
    dy: options.dy ?? 100,
    sharedSignals,
    selfSignals: options.selfSignals ?? 4,
    snrShared: options.snrShared ?? 0.3,
    snrSelf: options.snrSelf ?? 5,
    noiseStd: options.noiseStd ?? 1,
    k: options.k ?? sharedSignals,
    sampleCounts: options.sampleCounts ?? [10, 20, 50, 100, 200, 500, 1000, 2000],
    repeats: options.repeats ?? 3,
    testSamples: options.testSamples ?? 1000,
    seed: options.seed ?? 1,
    rccaFolds: options.rccaFolds ?? 5,
    rccaGrid: options.rccaGrid ?? DEFAULT_RCCA_GRID,
    shuffles: options.shuffles ?? 10,
    methods: options.methods ?? SWEEP_METHODS,
  };
}

interface Fitted {
  x: LinearProjection;
  y: LinearProjection;
  coefficient: number;
}

function fitMethod(method: SweepMethod, x: Matrix, y: Matrix, o: Required<SyntheticSweepOptions>, seed: number): Fitted | null {
  try {
    switch (method) {
      case 'PCA':
        return { x: pca(x, { k: o.k }).projection, y: pca(y, { k: o.k }).projection, coefficient: Number.NaN };
      case 'PLS': {
        const r = pls(x, y, { k: o.k });
        return { x: r.x, y: r.y, coefficient: Number.NaN };
      }
      case 'CCA': {
        const r = cca(x, y, { k: o.k });
        return { x: r.x, y: r.y, coefficient: Number.NaN };
      }
      case 'rCCA': {
        const r = rccaCv(x, y, { k: o.k, folds: o.rccaFolds, grid: o.rccaGrid, seed });
        return { x: r.x, y: r.y, coefficient: (r.regularization.x + r.regularization.y) / 2 };
      }
    }
  } catch (e) {
    // Infeasible configurations (singular covariance for CCA, too few samples
    // for k components or for cross-validation) are reported as missing points.
    if (e instanceof SingularCovarianceError || e instanceof ShapeError) return null;
    throw e;
  }
}

function mean(v: number[]): number {
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : Number.NaN;
}

function sd(v: number[]): number {
  if (v.length < 2) return v.length ? 0 : Number.NaN;
  const m = mean(v);
  return Math.sqrt(v.reduce((a, b) => a + (b - m) * (b - m), 0) / (v.length - 1));
}

/**
 * Run the sweep (deterministic for given options). With the defaults it takes a
 * few seconds to tens of seconds in Node, dominated by rCCA's cross-validation
 * at the largest sample counts.
 */
export function runSyntheticSweep(options: SyntheticSweepOptions = {}): SyntheticSweepResult {
  const o = resolveSweepOptions(options);
  type Acc = { q: number[]; score: number[]; raw: number[]; base: number[]; oracle: number[]; coef: number[] };
  const acc = new Map<string, Acc>();
  const key = (m: SweepMethod, n: number) => `${m}@${n}`;
  for (const m of o.methods) for (const n of o.sampleCounts) acc.set(key(m, n), { q: [], score: [], raw: [], base: [], oracle: [], coef: [] });

  for (let rep = 0; rep < o.repeats; rep++) {
    const modelOptions: SdrModelOptions = {
      dx: o.dx,
      dy: o.dy,
      sharedSignals: o.sharedSignals,
      selfSignals: o.selfSignals,
      snrShared: o.snrShared,
      snrSelf: o.snrSelf,
      noiseStd: o.noiseStd,
      seed: o.seed * 7919 + rep,
    };
    const model = createSdrModel(modelOptions);
    const test = model.sample(o.testSamples, 0x7e57);
    const oracle = meanSquaredCanonicalCorrelation(test.x.mmul(model.optimalWeightsX), test.y.mmul(model.optimalWeightsY));
    for (const n of o.sampleCounts) {
      const train = model.sample(n, n);
      for (const method of o.methods) {
        const fit = fitMethod(method, train.x, train.y, o, rep);
        if (!fit) continue;
        const a = acc.get(key(method, n))!;
        const q = 0.5 * (subspaceQuality(fit.x.directions, model.sharedLoadingsX) + subspaceQuality(fit.y.directions, model.sharedLoadingsY));
        const rc = reconstructedCorrelation(fit.x.transform(test.x), fit.y.transform(test.y), {
          reference: oracle,
          shuffles: o.shuffles,
          seed: rep,
        });
        a.q.push(q);
        a.score.push(rc.score);
        a.raw.push(rc.raw);
        a.base.push(rc.baseline);
        a.oracle.push(oracle);
        a.coef.push(fit.coefficient);
      }
    }
  }

  const rows: SyntheticSweepRow[] = [];
  for (const method of o.methods) {
    for (const n of o.sampleCounts) {
      const a = acc.get(key(method, n))!;
      rows.push({
        method,
        samples: n,
        feasible: a.q.length,
        subspaceQuality: mean(a.q),
        subspaceQualitySd: sd(a.q),
        reconstructedScore: mean(a.score),
        reconstructedRaw: mean(a.raw),
        reconstructedBaseline: mean(a.base),
        oracle: mean(a.oracle),
        rccaCoefficient: method === 'rCCA' ? mean(a.coef) : Number.NaN,
      });
    }
  }
  const chance = 0.5 * (chanceSubspaceQuality(o.dx, o.k, o.sharedSignals) + chanceSubspaceQuality(o.dy, o.k, o.sharedSignals));
  return { options: o, rows, chance, csv: sweepRowsToCsv(rows) };
}

/** CSV with a header line; numbers at full precision, `NaN` for missing. */
export function sweepRowsToCsv(rows: ReadonlyArray<SyntheticSweepRow>): string {
  const cols: (keyof SyntheticSweepRow)[] = [
    'method',
    'samples',
    'feasible',
    'subspaceQuality',
    'subspaceQualitySd',
    'reconstructedScore',
    'reconstructedRaw',
    'reconstructedBaseline',
    'oracle',
    'rccaCoefficient',
  ];
  const lines = [cols.join(',')];
  for (const r of rows) lines.push(cols.map((c) => String(r[c])).join(','));
  return `${lines.join('\n')}\n`;
}
