// Turns generated tokens into streamed text: token bytes go through a streaming UTF-8 decoder
// (a character may span tokens), and text that could be the start of a stop string is held back
// until it is known not to be one.

export class TextOutput {
  private readonly decoder = new TextDecoder('utf-8');
  private held = '';
  private full = '';
  stopped = false;

  constructor(private readonly stopStrings: readonly string[]) {}

  /** The whole text emitted so far (without a matched stop string). */
  get text(): string {
    return this.full;
  }

  /** Adds one token's bytes; returns the text that is safe to emit now. */
  push(bytes: Uint8Array): string {
    if (this.stopped) return '';
    this.held += this.decoder.decode(bytes, { stream: true });
    return this.release(false);
  }

  /** Whether text held back plus these further token bytes would complete a stop string. */
  wouldStop(extra: readonly Uint8Array[]): boolean {
    if (this.stopStrings.length === 0) return false;
    const d = new TextDecoder('utf-8');
    let text = this.held;
    for (const b of extra) text += d.decode(b, { stream: true });
    return this.stopStrings.some((s) => text.includes(s));
  }

  /** End of generation: returns what was held back. */
  flush(): string {
    if (this.stopped) return '';
    this.held += this.decoder.decode();
    return this.release(true);
  }

  private release(final: boolean): string {
    let cut = -1;
    for (const s of this.stopStrings) {
      const i = this.held.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.stopped = true;
      const out = this.held.slice(0, cut);
      this.held = '';
      this.full += out;
      return out;
    }
    let keep = 0;
    if (!final) {
      // hold back the longest suffix that is a proper prefix of some stop string
      for (const s of this.stopStrings) {
        for (let k = Math.min(s.length - 1, this.held.length); k > keep; k--) {
          if (this.held.endsWith(s.slice(0, k))) {
            keep = k;
            break;
          }
        }
      }
    }
    const out = this.held.slice(0, this.held.length - keep);
    this.held = this.held.slice(this.held.length - keep);
    this.full += out;
    return out;
  }
}
