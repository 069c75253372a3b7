// Pipelined self-speculative decoding: the next round is drafted while this one is verified.
//
// Why: over llama.cpp's RPC backend the layers above the exit live on other hosts, so a
// verification is mostly this host waiting on the network, while the draft layers, which are here,
// sit idle. Drafting the next round in that wait takes the drafts off the critical path.
//
// How: a second, draft-only context on this host (the drafter) runs layers [0, E) and the LM
// head; the generation's own context (the verifier) runs layers [E, N) on the drafter's layer-E
// states (split decodes) and never runs layers [0, E). Two contexts, because one llama.cpp context
// runs one decode at a time.
//
// A round drafts m tokens t1..tm after `last` (the drafter decodes last, t1..t(m-1)) and the
// verifier scores those m rows: row j is the full model's token after t1..tj, so it checks t(j+1),
// and tm is checked by the last row, with no bonus row after it. While the verifier works, the
// drafter drafts from tm as if every draft will be accepted. If every draft is accepted, tm is the
// next round's `last` and that chain is the next round's drafts; otherwise it is dropped and both
// contexts roll back to what was accepted. The accept rule is the unpipelined loop's
// (acceptPrefix), so greedy output is plain greedy output and sampling keeps the full model's
// distribution (the chain's drafts were drawn from the distribution they are checked against).
import type { SpeculativeStats } from './types.js';
import type { NativeContext, NativeDecodeResult, NativeSequence } from '../native/binding.js';
import { distribution, pickToken, SamplerRng, type ResolvedSampling } from './sampling.js';
import { acceptPrefix, emitRound, newStats } from './accept.js';
import { driveRounds, type RoundStrategy } from './driver.js';
import type { ResolvedSelfSpeculative } from './self-speculative.js';
import type { DecodeSession } from './session.js';

/** One round's drafts, made by the drafter from `last`. */
interface Chain {
  tokens: number[];
  /** Sampling: the distribution each draft was drawn from. */
  dists: Float64Array[] | null;
  /** Layer-E states of the tokens the drafter decoded (last, then drafts): the verifier's rows. */
  hidden: Float32Array;
}

interface Loop {
  drafter: NativeContext;
  session: DecodeSession;
  sampling: ResolvedSampling;
  spec: ResolvedSelfSpeculative;
  rng: SamplerRng;
  nVocab: number;
  nEmbd: number;
}

/**
 * Runs the generation after the prompt: `verifier` holds the prompt (all layers), `first` is the
 * prompt's last decode, and `prefilled` settles when the drafter holds the prompt's layers [0, E)
 * (prefillDrafter). The verifier's generated positions end up holding layers [E, N) only, so this
 * removes them when it returns: the cache keeps the prompt.
 */
export async function pipelinedLoop(
  verifier: NativeSequence,
  drafter: NativeContext,
  prefilled: Promise<void>,
  first: NativeDecodeResult,
  session: DecodeSession,
  sampling: ResolvedSampling,
  nVocab: number,
  nEmbd: number,
  spec: ResolvedSelfSpeculative,
): Promise<SpeculativeStats> {
  const s: Loop = { drafter, session, sampling, spec, rng: new SamplerRng(sampling.seed), nVocab, nEmbd };
  const stats = newStats(spec.exitLayer);
  stats.pipelinedRounds = 0;
  const { contextSize, nextPosition } = verifier.state();
  const promptEnd = nextPosition;
  let chain: Chain | null = null; // the drafts of the next round, drawn while this one was verified
  let ahead: Promise<Chain> | null = null; // the drafter's chain for the next round, in flight
  const overlapped: RoundStrategy = {
    async round({ p, last }, room) {
      // a round emits up to m tokens and writes m cells in each context
      const m = Math.min(spec.draftTokens + 1, room + 1);
      const t0 = performance.now();
      if (chain) stats.pipelinedRounds = (stats.pipelinedRounds ?? 0) + 1;
      const c: Chain = chain ?? (await draw(s, last, m));
      const t1 = performance.now();
      const verifying = verifier.decode({
        hidden: c.hidden,
        layers: [spec.exitLayer, spec.layerCount],
        position: p,
        outputs: 'all',
        logits: sampling.temperature > 0,
      });
      // the next round's drafts, in case every draft of this one is accepted
      const T = c.tokens.length;
      const tail = c.tokens[T - 1];
      const roomAfter = Math.min(session.maxTokens - session.tokens.length - T, contextSize - p - T);
      // (when the drafter decoded its last draft too, there is a bonus row and no chain to continue)
      ahead = c.hidden.length === T * s.nEmbd && roomAfter >= 1 && !session.isEog(tail) ? draw(s, tail, Math.min(spec.draftTokens + 1, roomAfter)) : null;
      const [v, next] = await settleBoth(verifying, ahead);
      ahead = null;
      const t2 = performance.now();
      const { accepted, next: full } = acceptPrefix(v, c.tokens, c.dists, sampling, s.rng, nVocab);
      const kept = full >= 0 ? accepted : accepted - 1; // positions p .. p + kept hold last and the kept drafts
      const cut = p + kept + 1;
      const continues = full < 0 && next !== null;
      verifier.removeFrom(cut);
      if (!continues) drafter.removeFrom(cut);
      drafter.markVerified(cut);
      stats.draftMs += t1 - t0;
      stats.verifyMs += t2 - t1;
      stats.drafted += T;
      stats.draftLengths.push(T);
      const going = emitRound(session, stats, c.tokens, accepted, full);
      stats.samplingMs += performance.now() - t2;
      if (!going) return null;
      chain = continues ? next : null;
      return { p: cut, last: full >= 0 ? full : tail };
    },
  };
  try {
    await prefilled;
    const last = pickToken(first, sampling, s.rng, 0, nVocab);
    return await driveRounds(session, stats, contextSize, { p: nextPosition, last }, overlapped);
  } finally {
    // the drafter must be idle before anything else runs on it; a failed chain no longer matters
    if (ahead) await (ahead as Promise<Chain>).catch(() => undefined);
    const st = verifier.state();
    if (!st.busy && !st.disposed) verifier.removeFrom(promptEnd);
  }
}

/**
 * The prompt through the drafter's layers [0, E), so that its drafts attend to it. It can run while
 * the verifier decodes the prompt (another context); `check` throws when the generation stops.
 */
export async function prefillDrafter(drafter: NativeContext, tokens: readonly number[], exitLayer: number, check: () => void): Promise<void> {
  drafter.clear();
  const { batchSize } = drafter.state();
  for (let i = 0; i < tokens.length; i += batchSize) {
    check();
    await drafter.decode({ tokens: Int32Array.from(tokens.slice(i, i + batchSize)), layers: [0, exitLayer], outputs: 'none' });
  }
  drafter.markVerified(tokens.length);
}

/** Up to m drafts after `last` from the drafter, with the layer-E states the verifier needs. */
async function draw(s: Loop, last: number, m: number): Promise<Chain> {
  const { sampling, spec } = s;
  const greedy = sampling.temperature === 0;
  const r = await s.drafter.draft({
    token: last,
    layer: spec.exitLayer,
    maxTokens: m,
    minProbability: spec.minDraftProbability,
    returnHidden: true,
    temperature: sampling.temperature,
    uniforms: greedy ? undefined : Float64Array.from({ length: m }, () => s.rng.next()),
  });
  const tokens = Array.from(r.tokens);
  // drafts are drawn from softmax(logits / T) without top-k/top-p (see self-speculative.ts)
  const draftSampling = { ...sampling, topK: 0, topP: 1, minP: 0 };
  const dists = greedy ? null : tokens.map((_, j) => distribution(r.logits!, draftSampling, j * s.nVocab, s.nVocab));
  return { tokens, dists, hidden: r.hidden! };
}

/** Both results; when either fails, the first failure, after both have settled. */
async function settleBoth<A, B>(a: Promise<A>, b: Promise<B> | null): Promise<[A, B | null]> {
  const [ra, rb] = await Promise.allSettled([a, b ?? Promise.resolve(null)]);
  if (ra.status === 'rejected') throw ra.reason;
  if (rb.status === 'rejected') throw rb.reason;
  return [ra.value, rb.value as B | null];
}
