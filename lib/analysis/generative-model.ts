/**
 * The linear generative model of the SDR paper (Abdelaleem et al., TMLR 2024):
 * two modalities driven by shared latent signals plus private ("self") signals
 * and isotropic noise, with known loadings.
 *
 * For each sample `t` (all latents i.i.d. standard normal):
 *
 *     x_t = A_X s_t^X + B_X z_t + σ ε_t^X        (dx features)
 *     y_t = A_Y s_t^Y + B_Y z_t + σ ε_t^Y        (dy features)
 *
 * `z_t` (`sharedSignals` dims) is common to both; `s^X`, `s^Y` (`selfSignals`
 * dims each) are private. Loadings are drawn once per model with i.i.d.
 * Gaussian entries of variance `snr · σ² / m`, so that — in expectation, per
 * feature — shared signal variance / noise variance = `snrShared` and self
 * signal variance / noise variance = `snrSelf` (the paper's γ_shared, γ_self).
 * `B_X` and `B_Y` are drawn independently of each other; the "true shared
 * subspace" of X is span(B_X), of Y span(B_Y).
 *
 * @module
 */
import { Matrix, solve } from 'ml-matrix';
import { zeros } from './linalg.js';
import { type Rows, rowsToMatrix, ShapeError } from './matrix-input.js';
import { createRng, type Rng } from './random.js';
import { checkOptionKeys, type KeysOf } from '../util/option-keys.js';

/** Parameters of {@link createSdrModel}. */
export interface SdrModelOptions {
  /** Dimension of X. */
  dx: number;
  /** Dimension of Y. */
  dy: number;
  /** Number of shared latent signals (`m_shared`). */
  sharedSignals: number;
  /** Number of self (private) signals per modality (`m_self`); may be 0. */
  selfSignals: number;
  /** Shared signal variance / noise variance per feature (γ_shared). */
  snrShared: number;
  /** Self signal variance / noise variance per feature (γ_self). */
  snrSelf: number;
  /** Noise standard deviation σ > 0 (default 1). */
  noiseStd?: number;
  /** Seed for the loadings. */
  seed: number;
}

/** Paired samples drawn from an {@link SdrModel}. */
export interface SdrSample {
  /** X samples (`n × dx`). */
  x: Matrix;
  /** Y samples (`n × dy`). */
  y: Matrix;
  /** The shared latents `z` (`n × sharedSignals`). */
  shared: Matrix;
}

/** A drawn model: fixed loadings plus a sampler. */
export interface SdrModel {
  /** Resolved options. */
  readonly options: Required<SdrModelOptions>;
  /** `B_X` (`dx × sharedSignals`): the true shared loadings of X. */
  readonly sharedLoadingsX: Matrix;
  /** `B_Y` (`dy × sharedSignals`). */
  readonly sharedLoadingsY: Matrix;
  /** `A_X` (`dx × selfSignals`). */
  readonly selfLoadingsX: Matrix;
  /** `A_Y` (`dy × selfSignals`). */
  readonly selfLoadingsY: Matrix;
  /**
   * Population-optimal reduction of X to the shared signals: `Cx⁻¹ B_X`
   * (`dx × sharedSignals`), the weights of the best linear predictor of `z` from
   * `x` (and the span of the population CCA weights when `k = sharedSignals`).
   * Computed with the Woodbury identity, `O(dx · m²)`.
   */
  readonly optimalWeightsX: Matrix;
  /** Same for Y: `Cy⁻¹ B_Y`. */
  readonly optimalWeightsY: Matrix;
  /** Draw `n` paired samples; the same `(model, seed)` always gives the same data. */
  sample(n: number, seed: number): SdrSample;
}

function checkInt(v: number, name: string, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new ShapeError(`${name} must be an integer >= ${min}, got ${v}`);
}

function gaussianMatrix(rng: Rng, r: number, c: number, std: number): Rows {
  const out = zeros(r, c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[i][j] = std * rng.normal();
  return out;
}

/** Mix two 32-bit seeds into one (so sample streams differ from the loadings' stream). */
function mixSeeds(a: number, b: number): number {
  let h = (a ^ 0x9e3779b9) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = (h + Math.imul(b >>> 0, 0xc2b2ae35)) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0x27d4eb2f) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * `C⁻¹ B` for `C = B Bᵀ + A Aᵀ + σ² I` via Woodbury:
 * `C⁻¹ = σ⁻² (I − L (σ² I + Lᵀ L)⁻¹ Lᵀ)` with `L = [B A]`.
 */
function woodburyWeights(b: Rows, a: Rows, noiseStd: number): Matrix {
  const l = new Matrix(b.map((row, i) => [...row, ...a[i]]));
  const bm = new Matrix(b);
  const s2 = noiseStd * noiseStd;
  const lt = l.transpose();
  const inner = lt.mmul(l).add(Matrix.eye(l.columns).mul(s2));
  const correction = l.mmul(solve(inner, lt.mmul(bm)));
  return bm.sub(correction).div(s2);
}

/** The keys of SdrModelOptions (the synthetic sweep's options extend them). */
export const SDR_MODEL_KEYS = {
  dx: true,
  dy: true,
  sharedSignals: true,
  selfSignals: true,
  snrShared: true,
  snrSelf: true,
  noiseStd: true,
  seed: true,
} as const satisfies KeysOf<SdrModelOptions>;

/** Draw the loadings of a generative model (see the module comment). */
export function createSdrModel(options: SdrModelOptions): SdrModel {
  checkOptionKeys('createSdrModel options', options, SDR_MODEL_KEYS);
  const o: Required<SdrModelOptions> = { noiseStd: 1, ...options };
  checkInt(o.dx, 'dx', 1);
  checkInt(o.dy, 'dy', 1);
  checkInt(o.sharedSignals, 'sharedSignals', 1);
  checkInt(o.selfSignals, 'selfSignals', 0);
  for (const [name, v] of [
    ['snrShared', o.snrShared],
    ['snrSelf', o.snrSelf],
  ] as const) {
    if (!(v >= 0) || !Number.isFinite(v)) throw new ShapeError(`${name} must be a finite number >= 0, got ${v}`);
  }
  if (!(o.noiseStd > 0) || !Number.isFinite(o.noiseStd)) throw new ShapeError(`noiseStd must be a finite number > 0, got ${o.noiseStd}`);
  const rng = createRng(o.seed);
  const sigma2 = o.noiseStd * o.noiseStd;
  const sharedStd = Math.sqrt((o.snrShared * sigma2) / o.sharedSignals);
  const selfStd = o.selfSignals > 0 ? Math.sqrt((o.snrSelf * sigma2) / o.selfSignals) : 0;
  const bx = gaussianMatrix(rng, o.dx, o.sharedSignals, sharedStd);
  const by = gaussianMatrix(rng, o.dy, o.sharedSignals, sharedStd);
  const ax = gaussianMatrix(rng, o.dx, o.selfSignals, selfStd);
  const ay = gaussianMatrix(rng, o.dy, o.selfSignals, selfStd);
  const emit = (load: Rows, self: Rows, z: Float64Array, s: Float64Array, out: Float64Array, r: Rng) => {
    for (let i = 0; i < out.length; i++) {
      let v = o.noiseStd * r.normal();
      const li = load[i];
      for (let j = 0; j < z.length; j++) v += li[j] * z[j];
      const si = self[i];
      for (let j = 0; j < s.length; j++) v += si[j] * s[j];
      out[i] = v;
    }
  };
  return {
    options: o,
    optimalWeightsX: woodburyWeights(bx, ax, o.noiseStd),
    optimalWeightsY: woodburyWeights(by, ay, o.noiseStd),
    sharedLoadingsX: rowsToMatrix(bx),
    sharedLoadingsY: rowsToMatrix(by),
    selfLoadingsX: o.selfSignals > 0 ? rowsToMatrix(ax) : rowsToMatrix([], 0),
    selfLoadingsY: o.selfSignals > 0 ? rowsToMatrix(ay) : rowsToMatrix([], 0),
    sample(n: number, seed: number): SdrSample {
      checkInt(n, 'n', 1);
      const r = createRng(mixSeeds(o.seed, seed));
      const xRows: Rows = new Array(n);
      const yRows: Rows = new Array(n);
      const zRows: Rows = new Array(n);
      const sx = new Float64Array(o.selfSignals);
      const sy = new Float64Array(o.selfSignals);
      for (let t = 0; t < n; t++) {
        const z = new Float64Array(o.sharedSignals);
        for (let j = 0; j < z.length; j++) z[j] = r.normal();
        for (let j = 0; j < sx.length; j++) sx[j] = r.normal();
        for (let j = 0; j < sy.length; j++) sy[j] = r.normal();
        xRows[t] = new Float64Array(o.dx);
        yRows[t] = new Float64Array(o.dy);
        emit(bx, ax, z, sx, xRows[t], r);
        emit(by, ay, z, sy, yRows[t], r);
        zRows[t] = z;
      }
      return { x: rowsToMatrix(xRows), y: rowsToMatrix(yRows), shared: rowsToMatrix(zRows) };
    },
  };
}
