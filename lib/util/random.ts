// Every pseudo-random generator of the library, in one place (none is cryptographic):
// - mulberry32: 32-bit state, uniforms on [0, 1): the sampler's PRNG (seeded generations) and the
//   analysis toolkit's;
// - xoshiro128** seeded through splitmix32, and hashSeed: the random-model writer's and the training
//   data order's, bit-reproducible across machines.

/** The mulberry32 generator: 32-bit state, uniforms on `[0, 1)`. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** splitmix32 step: returns [next state, output]. */
function splitmix32(state: number): [number, number] {
  state = (state + 0x9e3779b9) | 0;
  let z = state;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [state, z >>> 0];
}

/** FNV-1a over the UTF-16 code units of `s`, mixed with a seed. */
export function hashSeed(seed: number, s: string): number {
  if (!Number.isSafeInteger(seed)) throw new Error(`seed must be a safe integer, got ${seed}`);
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 0x100000000) >>> 0;
  let h = 0x811c9dc5 ^ lo;
  h = Math.imul(h, 0x01000193);
  h ^= hi;
  h = Math.imul(h, 0x01000193);
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return splitmix32(h)[1];
}

export class Xoshiro128 {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    let st = seed | 0;
    let out: number;
    [st, out] = splitmix32(st);
    this.s0 = out | 0;
    [st, out] = splitmix32(st);
    this.s1 = out | 0;
    [st, out] = splitmix32(st);
    this.s2 = out | 0;
    [st, out] = splitmix32(st);
    this.s3 = out | 0;
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next 32-bit unsigned output. */
  nextU32(): number {
    const s1 = this.s1;
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9);
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return r >>> 0;
  }

  /** Uniform in [0, 1). */
  nextFloat(): number {
    return this.nextU32() / 0x100000000;
  }

  /**
   * Fills `out` with table[lo16] and table[hi16] pairs drawn from this generator; `table` must have
   * 65536 entries. `out.length` must be even. Hot loop with the state kept in locals.
   */
  fillFromTable<T extends Float32Array | Uint16Array>(out: T, table: T): void {
    let s0 = this.s0;
    let s1 = this.s1;
    let s2 = this.s2;
    let s3 = this.s3;
    const n = out.length;
    for (let i = 0; i < n; i += 2) {
      const m = Math.imul(s1, 5);
      const r = Math.imul((m << 7) | (m >>> 25), 9);
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = (s3 << 11) | (s3 >>> 21);
      out[i] = table[r & 0xffff];
      out[i + 1] = table[r >>> 16];
    }
    this.s0 = s0;
    this.s1 = s1;
    this.s2 = s2;
    this.s3 = s3;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
