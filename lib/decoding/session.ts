// What every decoding loop shares: accepting tokens one at a time (EOS, stop strings, token
// limit, streaming text), abort checks, and timings. The loops (plain, self-speculative) only
// decide which tokens come next.
import { abortReason, DisposedError } from '../native/errors.js';
import type { GenerationChunk, StopReason } from './types.js';
import type { NativeModel } from '../native/binding.js';
import { TextOutput } from '../util/text-output.js';
import type { GrammarState } from './grammar.js';

export class DecodeSession {
  readonly tokens: number[] = [];
  stopReason: StopReason | null = null;
  private readonly out: TextOutput;
  readonly hasStopStrings: boolean;
  /** The extra end-of-generation tokens, for the addon's own loop (which also stops at the model's). */
  readonly stopTokenIds: Int32Array;
  private readonly pendingTokens: number[] = [];
  /** The generation's grammar: every token the session takes advances it (null: none). */
  grammar: GrammarState | null = null;

  constructor(
    private readonly model: NativeModel,
    readonly maxTokens: number,
    stopStrings: readonly string[],
    private readonly emit: (chunk: GenerationChunk) => void,
    private readonly signal: AbortSignal | undefined,
    private readonly isDisposed: () => boolean,
    /** Tokens that end the generation like the model's own end-of-generation tokens (a chat template's end of turn). */
    private readonly stopTokens: ReadonlySet<number> = new Set(),
  ) {
    this.out = new TextOutput(stopStrings);
    this.hasStopStrings = stopStrings.length > 0;
    this.stopTokenIds = Int32Array.from(stopTokens);
  }

  /** Whether accepting these tokens would complete a stop string (drafting stops there). */
  wouldStop(tokens: readonly number[]): boolean {
    return this.out.wouldStop(tokens.map((t) => this.model.tokenPiece(t, false)));
  }

  /** Tokens the session still takes before its token limit. */
  get remaining(): number {
    return this.maxTokens - this.tokens.length;
  }

  isEog(token: number): boolean {
    return this.model.isEog(token) || this.stopTokens.has(token);
  }

  get done(): boolean {
    return this.stopReason !== null;
  }

  get text(): string {
    return this.out.text;
  }

  /** Throws the abort reason, or a disposed error, between decode steps. */
  check(): void {
    if (this.signal?.aborted) throw abortReason(this.signal);
    if (this.isDisposed()) throw new DisposedError('generate (the context was disposed during generation)');
  }

  /** Appends one generated token; returns false when the generation must stop with it. */
  accept(token: number): boolean {
    if (this.done) return false;
    this.check(); // nothing is emitted after an abort or a dispose, even from a step already computed
    if (this.isEog(token)) {
      this.stopReason = 'eos';
      return false;
    }
    this.grammar?.accept(token);
    this.tokens.push(token);
    this.pendingTokens.push(token);
    const text = this.out.push(this.model.tokenPiece(token, false));
    if (text.length > 0 || this.out.stopped) this.flushChunk(text);
    if (this.out.stopped) {
      this.stopReason = 'stopString';
      return false;
    }
    if (this.tokens.length >= this.maxTokens) {
      this.stopReason = 'maxTokens';
      return false;
    }
    return true;
  }

  stop(reason: StopReason): void {
    if (!this.done) this.stopReason = reason;
  }

  /** End of generation: emits text that was held back. */
  finish(): void {
    const text = this.out.flush();
    if (text.length > 0 || this.pendingTokens.length > 0) this.flushChunk(text);
  }

  private flushChunk(text: string): void {
    this.emit({ text, tokens: this.pendingTokens.splice(0) });
  }
}
