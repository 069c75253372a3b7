// The object `generate()` returns: an async iterable of text chunks that is filled by a running
// generation, plus `result`, a Promise of the final text, tokens, stop reason and timings.
// The generation runs whether or not anyone iterates.

export type StopReason = 'eos' | 'maxTokens' | 'stopString' | 'contextFull';

export interface GenerationChunk {
  /** Text that became final with this chunk (may be empty while a UTF-8 character or a possible stop string is pending). */
  text: string;
  /** The tokens this chunk adds. */
  tokens: number[];
}

/** What one draft source proposed and what the full model kept of it. */
export interface SourceStats {
  /** Rounds whose first draft came from this source. */
  rounds: number;
  drafted: number;
  accepted: number;
  /** Per draft position in the round (0 = the first draft): drafts from this source there, and the accepted ones. */
  draftedByPosition: number[];
  acceptedByPosition: number[];
  /** Drafting time (0 for free sources) and the verification time of the rounds this source began. */
  draftMs: number;
  verifyMs: number;
}

export interface SpeculativeStats {
  /** The early exit's layer; null when only free drafts (lookup, prediction) ran. */
  exitLayer: number | null;
  /** Draft tokens proposed by early exit. */
  drafted: number;
  /** Draft tokens the full model accepted. */
  accepted: number;
  /** Tokens the full model produced itself (a correction at the first disagreement, or the bonus token). */
  corrections: number;
  /** accepted / drafted (0 when nothing was drafted). */
  acceptanceRate: number;
  /** Draft / verify rounds. */
  rounds: number;
  /** Generated tokens per round. */
  tokensPerRound: number;
  draftMs: number;
  verifyMs: number;
  samplingMs: number;
  /** The draft length of each round (adaptive drafting changes it). */
  draftLengths: number[];
  /** With overlap: rounds whose drafts were made while the previous round was verified. */
  pipelinedRounds?: number;
  /** With lookup: rounds drafted from the context, their draft tokens and the accepted ones (not in drafted/accepted). */
  lookup?: { rounds: number; drafted: number; accepted: number };
  /**
   * Per draft source (early exit, context lookup, the caller's prediction): what it drafted, what
   * was accepted, per draft position, and the time of its rounds. A round can mix sources (a lookup
   * draft that early exit continues): each draft counts for its own source.
   */
  sources: { earlyExit?: SourceStats; lookup?: SourceStats; prediction?: SourceStats };
}

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
    if (!this.finished) this.stopper.abort(reason ?? new DOMException('The generation was aborted', 'AbortError'));
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
