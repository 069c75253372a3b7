/**
 * Input handling for the analysis module: accepted matrix shapes, conversion to
 * the internal row representation, and shape validation with clear errors.
 *
 * The analysis module is built on `ml-matrix` (pure JavaScript: no native
 * dependencies to build next to the llama.cpp addon, actively maintained, and
 * it ships the SVD / symmetric eigendecomposition / Cholesky we need). Public
 * results are `ml-matrix` `Matrix` objects; the heavy inner products are done on
 * plain `Float64Array` rows for speed (see `linalg.ts`).
 *
 * @module
 */
import { Matrix } from 'ml-matrix';

/**
 * A data matrix with one sample per row: an `ml-matrix` `Matrix`, or an array of
 * rows (`Float32Array`, `Float64Array` or `number[]`), all of the same length.
 */
export type MatrixInput = Matrix | ReadonlyArray<ArrayLike<number>>;

/** Dense row-major matrix used internally: one `Float64Array` per row. */
export type Rows = Float64Array[];

/** Thrown when an input has the wrong shape or contains non-finite values. */
export class ShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShapeError';
  }
}

/**
 * Copy an input into internal rows, validating it.
 *
 * @param input - the data, one sample per row
 * @param name - how to call the input in error messages (e.g. `"X"`)
 * @param expectedColumns - when given, the required number of columns
 * @throws {@link ShapeError} on an empty input, ragged rows, a column-count
 *   mismatch or a non-finite value
 */
export function toRows(input: MatrixInput, name: string, expectedColumns?: number): Rows {
  let rows: Rows;
  if (Matrix.isMatrix(input)) {
    const m = input as Matrix;
    rows = new Array(m.rows);
    for (let i = 0; i < m.rows; i++) rows[i] = Float64Array.from(m.getRow(i));
  } else if (Array.isArray(input)) {
    rows = new Array(input.length);
    for (let i = 0; i < input.length; i++) {
      const r = input[i];
      if (r == null || typeof (r as ArrayLike<number>).length !== 'number') {
        throw new ShapeError(`${name}: row ${i} is not an array of numbers`);
      }
      rows[i] = Float64Array.from(r as ArrayLike<number>);
    }
  } else {
    throw new ShapeError(`${name}: expected a Matrix or an array of rows (Float32Array, Float64Array or number[])`);
  }
  if (rows.length === 0) throw new ShapeError(`${name}: no rows (need at least one sample)`);
  const d = rows[0].length;
  if (d === 0) throw new ShapeError(`${name}: rows have no columns`);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    if (r.length !== d) {
      throw new ShapeError(`${name}: row ${i} has ${r.length} columns, row 0 has ${d} (rows must all have the same length)`);
    }
    for (let j = 0; j < d; j++) {
      if (!Number.isFinite(r[j])) throw new ShapeError(`${name}: non-finite value ${r[j]} at row ${i}, column ${j}`);
    }
  }
  if (expectedColumns !== undefined && d !== expectedColumns) {
    throw new ShapeError(`${name}: expected ${expectedColumns} columns (the dimension the model was fitted on), got ${d}`);
  }
  return rows;
}

/**
 * Validate a pair of modalities with one row per paired sample.
 *
 * @param minSamples - minimum number of samples required (at least 2 to centre)
 * @throws {@link ShapeError} if the row counts differ or are too small
 */
export function toPairedRows(x: MatrixInput, y: MatrixInput, minSamples = 2): { x: Rows; y: Rows } {
  const xr = toRows(x, 'X');
  const yr = toRows(y, 'Y');
  if (xr.length !== yr.length) {
    throw new ShapeError(`X has ${xr.length} rows but Y has ${yr.length}: rows must be paired samples`);
  }
  if (xr.length < minSamples) throw new ShapeError(`need at least ${minSamples} paired samples, got ${xr.length}`);
  return { x: xr, y: yr };
}

/** Check a requested number of components `k` (positive integer, at most `max`). */
export function checkComponents(k: number, max: number, what: string): void {
  if (!Number.isInteger(k) || k < 1) throw new ShapeError(`k must be a positive integer, got ${k}`);
  if (k > max) throw new ShapeError(`k = ${k} exceeds the ${max} component(s) available (${what})`);
}

/** Convert internal rows to an `ml-matrix` `Matrix` (copies). */
export function rowsToMatrix(rows: Rows, columns?: number): Matrix {
  if (rows.length === 0) return new Matrix(0, columns ?? 0);
  return new Matrix(rows);
}
