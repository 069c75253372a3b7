// The accept rule and what a round hands to the session: shared by the generation driver
// (self-speculative.ts, free-rounds.ts) and the overlapped loop (pipelined.ts).
import type { NativeDecodeResult } from '../native/binding.js';
import type { GrammarState } from './grammar.js';
import { greedyToken, pickToken, type ResolvedSampling, type SamplerRng, sampleFrom, targetDistribution } from './sampling.js';
import type { DecodeSession } from './session.js';
import type { SpeculativeStats } from './types.js';

/**
 * The accept rule. Row j of `verified` is the full model's prediction after drafts[0 .. j).
 * Greedy: drafts are accepted while they equal the full model's argmax. Sampling: draft j is
 * accepted with probability min(1, p_j(d) / q_j(d)); at the first rejection the replacement is
 * sampled from norm(max(0, p_j − q_j)). Returns how many drafts were accepted and the full model's
 * token after them (a correction, or the bonus token when every draft was accepted), or -1 when
 * every draft was accepted and `verified` has no row after the last one.
 * With a grammar (its committed state: before drafts[0]), row j is masked by the state after
 * drafts [0, j). `rejected`: the distribution of a draft that followed `drafts` but was cut because
 * the grammar forbids it; its row's token is then drawn as after a rejection, from
 * norm(max(0, p − q)), which keeps sampling exact (p gives it no mass, so it would be rejected).
 */
export function acceptPrefix(
  verified: Pick<NativeDecodeResult, 'argmax' | 'logits'>,
  drafts: readonly number[],
  draftDists: readonly Float64Array[] | null,
  sampling: ResolvedSampling,
  rng: SamplerRng,
  nVocab: number,
  history: readonly number[] = [],
  grammar: GrammarState | null = null,
  rejected: Float64Array | null = null,
): { accepted: number; next: number } {
  const greedy = sampling.temperature === 0;
  // with penalties, row j's distribution depends on the tokens before it: the history and drafts [0, j)
  const before = (j: number): readonly number[] => (sampling.penalties ? [...history, ...drafts.slice(0, j)] : history);
  // with a grammar, row j's mask is the state after drafts [0, j): a fork follows the accepted drafts
  const state = grammar?.fork() ?? null;
  try {
    for (let j = 0; j < drafts.length; j++) {
      const d = drafts[j];
      if (greedy) {
        const t = greedyToken(verified, sampling, j, nVocab, before(j), state);
        if (t !== d) return { accepted: j, next: t };
      } else {
        const pj = targetDistribution(verified.logits!, sampling, j, nVocab, before(j), state);
        const qj = draftDists![j];
        if (rng.next() * qj[d] >= pj[d]) return { accepted: j, next: sampleFrom(residual(pj, qj), rng) };
      }
      state?.accept(d);
    }
    const k = drafts.length;
    if (k >= verified.argmax.length) return { accepted: k, next: -1 };
    if (rejected && !greedy) {
      const pk = targetDistribution(verified.logits!, sampling, k, nVocab, before(k), state);
      return { accepted: k, next: sampleFrom(residual(pk, rejected), rng) };
    }
    return { accepted: k, next: pickToken(verified as NativeDecodeResult, sampling, rng, k, nVocab, before(k), state) };
  } finally {
    state?.dispose();
  }
}

/** norm(max(0, p − q)): the distribution a rejected draft is resampled from. */
export function residual(p: Float64Array, q: Float64Array): Float64Array {
  const r = new Float64Array(p.length);
  let sum = 0;
  for (let i = 0; i < p.length; i++) {
    const d = p[i] - q[i];
    if (d > 0) {
      r[i] = d;
      sum += d;
    }
  }
  if (sum <= 0) return p; // p == q: any rejection was impossible; keep p for safety
  for (let i = 0; i < r.length; i++) r[i] /= sum;
  return r;
}

/** A free draft's distribution for speculative sampling: a point mass on the drafted token. */
export function pointMass(token: number, nVocab: number): Float64Array {
  const q = new Float64Array(nVocab);
  q[token] = 1;
  return q;
}

/**
 * A round's tokens to the session: the accepted drafts, then the full model's token (`next`, when
 * >= 0), counted in `stats`. Returns false when an accepted draft ended the generation.
 */
export function emitRound(session: DecodeSession, stats: SpeculativeStats, drafts: readonly number[], accepted: number, next: number): boolean {
  for (let j = 0; j < accepted; j++) {
    const before = session.tokens.length;
    const ok = session.accept(drafts[j]);
    if (session.tokens.length > before) stats.accepted++;
    if (!ok) return false;
  }
  if (next >= 0) {
    const before = session.tokens.length;
    session.accept(next);
    if (session.tokens.length > before) stats.corrections++;
  }
  return true;
}

export function newStats(exitLayer: number | null): SpeculativeStats {
  return {
    exitLayer,
    drafted: 0,
    accepted: 0,
    corrections: 0,
    acceptanceRate: 0,
    rounds: 0,
    tokensPerRound: 0,
    draftMs: 0,
    verifyMs: 0,
    samplingMs: 0,
    draftLengths: [],
    sources: {},
  };
}

export function finishStats(stats: SpeculativeStats, generated: number, extraCorrections: number): SpeculativeStats {
  stats.corrections += extraCorrections;
  stats.acceptanceRate = stats.drafted > 0 ? stats.accepted / stats.drafted : 0;
  stats.tokensPerRound = stats.rounds > 0 ? generated / stats.rounds : 0;
  return stats;
}
