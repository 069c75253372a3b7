/**
 * Linear centred kernel alignment (Kornblith et al., 2019).
 *
 * @module
 */
import { centre, columnMeans, frobeniusSq, mulABt, mulAtB } from './linalg.js';
import { type MatrixInput, ShapeError, toPairedRows } from './matrix-input.js';

/**
 * Linear CKA between two representations of the same `n` samples:
 *
 *     CKA(X, Y) = ‖Ycᵀ Xc‖²_F / (‖Xcᵀ Xc‖_F · ‖Ycᵀ Yc‖_F)
 *
 * with column-centred `Xc`, `Yc`. It lies in `[0, 1]`, is invariant to
 * orthogonal transformations and isotropic scaling of either side, and stays
 * meaningful when dimensions exceed samples. Evaluated in feature space
 * (`dx × dy` products, cost `n·(dx + dy)²`) or, when cheaper, through the
 * `n × n` Gram matrices (`‖Ycᵀ Xc‖²_F = ⟨Xc Xcᵀ, Yc Ycᵀ⟩`, cost `n²·(dx + dy)`).
 *
 * @throws {@link ShapeError} on mismatched rows, fewer than 2 samples, or a
 *   constant representation (CKA undefined)
 */
export function linearCka(x: MatrixInput, y: MatrixInput): number {
  const rows = toPairedRows(x, y);
  const n = rows.x.length;
  const xc = centre(rows.x, columnMeans(rows.x));
  const yc = centre(rows.y, columnMeans(rows.y));
  const dx = xc[0].length;
  const dy = yc[0].length;
  let cross: number;
  let xx: number;
  let yy: number;
  if (n * n * (dx + dy) < n * (dx + dy) * (dx + dy)) {
    const kx = mulABt(xc, xc);
    const ky = mulABt(yc, yc);
    let s = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) s += kx[i][j] * ky[i][j];
    cross = s;
    xx = frobeniusSq(kx);
    yy = frobeniusSq(ky);
  } else {
    cross = frobeniusSq(mulAtB(yc, xc));
    xx = frobeniusSq(mulAtB(xc, xc));
    yy = frobeniusSq(mulAtB(yc, yc));
  }
  if (!(xx > 0)) throw new ShapeError('linearCka: X is constant (zero variance), CKA is undefined');
  if (!(yy > 0)) throw new ShapeError('linearCka: Y is constant (zero variance), CKA is undefined');
  return Math.min(1, cross / Math.sqrt(xx * yy));
}
