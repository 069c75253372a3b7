// Small statistics the benchmarks share.

/** The median of `xs` (for an even count, the upper of the two middle values). */
export const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];
