// The object `generate()` returns: an async iterable of text chunks that is filled by a running
// generation, plus `result`, a Promise of the final text, tokens, stop reason and timings.
// The generation runs whether or not anyone iterates.

// the types the decoding loops fill in live with them (decoding/types.ts); re-exported here for users
import type { GenerationChunk, SpeculativeStats, StopReason } from '../decoding/types.js';
import { AbortedError } from '../native/errors.js';

export type { GenerationChunk, SourceStats, SpeculativeStats, StopReason } from '../decoding/types.js';

export interface GenerationTimings {
  promptTokens: number;
  /** Prompt tokens that were already in the KV cache (prefix reuse). */
  reusedPromptTokens: number;
  generatedTokens: number;
  promptMs: number;
  generateMs: number;
  totalMs: number;
  /** Generated tokens per second, prompt excluded. */
  tokensPerSecond: number;
}

export interface GenerationResult {
  text: string;
  tokens: number[];
  stopReason: StopReason;
  timings: GenerationTimings;
  /** Present when self-speculative decoding ran. */
  speculative?: SpeculativeStats;
}

export class Generation implements AsyncIterable<GenerationChunk> {
  /** Settles when the generation ends: the final result, or the error that stopped it (an AbortError on abort). */
  readonly result: Promise<GenerationResult>;
  private readonly queue: GenerationChunk[] = [];
  private wake: (() => void) | null = null;
  private finished = false;
  private failure: unknown = null;
  private readonly stopper = new AbortController();

  /** @internal `run` stops early when `stop` aborts (abort(), or leaving a for-await loop). */
  constructor(run: (emit: (chunk: GenerationChunk) => void, stop: AbortSignal) => Promise<GenerationResult>) {
    this.result = run((chunk) => {
      this.queue.push(chunk);
      this.notify();
    }, this.stopper.signal).then(
      (r) => {
        this.finished = true;
        this.notify();
        return r;
      },
      (e) => {
        this.finished = true;
        this.failure = e;
        this.notify();
        throw e;
      },
    );
    // a caller that only iterates must not see an unhandled rejection of `result`
    this.result.catch(() => {});
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /**
   * Stops the generation: the running decode ends at its next graph node, the context is free again
   * and `result` rejects with `reason` (default: an AbortError). Nothing happens once it has ended.
   */
  abort(reason?: unknown): void {
    if (!this.finished) this.stopper.abort(reason ?? new AbortedError('the generation was aborted'));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<GenerationChunk> {
    try {
      for (;;) {
        if (this.queue.length > 0) {
          yield this.queue.shift()!;
          continue;
        }
        if (this.finished) {
          if (this.failure) throw this.failure;
          return;
        }
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      // leaving the loop early (break, return, a throw in its body) ends the generation: nobody reads the rest
      this.abort();
    }
  }

  /** Waits for the end and returns the whole text. */
  async text(): Promise<string> {
    return (await this.result).text;
  }
}
