// Prediction drafts ("predicted outputs"): the caller passes the text it expects the model to
// write, such as the unchanged parts of a file being edited, and rounds draft the prediction's next
// tokens. The drafts follow the prediction while the output agrees with it. After a mismatch (an
// edit), the output's newest tokens are looked up in the prediction, and the drafts continue after
// their first occurrence past the last agreed position, so that an edited word costs one round.

import type { NativePredictionState } from '../native/binding.js';
import type { FreeDraftSource } from './draft-sources.js';

/** Newest output tokens that must agree with the prediction before drafts resume after a mismatch. */
const REALIGN_ORDERS = [4, 3, 2] as const;

export class PredictionDrafts implements FreeDraftSource {
  readonly name = 'prediction';
  /** Output tokens so far (only the newest few are used). */
  private readonly recent: number[] = [];
  /** Where in the prediction the next output token is expected; -1 while unaligned. */
  private cursor = 0;
  /** The furthest prediction position agreed with so far: re-alignment searches after it. */
  private agreed = 0;
  /** Output tokens in a row that followed the prediction (the drafts' confidence). */
  private run = 0;
  /** Per order: the prediction's n-grams -> their start positions, ascending. */
  private readonly index = REALIGN_ORDERS.map(() => new Map<string, number[]>());
  /** The prediction as the addon's loop takes it (made once). */
  private tokens: Int32Array | null = null;

  constructor(private readonly prediction: readonly number[]) {
    REALIGN_ORDERS.forEach((n, o) => {
      for (let i = 0; i + n <= prediction.length; i++) {
        const key = prediction.slice(i, i + n).join(',');
        const at = this.index[o].get(key);
        if (at) at.push(i);
        else this.index[o].set(key, [i]);
      }
    });
  }

  /** How many output tokens in a row agreed with the prediction (0 after a mismatch). */
  get matchLength(): number {
    return this.cursor >= 0 ? this.run : 0;
  }

  /** One generated token. */
  push(token: number): void {
    this.recent.push(token);
    if (this.recent.length > 8) this.recent.shift();
    if (this.cursor >= 0 && this.prediction[this.cursor] === token) {
      this.cursor++;
      this.agreed = Math.max(this.agreed, this.cursor);
      this.run++;
      return;
    }
    this.run = 0;
    this.cursor = this.realign();
  }

  pushAll(tokens: readonly number[]): void {
    for (const t of tokens) this.push(t);
  }

  /**
   * Where the output stands, for the addon's loop (addon-run.ts), which follows the prediction with
   * these rules (native/prediction-cursor.h); this source is given the run's tokens afterwards.
   */
  addonState(): NativePredictionState {
    this.tokens ??= Int32Array.from(this.prediction);
    return { tokens: this.tokens, cursor: this.cursor, agreed: this.agreed, run: this.run, recent: Int32Array.from(this.recent) };
  }

  /** Up to `max` drafts: the prediction's tokens after the aligned position. */
  draft(max: number): number[] {
    if (this.cursor < 0) return [];
    return this.prediction.slice(this.cursor, this.cursor + max);
  }

  /** The prediction position after the first occurrence of the newest output tokens past the agreed position, or -1. */
  private realign(): number {
    for (const [o, n] of REALIGN_ORDERS.entries()) {
      if (this.recent.length < n) continue;
      const starts = this.index[o].get(this.recent.slice(-n).join(','));
      // the first occurrence that ends at or after the agreed part: the output goes on from there
      // (an n-gram ending exactly there is the output repeating the prediction's last agreed words)
      const at = starts?.find((s) => s + n >= this.agreed);
      if (at !== undefined) {
        this.run = n;
        return at + n;
      }
    }
    return -1;
  }
}
