// The context's n-grams, one bit each in a hashed filter, for a native plain run to test every token
// it produces against: a produced token whose n-gram (with the n - 1 tokens before it) occurred
// earlier is where the context lookup has a draft of a match of at least n, so the run ends there
// (decodeRun's `repeat`, native/context-run.cc) instead of hiding the repeat until the run's end.
// A false positive (two n-grams on one bit) only ends a run early; the filter is sized so that at
// most about 1 in 32 of its bits is set.

/** The hash native/context-run.cc computes: FNV-1a over 32-bit tokens, then a multiplicative mix. */
export function ngramHash(tokens: readonly number[], from: number, n: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < from + n; i++) h = Math.imul(h ^ tokens[i], 0x01000193);
  return Math.imul(h, 0x9e3779b1) >>> 0;
}

/** Filter bits per context token: about 1 in 32 set when the context is full. */
const BITS_PER_TOKEN = 32;
const MIN_BYTES = 1 << 9;
const MAX_BYTES = 1 << 22;

export class NgramFilter {
  readonly bits: Uint8Array;
  private readonly shift: number;
  private n = 0;
  /** Tokens whose n-grams (those ending before it) are marked. */
  private marked = 0;

  /**
   * A filter for a context of up to `contextSize` tokens, over `tokens`: the context as it grows
   * (the lookup's own array, read, not copied; see ContextLookup.context).
   */
  constructor(
    contextSize: number,
    private readonly tokens: readonly number[],
  ) {
    let bytes = MIN_BYTES;
    while (bytes < MAX_BYTES && bytes * 8 < contextSize * BITS_PER_TOKEN) bytes *= 2;
    this.bits = new Uint8Array(bytes);
    this.shift = 32 - Math.log2(bytes * 8);
  }

  /** The n-gram length the bits are for (0 before setLength). */
  get length(): number {
    return this.n;
  }

  /**
   * Marks every n-gram of the context for length `n`: those added since the last call, or all of
   * them again when n changes.
   */
  setLength(n: number): void {
    if (n !== this.n) {
      this.n = n;
      this.marked = 0;
      this.bits.fill(0);
    }
    for (let i = Math.max(this.marked, n); i <= this.tokens.length; i++) this.mark(i - n);
    this.marked = this.tokens.length + 1;
  }

  /** The n - 1 newest tokens: the n-gram of the run's first produced token starts with them. */
  history(): Int32Array | null {
    const k = this.n - 1;
    return k >= 1 && this.tokens.length >= k ? Int32Array.from(this.tokens.slice(-k)) : null;
  }

  private mark(from: number): void {
    const bit = ngramHash(this.tokens, from, this.n) >>> this.shift;
    this.bits[bit >> 3] |= 1 << (bit & 7);
  }
}
