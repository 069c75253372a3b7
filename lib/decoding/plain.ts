// Plain autoregressive decoding: one full-model decode per token. Greedy decoding runs several
// steps per call in the addon's own loop (decodeRun): a step of a small model costs about as much
// as the hand-off between JavaScript and the libuv pool, which decodeRun pays once per run. Runs
// are sized from the measured step time, so that text still streams every few milliseconds and an
// abort stops within one step. Sampling copies the logits row and samples in TypeScript, one step
// per call.
import { needsLogits, pickToken, type RowMask, type SamplerRng, type ResolvedSampling } from './sampling.js';
import type { NativeRunOptions, NativeSequence } from '../native/binding.js';
import type { DecodeSession } from './session.js';

/** How long one run may take before its tokens stream out (ms). */
const RUN_TARGET_MS = 8;
/** Most steps in one run. */
const MAX_RUN = 64;

/** One plain step: `token` through all layers at the next position; returns the full model's next token (`history`: the tokens up to `token`, for penalties). */
export async function plainStep(
  ctx: NativeSequence,
  token: number,
  sampling: ResolvedSampling,
  rng: SamplerRng,
  nVocab: number,
  history: readonly number[] = [],
  mask: RowMask | null = null,
): Promise<number> {
  const r = await ctx.decode({ tokens: Int32Array.of(token), logits: needsLogits(sampling) });
  return pickToken(r, sampling, rng, 0, nVocab, history, mask);
}

/**
 * Up to `steps` plain greedy steps in one addon call, from `token` (accepted, not yet decoded) at
 * `position`. The session takes the produced tokens; what it does not keep (after a stop) leaves
 * the KV cache. Returns the next position and token, or null when the generation stopped.
 */
export async function plainRun(
  ctx: NativeSequence & { decodeRun: NonNullable<NativeSequence['decodeRun']> },
  session: DecodeSession,
  position: number,
  token: number,
  steps: number,
  onCached: (token: number) => void,
  repeat?: NativeRunOptions['repeat'],
): Promise<{ position: number; token: number; nativeMs: number; firstStepMs?: number; repeat: boolean } | null> {
  const r = await ctx.decodeRun({ token, maxTokens: steps, stopTokens: session.stopTokenIds, repeat });
  const next = takeRunTokens(ctx, session, position, token, r.tokens, onCached);
  return next && { ...next, nativeMs: r.nativeMs, firstStepMs: r.firstStepMs, repeat: r.repeat === true };
}

/**
 * The session takes the tokens a decodeRun produced from `token` at `position`; what it does not
 * keep (after a stop) leaves the KV cache. Returns the next position and token, or null when the
 * generation stopped.
 */
export function takeRunTokens(
  ctx: Pick<NativeSequence, 'removeFrom'>,
  session: DecodeSession,
  position: number,
  token: number,
  tokens: Int32Array,
  onCached: (token: number) => void,
): { position: number; token: number } | null {
  let feed = token;
  for (let j = 0; j < tokens.length; j++) {
    onCached(feed); // decoded at position + j
    if (!session.accept(tokens[j])) {
      ctx.removeFrom(position + j + 1);
      return null;
    }
    feed = tokens[j];
  }
  return { position: position + tokens.length, token: feed };
}

/** Steps for the next run: as many as fit RUN_TARGET_MS at the measured step time. */
export function runLength(stepMs: number): number {
  return Math.max(1, Math.min(MAX_RUN, Math.floor(RUN_TARGET_MS / Math.max(stepMs, 1e-3))));
}
