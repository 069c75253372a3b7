// Context lookup drafts: the tokens that followed the newest earlier occurrence of the sequence's
// last n tokens (n = 3, else 2), anywhere in its context (prompt and generated text). A draft from
// the context costs no model layers: small models and texts that quote their context repeat
// themselves, and a verification of k rows costs well under k plain steps.
//
// Incremental: each token is indexed once (one map update per n-gram order), so a lookup is O(1).

const ORDERS = [3, 2] as const;

export class ContextLookup {
  private readonly tokens: number[] = [];
  /** Per n-gram order: the n-gram (as a key) -> the index of its newest last token. */
  private readonly newest = ORDERS.map(() => new Map<string, number>());
  /** Per order: the end of the previous occurrence of the current suffix, or -1. */
  private readonly match = ORDERS.map(() => -1);

  get length(): number {
    return this.tokens.length;
  }

  push(token: number): void {
    this.tokens.push(token);
    const end = this.tokens.length - 1;
    ORDERS.forEach((n, o) => {
      if (end + 1 < n) return;
      const key = this.tokens.slice(end + 1 - n).join(',');
      this.match[o] = this.newest[o].get(key) ?? -1;
      this.newest[o].set(key, end);
    });
  }

  pushAll(tokens: readonly number[]): void {
    for (const t of tokens) this.push(t);
  }

  /**
   * Up to `max` tokens predicted for after the current end: what followed the previous occurrence
   * of the longest matching suffix (empty when the suffix never occurred before).
   */
  draft(max: number): number[] {
    const m = this.match.find((x) => x >= 0);
    if (m === undefined) return [];
    // past the end of the context the continuation repeats with the match's period (a loop)
    const period = this.tokens.length - 1 - m;
    const out: number[] = [];
    for (let i = 0; i < max; i++) out.push(i < period ? this.tokens[m + 1 + i] : out[i - period]);
    return out;
  }
}
