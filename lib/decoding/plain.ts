// Plain autoregressive decoding: one full-model decode per token. Greedy uses the addon's
// argmax (no logits copy); sampling copies the logits row and samples in TypeScript.
import { pickToken, Rng, type ResolvedSampling } from '../sampling.js';
import type { NativeContext, NativeDecodeResult } from '../native.js';
import type { DecodeSession } from './session.js';

/** One plain step: `token` through all layers at the next position; returns the full model's next token. */
export async function plainStep(ctx: NativeContext, token: number, sampling: ResolvedSampling, rng: Rng, nVocab: number): Promise<number> {
  const r = await ctx.decode({ tokens: Int32Array.of(token), logits: sampling.temperature > 0 });
  return pickToken(r, sampling, rng, 0, nVocab);
}

export async function plainLoop(
  ctx: NativeContext,
  first: NativeDecodeResult,
  session: DecodeSession,
  sampling: ResolvedSampling,
  nVocab: number,
  onCached: (token: number) => void,
): Promise<void> {
  const rng = new Rng(sampling.seed);
  const state = ctx.state(); // read once: this loop is the only writer while it runs
  let position = state.nextPosition;
  let token = pickToken(first, sampling, rng, 0, nVocab);
  for (;;) {
    if (!session.accept(token)) return;
    if (position >= state.contextSize) {
      session.stop('contextFull');
      return;
    }
    session.check();
    const next = await plainStep(ctx, token, sampling, rng, nVocab);
    position++;
    onCached(token);
    token = next;
  }
}
