/**
 * The per-modality linear map every method returns: centre with the training
 * mean, multiply by a `d × k` weight matrix.
 *
 * @module
 */
import type { Matrix } from 'ml-matrix';
import { mul, normaliseColumns, centre } from './linalg.js';
import { type MatrixInput, type Rows, rowsToMatrix, toRows } from './matrix-input.js';

/** A fitted linear reduction of one modality from `d` to `k` dimensions. */
export interface LinearProjection {
  /** Input dimension `d`. */
  readonly inputDimension: number;
  /** Output dimension `k`. */
  readonly components: number;
  /** Training column means, subtracted before projecting (length `d`). */
  readonly mean: Float64Array;
  /**
   * Projection weights (`d × k`): `transform(x) = (x − mean) · weights`.
   * For PCA and PLS these are unit-norm directions; for CCA / rCCA they are the
   * canonical weights, scaled so each projection has unit (regularised) variance
   * on the training data.
   */
  readonly weights: Matrix;
  /**
   * Unit-norm directions (loadings) in feature space (`d × k`): the pattern each
   * component stands for. For PCA and PLS, the weights themselves. For CCA /
   * rCCA, the (regularised) covariance times the weights, `R w`, normalised —
   * the structure loadings, which estimate the generating loadings (the weights
   * of CCA instead estimate `C⁻¹ B`).
   */
  readonly directions: Matrix;
  /** Project new samples (one per row, `d` columns) to `k` columns. */
  transform(data: MatrixInput): Matrix;
}

/**
 * Build a {@link LinearProjection} from a mean and internal weight rows;
 * `loadings` (default: the weights) are normalised into `directions`.
 */
export function makeProjection(mean: Float64Array, weights: Rows, name: string, loadings: Rows = weights): LinearProjection {
  const d = mean.length;
  const k = weights[0].length;
  const weightMatrix = rowsToMatrix(weights);
  const directionMatrix = rowsToMatrix(normaliseColumns(loadings));
  return {
    inputDimension: d,
    components: k,
    mean,
    weights: weightMatrix,
    directions: directionMatrix,
    transform(data: MatrixInput): Matrix {
      const rows = toRows(data, name, d);
      return rowsToMatrix(projectRows(rows, mean, weights));
    },
  };
}

/** `(rows − mean) · weights` on internal rows. */
export function projectRows(rows: Rows, mean: Float64Array, weights: Rows): Rows {
  return mul(centre(rows, mean), weights);
}
