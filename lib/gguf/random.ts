/**
 * Fast deterministic random numbers for synthetic weights.
 *
 * - xoshiro128** (lib/util/random.ts, with every other generator of the library);
 * - normal samples through a 65536-entry inverse-CDF table: every 32-bit output gives two samples
 *   (one per 16-bit half). The distribution is a discretised standard normal (quantiles at
 *   (i + 0.5) / 65536, tails clipped at about 4.3 sigma), rescaled to exactly unit variance. It uses
 *   no transcendental functions per sample, so it is fast and bit-reproducible.
 */
export { hashSeed, Xoshiro128 } from '../util/random.js';

/** Inverse standard normal CDF (Acklam's rational approximation, |rel err| < 1.2e-9). */
export function inverseNormalCdf(p: number): number {
  if (!(p > 0 && p < 1)) throw new Error(`inverseNormalCdf: p must be in (0, 1), got ${p}`);
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const pLow = 0.02425;
  if (p < pLow) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - pLow) return -inverseNormalCdf(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

let unitNormalTable: Float64Array | undefined;

/** 65536 standard-normal quantiles, symmetric, rescaled to unit variance. */
export function getUnitNormalTable(): Float64Array {
  if (unitNormalTable) return unitNormalTable;
  const n = 65536;
  const t = new Float64Array(n);
  for (let i = 0; i < n / 2; i++) {
    const v = inverseNormalCdf((i + 0.5) / n);
    t[i] = v;
    t[n - 1 - i] = -v;
  }
  let sumSq = 0;
  for (let i = 0; i < n; i++) sumSq += t[i] * t[i];
  const scale = 1 / Math.sqrt(sumSq / n);
  for (let i = 0; i < n; i++) t[i] *= scale;
  unitNormalTable = t;
  return t;
}

/** Table of N(mean, std^2) samples as float32, for Xoshiro128.fillFromTable. */
export function normalTableF32(std: number, mean = 0): Float32Array {
  const unit = getUnitNormalTable();
  const out = new Float32Array(unit.length);
  for (let i = 0; i < unit.length; i++) out[i] = mean + std * unit[i];
  return out;
}
