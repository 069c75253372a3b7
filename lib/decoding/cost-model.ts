// The one model of self-speculative costs, shared by the adaptive draft policy and the layer
// analysis's speedup predictor so that the two cannot drift apart.

/** Tokens a round yields on average with per-token acceptance `a` and draft length d: (1 − a^(d+1)) / (1 − a). */
export function expectedTokens(a: number, d: number): number {
  return a >= 1 ? d + 1 : (1 - a ** (d + 1)) / (1 - a);
}

/**
 * A verification of k positions with layers [E, N), in units of one full single-token step, when it
 * has not been measured: the layers' share (1 − E/N) times a batch cost that grows by a quarter
 * step per extra position.
 */
export function estimatedVerifyCost(exitFraction: number, k: number): number {
  return (1 - exitFraction) * (1 + 0.25 * (k - 1));
}
