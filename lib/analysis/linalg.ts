/**
 * Dense linear-algebra helpers on row-major `Float64Array` rows.
 *
 * Products are hand-written loops over contiguous rows (several times faster
 * than element-wise `Matrix.get` access); eigendecompositions go through
 * `ml-matrix`'s symmetric `EigenvalueDecomposition` (Householder
 * tridiagonalisation + QL), which is deterministic for a given input.
 *
 * @module
 */
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import type { Rows } from './matrix-input.js';

/** Allocate an `r × c` zero matrix. */
export function zeros(r: number, c: number): Rows {
  const out: Rows = new Array(r);
  for (let i = 0; i < r; i++) out[i] = new Float64Array(c);
  return out;
}

/** Column means of `a` (length = number of columns). */
export function columnMeans(a: Rows): Float64Array {
  const d = a[0].length;
  const mean = new Float64Array(d);
  for (const row of a) for (let j = 0; j < d; j++) mean[j] += row[j];
  for (let j = 0; j < d; j++) mean[j] /= a.length;
  return mean;
}

/** Return `a` with `mean` subtracted from every row (new rows). */
export function centre(a: Rows, mean: Float64Array): Rows {
  return a.map((row) => {
    const out = new Float64Array(row.length);
    for (let j = 0; j < row.length; j++) out[j] = row[j] - mean[j];
    return out;
  });
}

/** `a · b` for `a: n × m`, `b: m × p`. */
export function mul(a: Rows, b: Rows): Rows {
  const n = a.length;
  const m = b.length;
  const p = m > 0 ? b[0].length : 0;
  const out = zeros(n, p);
  for (let i = 0; i < n; i++) {
    const ai = a[i];
    const oi = out[i];
    for (let s = 0; s < m; s++) {
      const v = ai[s];
      if (v === 0) continue;
      const bs = b[s];
      for (let j = 0; j < p; j++) oi[j] += v * bs[j];
    }
  }
  return out;
}

/** `aᵀ · b` for `a: n × m`, `b: n × p` (sum of row outer products). */
export function mulAtB(a: Rows, b: Rows): Rows {
  const n = a.length;
  const m = a[0].length;
  const p = b[0].length;
  const out = zeros(m, p);
  for (let t = 0; t < n; t++) {
    const at = a[t];
    const bt = b[t];
    for (let i = 0; i < m; i++) {
      const v = at[i];
      if (v === 0) continue;
      const oi = out[i];
      for (let j = 0; j < p; j++) oi[j] += v * bt[j];
    }
  }
  return out;
}

/** `a · bᵀ` for `a: n × m`, `b: p × m` (row dot products). */
export function mulABt(a: Rows, b: Rows): Rows {
  const n = a.length;
  const p = b.length;
  const m = a[0].length;
  const out = zeros(n, p);
  const symmetric = a === b;
  for (let i = 0; i < n; i++) {
    const ai = a[i];
    for (let j = symmetric ? i : 0; j < p; j++) {
      const bj = b[j];
      let s = 0;
      for (let k = 0; k < m; k++) s += ai[k] * bj[k];
      out[i][j] = s;
      if (symmetric) out[j][i] = s;
    }
  }
  return out;
}

/** Transpose. */
export function transpose(a: Rows): Rows {
  const n = a.length;
  const m = n > 0 ? a[0].length : 0;
  const out = zeros(m, n);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) out[j][i] = a[i][j];
  return out;
}

/** Column `j` of `a`. */
export function column(a: Rows, j: number): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i][j];
  return out;
}

/** Euclidean norm of column `j`. */
export function columnNorm(a: Rows, j: number): number {
  let s = 0;
  for (const row of a) s += row[j] * row[j];
  return Math.sqrt(s);
}

/** Sum of squares of all entries (squared Frobenius norm). */
export function frobeniusSq(a: Rows): number {
  let s = 0;
  for (const row of a) for (let j = 0; j < row.length; j++) s += row[j] * row[j];
  return s;
}

/** Pearson correlation of two equal-length vectors; 0 when either is constant. */
export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i];
    mb += b[i];
  }
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i] - ma;
    const db = b[i] - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  if (saa <= 0 || sbb <= 0) return 0;
  return sab / Math.sqrt(saa * sbb);
}

/** Result of a symmetric eigendecomposition, eigenvalues in descending order. */
export interface SymmetricEigen {
  /** Eigenvalues, largest first. */
  values: Float64Array;
  /** Eigenvectors as columns (`n × n`), in the order of `values`. */
  vectors: Rows;
}

/**
 * Eigendecomposition of a symmetric matrix (symmetrised as `(S + Sᵀ)/2` first to
 * absorb rounding asymmetry), sorted by decreasing eigenvalue.
 */
export function symmetricEigen(s: Rows): SymmetricEigen {
  const n = s.length;
  const sym = zeros(n, n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) sym[i][j] = 0.5 * (s[i][j] + s[j][i]);
  const evd = new EigenvalueDecomposition(new Matrix(sym), { assumeSymmetric: true });
  const raw = evd.realEigenvalues;
  const vec = evd.eigenvectorMatrix;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => raw[b] - raw[a] || a - b);
  const values = new Float64Array(n);
  const vectors = zeros(n, n);
  for (let c = 0; c < n; c++) {
    const src = order[c];
    values[c] = raw[src];
    for (let i = 0; i < n; i++) vectors[i][c] = vec.get(i, src);
  }
  return { values, vectors };
}

/** Top singular triplets of a small matrix: `M ≈ P · diag(sigma) · Qᵀ`. */
export interface TopSvd {
  /** Singular values, largest first (length `k`). */
  sigma: Float64Array;
  /** Left singular vectors as columns (`rows(M) × k`). */
  p: Rows;
  /** Right singular vectors as columns (`cols(M) × k`). */
  q: Rows;
}

/**
 * Top-`k` singular triplets of `m` via the eigendecomposition of the smaller of
 * `M Mᵀ` and `Mᵀ M`; the other side is recovered as `Mᵀ p / σ` (or `M q / σ`).
 * Accurate for the leading singular values, which is all the methods here need.
 *
 * @throws Error if one of the top `k` singular values is zero (rank below `k`)
 */
export function topSvd(m: Rows, k: number): TopSvd {
  const r = m.length;
  const c = m[0].length;
  const leftSide = r <= c;
  const gram = leftSide ? mulABt(m, m) : mulAtB(m, m);
  const eig = symmetricEigen(gram);
  const sigma = new Float64Array(k);
  const small = zeros(leftSide ? r : c, k);
  for (let i = 0; i < k; i++) {
    sigma[i] = Math.sqrt(Math.max(eig.values[i], 0));
    for (let j = 0; j < small.length; j++) small[j][i] = eig.vectors[j][i];
  }
  const scale = sigma[0] > 0 ? sigma[0] : 1;
  for (let i = 0; i < k; i++) {
    if (!(sigma[i] > scale * 1e-12)) {
      throw new Error(`topSvd: singular value ${i + 1} is zero; the matrix has rank below k = ${k}`);
    }
  }
  // Other side: q = Mᵀ p / σ (left side known) or p = M q / σ.
  const other = leftSide ? mulAtB(m, small) : mul(m, small);
  for (const row of other) for (let i = 0; i < k; i++) row[i] /= sigma[i];
  return leftSide ? { sigma, p: small, q: other } : { sigma, p: other, q: small };
}

/**
 * Thin SVD of a centred data matrix restricted to its numerical rank:
 * `Xc = U · diag(s) · Vᵀ` with `U: n × r`, `V: d × r`, `r ≤ min(n − 1, d)`.
 */
export interface CentredSpan {
  /** Column means that were subtracted. */
  mean: Float64Array;
  /** Number of samples. */
  n: number;
  /** Number of features. */
  d: number;
  /** Numerical rank `r`. */
  rank: number;
  /** Singular values of the centred data (length `r`, descending). */
  s: Float64Array;
  /** Left singular vectors (`n × r`): the centred data's coordinates. */
  u: Rows;
  /** Right singular vectors (`d × r`): an orthonormal basis of the data's span. */
  v: Rows;
  /** Trace of the sample covariance (`Σ s² / (n − 1)`). */
  totalVariance: number;
}

/** Relative eigenvalue tolerance used by {@link centredSpan}. */
export const RANK_REL_TOL = 1e-10;

/**
 * Centre `x` and compute its {@link CentredSpan}.
 *
 * Computed from the eigendecomposition of the smaller of the Gram matrix
 * `Xc Xcᵀ` (`n × n`, used when `n ≤ d`) and the scatter matrix `Xcᵀ Xc`
 * (`d × d`), so the cost is `O(n · d · min(n, d))`: governed by the sample count
 * when samples are fewer than dimensions. Squaring the singular values limits
 * the relative accuracy of the smallest ones, which is why directions whose
 * squared singular value is below `relTol` (default {@link RANK_REL_TOL}) times
 * the largest are dropped: the one exactly-zero direction that centring creates
 * when `n ≤ d` is always among them, and so is any direction with a covariance
 * condition number above 1e10 (plain CCA treats such data as singular).
 */
export function centredSpan(x: Rows, relTol = RANK_REL_TOL): CentredSpan {
  const n = x.length;
  const d = x[0].length;
  const mean = columnMeans(x);
  const xc = centre(x, mean);
  const useGram = n <= d;
  const eig = symmetricEigen(useGram ? mulABt(xc, xc) : mulAtB(xc, xc));
  const top = Math.max(eig.values[0], 0);
  let rank = 0;
  while (rank < eig.values.length && top > 0 && eig.values[rank] > top * relTol) rank++;
  const s = new Float64Array(rank);
  let sumSq = 0;
  for (let i = 0; i < rank; i++) {
    s[i] = Math.sqrt(eig.values[i]);
    sumSq += eig.values[i];
  }
  const known = zeros(useGram ? n : d, rank);
  for (let j = 0; j < known.length; j++) for (let i = 0; i < rank; i++) known[j][i] = eig.vectors[j][i];
  // Other factor: V = Xcᵀ U / s (Gram route) or U = Xc V / s (scatter route).
  const other = useGram ? mulAtB(xc, known) : mul(xc, known);
  for (const row of other) for (let i = 0; i < rank; i++) row[i] /= s[i];
  const u = useGram ? known : other;
  const v = useGram ? other : known;
  return { mean, n, d, rank, s, u, v, totalVariance: n > 1 ? sumSq / (n - 1) : 0 };
}

/**
 * Deterministic sign convention: flip each column of `a` so that its
 * largest-magnitude entry (first one on ties) is positive. The same flips are
 * applied to the matching columns of every matrix in `partners` (e.g. the paired
 * direction of the other modality, so that paired projections keep a positive
 * correlation). Works in place; returns the signs applied.
 */
export function fixSigns(a: Rows, partners: Rows[] = []): Float64Array {
  const k = a.length > 0 ? a[0].length : 0;
  const signs = new Float64Array(k);
  for (let j = 0; j < k; j++) {
    let best = 0;
    let bestAbs = -1;
    for (let i = 0; i < a.length; i++) {
      const v = Math.abs(a[i][j]);
      if (v > bestAbs) {
        bestAbs = v;
        best = i;
      }
    }
    const sgn = a[best][j] < 0 ? -1 : 1;
    signs[j] = sgn;
    if (sgn < 0) {
      for (const row of a) row[j] = -row[j];
      for (const p of partners) for (const row of p) row[j] = -row[j];
    }
  }
  return signs;
}

/**
 * Orthonormal basis of the column span of `a` (`d × k`, `k ≤ d`), by modified
 * Gram–Schmidt with one re-orthogonalisation pass.
 *
 * @throws Error when the columns are (numerically) linearly dependent
 */
export function orthonormalColumns(a: Rows): Rows {
  const d = a.length;
  const k = a[0].length;
  const q = a.map((r) => Float64Array.from(r));
  for (let j = 0; j < k; j++) {
    const original = columnNorm(q, j);
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < j; p++) {
        let dot = 0;
        for (let i = 0; i < d; i++) dot += q[i][p] * q[i][j];
        for (let i = 0; i < d; i++) q[i][j] -= dot * q[i][p];
      }
    }
    const norm = columnNorm(q, j);
    if (!(norm > 1e-10 * original) || norm === 0) {
      throw new Error(`orthonormalColumns: column ${j} is linearly dependent on the previous ones`);
    }
    for (let i = 0; i < d; i++) q[i][j] /= norm;
  }
  return q;
}

/** Scale each column of `a` to unit Euclidean norm (new rows; zero columns stay zero). */
export function normaliseColumns(a: Rows): Rows {
  const k = a.length > 0 ? a[0].length : 0;
  const norms = new Float64Array(k);
  for (let j = 0; j < k; j++) norms[j] = columnNorm(a, j);
  return a.map((row) => {
    const out = new Float64Array(k);
    for (let j = 0; j < k; j++) out[j] = norms[j] > 0 ? row[j] / norms[j] : 0;
    return out;
  });
}
