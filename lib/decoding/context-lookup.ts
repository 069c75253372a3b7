// Context lookup drafts: the longest suffix of the sequence's context (prompt, generated text and,
// in a chat, every earlier turn) that occurred before, and the tokens that followed its newest
// earlier occurrence. A draft from the context costs no model layers: texts that quote their
// context, edits, chat turns and small models repeat themselves, and verifying k rows costs well
// under k plain steps.
//
// The index is a suffix automaton over the token sequence (online construction: amortised O(1)
// states and transitions per token). After each token, the suffix link of the state for the whole
// sequence is the longest suffix that also ends earlier; each state keeps the newest end position
// seen. That update walks suffix links from the new state, bounded by MAX_ENDPOS_WALK, so a token
// costs O(1) even on a long loop ("a a a ..."); past the bound a short suffix may point at an older
// occurrence than the newest, which is still an occurrence.
//
// The automaton is extended lazily: push() only records a token, and the automaton takes the
// tokens it has not seen when a match, a draft or a peek is asked for. Where the addon's loop runs
// the lookup (addon-run.ts, its own index), this one only keeps the tokens.

import type { FreeDraftSource } from './draft-sources.js';

const MAX_ENDPOS_WALK = 64;

export class ContextLookup implements FreeDraftSource {
  readonly name = 'lookup';
  private readonly tokens: number[] = [];
  // states: the length of their longest string, suffix link, newest end position, transitions
  private readonly len: number[] = [0];
  private readonly link: number[] = [-1];
  private readonly end: number[] = [-1];
  private readonly next: Map<number, number>[] = [new Map()];
  private last = 0;
  /** Tokens the automaton has taken (the rest wait in `tokens`). */
  private indexed = 0;
  /** The end of the newest earlier occurrence of the longest repeated suffix, or -1; its length. */
  private matchEnd = -1;
  private matchLen = 0;

  get length(): number {
    return this.tokens.length;
  }

  /** The tokens indexed so far (the array itself: it grows with push). */
  get context(): readonly number[] {
    return this.tokens;
  }

  /** How many of the newest tokens the current draft's occurrence matches (0: no draft). */
  get matchLength(): number {
    this.catchUp();
    return this.matchLen;
  }

  push(token: number): void {
    this.tokens.push(token);
  }

  /** Extends the automaton by the tokens pushed since it was last consulted. */
  private catchUp(): void {
    while (this.indexed < this.tokens.length) this.extend(this.tokens[this.indexed]);
  }

  /** The online construction's step: the automaton of tokens[0, pos] from that of tokens[0, pos). */
  private extend(token: number): void {
    const pos = this.indexed++;
    const cur = this.addState(this.len[this.last] + 1, -1, new Map());
    let p = this.last;
    while (p >= 0 && !this.next[p].has(token)) {
      this.next[p].set(token, cur);
      p = this.link[p];
    }
    if (p < 0) {
      this.link[cur] = 0;
    } else {
      const q = this.next[p].get(token)!;
      if (this.len[p] + 1 === this.len[q]) {
        this.link[cur] = q;
      } else {
        const clone = this.addState(this.len[p] + 1, this.end[q], new Map(this.next[q]));
        this.link[clone] = this.link[q];
        while (p >= 0 && this.next[p].get(token) === q) {
          this.next[p].set(token, clone);
          p = this.link[p];
        }
        this.link[q] = clone;
        this.link[cur] = clone;
      }
    }
    this.last = cur;
    // the longest suffix that ended before: the new state's link, read before `pos` is recorded
    const m = this.link[cur];
    this.matchLen = m > 0 ? this.len[m] : 0;
    this.matchEnd = m > 0 ? this.end[m] : -1;
    for (let s = cur, steps = 0; s > 0 && steps < MAX_ENDPOS_WALK; s = this.link[s], steps++) this.end[s] = pos;
  }

  pushAll(tokens: readonly number[]): void {
    for (const t of tokens) this.push(t);
  }

  /**
   * Whether `tokens` starts with every token indexed so far: then the index of `tokens` is this one
   * with the rest pushed (an index cannot drop tokens, so any other context needs a new one).
   */
  isPrefixOf(tokens: readonly number[]): boolean {
    const n = this.tokens.length;
    if (n > tokens.length) return false;
    for (let i = 0; i < n; i++) if (this.tokens[i] !== tokens[i]) return false;
    return true;
  }

  /**
   * Up to `max` tokens predicted for after the current end: what followed the newest earlier
   * occurrence of the longest repeated suffix (empty when the newest token never occurred before).
   */
  draft(max: number): number[] {
    this.catchUp();
    const m = this.matchEnd;
    if (m < 0) return [];
    // past the end of the context the continuation repeats with the match's period (a loop)
    const period = this.tokens.length - 1 - m;
    const out: number[] = [];
    for (let i = 0; i < max; i++) out.push(i < period ? this.tokens[m + 1 + i] : out[i - period]);
    return out;
  }

  /**
   * Like draft(), for the sequence extended by `extra` tokens that are not added (early-exit drafts
   * not yet verified): the longest suffix of sequence + extra that occurs in the sequence, and what
   * followed its newest occurrence there. The walk costs O(extra.length) amortised.
   */
  peek(extra: readonly number[], max: number): { tokens: number[]; matchLength: number } {
    this.catchUp();
    let v = this.last;
    let l = this.len[v];
    for (const c of extra) {
      while (v > 0 && !this.next[v].has(c)) {
        v = this.link[v];
        l = this.len[v];
      }
      const to = this.next[v].get(c);
      if (to === undefined) {
        l = 0;
      } else {
        v = to;
        l++;
      }
    }
    if (l === 0 || extra.length === 0) return { tokens: [], matchLength: 0 };
    const e = this.end[v]; // the newest end of the match inside the sequence
    const seq = (i: number) => (i < this.tokens.length ? this.tokens[i] : extra[i - this.tokens.length]);
    const period = this.tokens.length + extra.length - 1 - e;
    const out: number[] = [];
    for (let i = 0; i < max; i++) out.push(i < period ? seq(e + 1 + i) : out[i - period]);
    return { tokens: out, matchLength: l };
  }

  private addState(len: number, end: number, next: Map<number, number>): number {
    this.len.push(len);
    this.link.push(-1);
    this.end.push(end);
    this.next.push(next);
    return this.len.length - 1;
  }
}
