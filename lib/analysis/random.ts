/**
 * Seeded pseudo-random numbers: mulberry32 for uniforms, Box–Muller for
 * standard normals. Small, fast and fully deterministic for a given seed (not
 * cryptographic).
 *
 * @module
 */
import { mulberry32 } from '../util/random.js';

export { mulberry32 } from '../util/random.js';

/** A seeded source of uniform and Gaussian variates. */
export interface Rng {
  /** Uniform on `[0, 1)`. */
  uniform(): number;
  /** Standard normal `N(0, 1)`. */
  normal(): number;
  /** A uniformly random permutation of `0 … n − 1` (Fisher–Yates). */
  permutation(n: number): number[];
}

/**
 * Create a seeded {@link Rng}. Normals come in Box–Muller pairs; the second of
 * each pair is cached and returned by the next call.
 */
export function createRng(seed: number): Rng {
  const next = mulberry32(seed);
  let spare: number | null = null;
  const rng: Rng = {
    uniform: next,
    normal(): number {
      if (spare !== null) {
        const v = spare;
        spare = null;
        return v;
      }
      let u = 0;
      while (u <= 0) u = next(); // avoid log(0)
      const v = next();
      const r = Math.sqrt(-2 * Math.log(u));
      spare = r * Math.sin(2 * Math.PI * v);
      return r * Math.cos(2 * Math.PI * v);
    },
    permutation(n: number): number[] {
      const p = Array.from({ length: n }, (_, i) => i);
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        const t = p[i];
        p[i] = p[j];
        p[j] = t;
      }
      return p;
    },
  };
  return rng;
}
