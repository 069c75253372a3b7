// The one model of self-speculative costs, shared by the adaptive draft policy and the layer
// analysis's speedup predictor so that the two cannot drift apart.

/** Tokens a round yields on average with per-token acceptance `a` and draft length d: (1 − a^(d+1)) / (1 − a). */
export function expectedTokens(a: number, d: number): number {
  return a >= 1 ? d + 1 : (1 - a ** (d + 1)) / (1 - a);
}

/**
 * The lower median: of an even count the smaller middle sample. A timing's outliers are slow ones
 * (a pause, a graph build), and of two samples the upper median is the larger one.
 */
export function lowerMedian(samples: readonly number[]): number | undefined {
  if (samples.length === 0) return undefined;
  const s = [...samples].sort((a, b) => a - b);
  return s[(s.length - 1) >> 1];
}

/**
 * A verification of k positions with layers [E, N), in units of one full single-token step, when it
 * has not been measured: the layers' share (1 − E/N) times a batch cost that grows by a quarter
 * step per extra position.
 */
export function estimatedVerifyCost(exitFraction: number, k: number): number {
  return (1 - exitFraction) * (1 + 0.25 * (k - 1));
}

/**
 * A cost line ms ≈ base + perUnit · x through recent (x, ms) measurements, by least squares (slope
 * at least `minSlope`, base at least 0). With fewer than three of them, or all at one x, the line
 * goes through their mean with `fallbackShare` of the mean cost per unit as its slope.
 */
export function costLine(samples: readonly (readonly [number, number])[], minSlope: number, fallbackShare: number): { base: number; perUnit: number } {
  const n = samples.length;
  let sx = 0;
  let sy = 0;
  let sxx = 0;
  let sxy = 0;
  for (const [x, y] of samples) {
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  const den = n * sxx - sx * sx;
  if (n >= 3 && den > 1e-9) {
    const perUnit = Math.max(minSlope, (n * sxy - sx * sy) / den);
    return { base: Math.max(0, (sy - perUnit * sx) / n), perUnit };
  }
  const perUnit = (sy / sx) * fallbackShare;
  return { base: (sy - perUnit * sx) / n, perUnit };
}
