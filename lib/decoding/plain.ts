// Plain autoregressive decoding: one full-model decode per token. Greedy uses the addon's
// argmax (no logits copy); sampling copies the logits row and samples in TypeScript.
import { distribution, Rng, sampleFrom, type ResolvedSampling } from '../sampling.js';
import type { NativeContext, NativeDecodeResult } from '../native.js';
import type { DecodeSession } from './session.js';

export function pickToken(r: NativeDecodeResult, sampling: ResolvedSampling, rng: Rng, row = 0, nVocab = 0): number {
  if (sampling.temperature === 0) return r.argmax[row];
  return sampleFrom(distribution(r.logits!, sampling, row * nVocab, nVocab), rng);
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
  const wantLogits = sampling.temperature > 0;
  let r = first;
  const state = ctx.state(); // read once: this loop is the only writer while it runs
  let position = state.nextPosition;
  for (;;) {
    const token = pickToken(r, sampling, rng, 0, nVocab);
    if (!session.accept(token)) return;
    if (position >= state.contextSize) {
      session.stop('contextFull');
      return;
    }
    session.check();
    r = await ctx.decode({ tokens: Int32Array.of(token), logits: wantLogits });
    position++;
    onCached(token);
  }
}
