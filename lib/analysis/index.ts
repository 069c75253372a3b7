/**
 * Linear dimensionality-reduction and representation-similarity toolkit:
 * independent (PCA) and simultaneous (PLS, CCA, regularised CCA) reductions,
 * linear CKA, the SDR paper's generative model and its quality metrics.
 *
 * Built on `ml-matrix` (pure JavaScript — no native build next to the llama.cpp
 * addon — well maintained, with SVD / eigendecomposition / Cholesky). All
 * routines are deterministic; directions carry a fixed sign convention (the
 * largest-magnitude entry of each direction is positive; paired directions flip
 * together). When samples are fewer than dimensions, everything is computed in
 * the span of the centred data, so costs scale with the sample count.
 *
 * @packageDocumentation
 */
export { Matrix } from 'ml-matrix';
export { type MatrixInput, ShapeError } from './matrix-input.js';
export type { LinearProjection } from './projection.js';
export { pca, type PcaOptions, type PcaResult } from './pca.js';
export { pls, type PlsOptions } from './pls.js';
export { cca, rcca, regularizationPair, type CcaOptions, type RccaOptions, type Regularization } from './cca.js';
export {
  crossValidateRegularization,
  DEFAULT_RCCA_GRID,
  rccaCv,
  type RccaCvOptions,
  type RccaCvResult,
  type RccaCvScore,
  type RccaCvSummary,
} from './rcca-cv.js';
export { SingularCovarianceError, type TwoViewMethod, type TwoViewResult } from './two-view.js';
export { linearCka } from './cka.js';
export { DEFAULT_RIDGE_GRID, ridge, ridgeCv, ridgePredict, type RidgeCvResult, type RidgeResult } from './ridge.js';
export { createRng, mulberry32, type Rng } from './random.js';
export { createSdrModel, type SdrModel, type SdrModelOptions, type SdrSample } from './generative-model.js';
export {
  chanceSubspaceQuality,
  meanSquaredCanonicalCorrelation,
  principalAngleCosines,
  reconstructedCorrelation,
  subspaceQuality,
  type ReconstructedCorrelation,
  type ReconstructedCorrelationOptions,
} from './metrics.js';
// charts are reports, not mathematics: kept here for compatibility (they live in lib/tools/reports/)
export { renderLineCharts, type ChartLayout, type ChartPanel, type ChartSeries } from './svg-chart.js';
export { syntheticSweepSvg } from './synthetic-sweep-chart.js';
export {
  resolveSweepOptions,
  runSyntheticSweep,
  sweepRowsToCsv,
  SWEEP_METHODS,
  type SweepMethod,
  type SyntheticSweepOptions,
  type SyntheticSweepResult,
  type SyntheticSweepRow,
} from './synthetic-sweep.js';
