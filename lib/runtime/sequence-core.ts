// One sequence's generation state inside a Context, and the steps of a generation that only touch
// that state: reusing the cached prompt prefix, decoding the rest of the prompt, and leaving the
// KV cache consistent after a failure. Context.run() strings them together.
import type { DecodeSession } from '../decoding/session.js';
import { needsLogits, type ResolvedSampling } from '../decoding/sampling.js';
import type { NativeDecodeResult, NativeSequence } from '../native/binding.js';
import type { DraftHead } from '../draft-head/draft-head.js';
import { ContextFullError } from '../native/errors.js';
import type { NativeGrammar } from '../native/binding.js';
import type { ResolvedFreeDrafts } from '../decoding/draft-sources.js';
import type { ResolvedSelfSpeculative } from '../decoding/self-speculative.js';
import type { GenerationMemory } from '../decoding/generation-memory.js';

/** One sequence's generation state: its view of the addon, its cached prompt prefix, what runs on it. */
export interface SequenceCore {
  readonly index: number;
  readonly view: NativeSequence;
  /** Tokens held at positions [0, prefix.length) when known, for prompt-prefix reuse; null when unknown. */
  prefix: number[] | null;
  running: string | null;
  /** The draft head its running self-speculative generation drafts with (undefined: none running). */
  head: DraftHead | null | undefined;
  /** What its generations' adaptive choices measured, for the next generation. */
  readonly memory: GenerationMemory;
}

/**
 * Keeps the longest cached prefix of `promptTokens` (at least the last prompt token is decoded
 * again, for its logits) and drops the rest of the sequence. Returns how many tokens were kept.
 */
export function reusePrefix(core: SequenceCore, promptTokens: readonly number[]): number {
  const cached = core.prefix ?? [];
  let reused = 0;
  while (reused < cached.length && reused < promptTokens.length && cached[reused] === promptTokens[reused]) reused++;
  if (reused === promptTokens.length) reused--;
  if (!core.prefix) reused = 0;
  core.view.removeFrom(reused);
  core.prefix = promptTokens.slice(0, reused);
  return reused;
}

/** Decodes promptTokens[from..] with all layers, a batch at a time; the last batch's result has the first logits. */
export async function decodePrompt(
  core: SequenceCore,
  promptTokens: readonly number[],
  from: number,
  sampling: ResolvedSampling,
  session: DecodeSession,
): Promise<NativeDecodeResult> {
  const { batchSize } = core.view.state();
  let first: NativeDecodeResult | undefined;
  for (let i = from; i < promptTokens.length; i += batchSize) {
    session.check();
    const chunk = promptTokens.slice(i, i + batchSize);
    const last = i + batchSize >= promptTokens.length;
    first = await core.view.decode({
      tokens: Int32Array.from(chunk),
      outputs: last ? 'last' : 'none',
      logits: last && needsLogits(sampling),
      probs: false,
    });
    core.prefix?.push(...chunk);
  }
  if (!first) throw new Error('decodePrompt: nothing to decode'); // reusePrefix always leaves one token
  return first;
}

/**
 * After a failed generation: drops unverified drafts so the prefix is what is verified. A busy
 * single-sequence addon (a native step still settling) cannot be asked: the prefix is then unknown.
 */
export function leaveConsistent(core: SequenceCore, shared: boolean): void {
  try {
    const st = core.view.state();
    if (!st.busy || shared) {
      // with several sequences the scheduler applies it when the addon is free
      core.view.removeFrom(st.verifiedPosition);
      if (core.prefix) core.prefix.length = Math.min(core.prefix.length, st.verifiedPosition);
    } else {
      core.prefix = null;
    }
  } catch {
    core.prefix = null;
  }
}

/** Room for the prompt and one generated token, or a ContextFullError (an empty prompt is a RangeError). */
export function checkPromptFits(core: SequenceCore, promptLength: number): void {
  if (promptLength === 0) throw new RangeError('generate: the prompt is empty (no tokens)');
  const { contextSize } = core.view.state();
  if (promptLength + 1 > contextSize) {
    throw new ContextFullError(`generate: the prompt has ${promptLength} tokens; the context holds ${contextSize}`);
  }
}

/** What one generate() call resolved its options into (once, before it starts). */
export interface GenerationPlan {
  sampling: ResolvedSampling;
  maxTokens: number;
  stop: readonly string[];
  stopTokens: ReadonlySet<number>;
  spec: ResolvedSelfSpeculative | null;
  free: ResolvedFreeDrafts | null;
  /** The caller's signal combined with generation.abort() and the loop's own stop. */
  signal: AbortSignal;
  /** The grammar's start state (grammar or jsonSchema), owned by the generation. */
  grammar: NativeGrammar | null;
}
