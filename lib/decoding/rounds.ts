// The round machinery the driver's strategies share: the loop's state, the early-exit draft and
// its verification, a plain step, and committing a round's tokens to the KV cache and the session.
import type { NativeDecodeResult, NativeDraftOptions, NativeDraftResult, NativeSequence } from '../native/binding.js';
import { distribution, needsLogits, type ResolvedSampling, type SamplerRng } from './sampling.js';
import { emitRound, pointMass } from './accept.js';
import { allowedPrefix } from './grammar.js';
import type { DraftPolicy } from './draft-policy.js';
import type { FreeRounds } from './free-rounds.js';
import { plainStep } from './plain.js';
import type { ResolvedSelfSpeculative } from './self-speculative.js';
import type { DecodeSession } from './session.js';
import type { SpeculativeStats } from './types.js';

/** What one round's draft call produced. */
export interface Drafts {
  tokens: number[];
  /** Sampling: the distribution each draft was sampled from (one-hot for a free draft). */
  dists: Float64Array[] | null;
  /** The last draft's layers [0, E) are in the KV cache, so a verification can score the position after it. */
  lastDecoded: boolean;
  /** Sampling: the distribution of a draft cut after `tokens` because the grammar forbids it (acceptPrefix's `rejected`). */
  rejected?: Float64Array | null;
}

export interface LoopState {
  ctx: NativeSequence;
  session: DecodeSession;
  sampling: ResolvedSampling;
  nVocab: number;
  /** null: free drafts only (no early exit) */
  spec: ResolvedSelfSpeculative | null;
  rng: SamplerRng;
  policy: DraftPolicy | null;
  stats: SpeculativeStats;
  onCached: (token: number) => void;
  free: FreeRounds | null;
  /** The prompt (the penalties look at its newest tokens too). */
  promptTokens: readonly number[];
}

export function ema(previous: number, value: number): number {
  return Number.isNaN(previous) ? value : 0.8 * previous + 0.2 * value;
}

/** Drafts up to a completed stop string (later drafts are wasted; the stop string ends the generation). */
export function untilStop(session: DecodeSession, tokens: number[]): number[] {
  if (!session.hasStopStrings) return tokens;
  const end = tokens.findIndex((_, j) => session.wouldStop(tokens.slice(0, j + 1)));
  return end >= 0 ? tokens.slice(0, end + 1) : tokens;
}

/** The newest tokens the penalties look at: the prompt's and the session's (empty without penalties). */
export function penaltyHistory(s: LoopState): number[] {
  const p = s.sampling.penalties;
  if (!p) return [];
  const fromSession = s.session.tokens.slice(-p.lastN);
  const fromPrompt = fromSession.length < p.lastN ? s.promptTokens.slice(Math.max(0, s.promptTokens.length - (p.lastN - fromSession.length))) : [];
  return [...fromPrompt, ...fromSession];
}

/** A zero-length draft: one plain step with the full model. Returns the next `last`. */
export async function plainRound(s: LoopState, last: number): Promise<number> {
  const t0 = performance.now();
  const next = await plainStep(s.ctx, last, s.sampling, s.rng, s.nVocab, penaltyHistory(s), s.session.grammar);
  const ms = performance.now() - t0;
  s.policy?.observeFullStep(ms);
  s.free?.cost.observePlainRun(1, ms, s.free.afterRound, undefined, s.session.tokens.length);
  if (s.free) s.free.afterRound = false;
  s.stats.verifyMs += ms;
  s.stats.draftLengths.push(0);
  s.onCached(last);
  const before = s.session.tokens.length;
  if (s.session.accept(next)) s.stats.corrections++;
  else s.stats.corrections += s.session.tokens.length - before;
  return next;
}

/** The draft call's options: up to `want` early-exit drafts after `last`, after `free` drafts when given. */
function draftOptions(s: LoopState, last: number, want: number, free: readonly number[]): NativeDraftOptions {
  const spec = s.spec!;
  const greedy = s.sampling.temperature === 0;
  // a bonus row (the full model's token after the last draft) needs the last draft's layers [0, E);
  // a probe of the adaptive policy skips it: it only measures acceptance, as cheaply as it can
  const finish = spec.verification === 'cached' && !s.policy?.probing;
  return {
    token: last,
    prefix: free.length > 0 ? Int32Array.from(free) : undefined,
    layer: spec.exitLayer,
    maxTokens: want,
    minProbability: spec.minDraftProbability,
    finish,
    temperature: s.sampling.temperature,
    uniforms: greedy ? undefined : Float64Array.from({ length: want }, () => s.rng.next()),
  };
}

/** The drafts of a draft call: the free ones first, each with a point mass as its distribution. */
function toDrafts(s: LoopState, r: NativeDraftResult, free: readonly number[]): Drafts {
  const { sampling, session } = s;
  let tokens = [...free, ...r.tokens];
  let lastDecoded = r.lastDecoded;
  // drafts after a completed stop string are wasted: verify up to it (the next draft's decode fed it)
  const cut = untilStop(session, tokens);
  if (cut.length < tokens.length) {
    tokens = cut;
    lastDecoded = true;
  }
  // the addon samples drafts from softmax(logits / T) without top-k/top-p (speculative sampling is
  // exact for any draft distribution, as long as it is the one the draft was drawn from)
  const draftSampling = { ...sampling, topK: 0, topP: 1, minP: 0 };
  const dists =
    sampling.temperature === 0
      ? null
      : tokens.map((t, j) => (j < free.length ? pointMass(t, s.nVocab) : distribution(r.logits!, draftSampling, (j - free.length) * s.nVocab, s.nVocab)));
  return { tokens, dists, lastDecoded };
}

/**
 * Up to `want` early-exit drafts after `last`, in one native call; after `free` drafts (a lookup's
 * or a prediction's, whose tokens pass layers [0, E) in the same call) when given. The free drafts
 * come first in the result, each with a point mass as its distribution.
 */
export async function draft(s: LoopState, last: number, want: number, free: readonly number[] = []): Promise<Drafts> {
  return toDrafts(s, await s.ctx.draft(draftOptions(s, last, want, free)), free);
}

/** A drafted round's calls: its early-exit drafts, the drafts verified (after any continuation and cut), and the rows. */
export interface DraftedRound {
  /** The draft call's drafts (the free ones first). */
  early: Drafts;
  /** What was verified: `early`, continued and cut. */
  d: Drafts;
  v: NativeDecodeResult;
  draftMs: number;
  verifyMs: number;
}

/**
 * A round's drafts (draft()) and their verification (verify()). On the addon's own sequence with
 * cached verification and no `continueDrafts`, both run in one call (draftVerify: one hand-off
 * instead of two); the addon then verifies every decoded draft and the rows of drafts cut here (a
 * stop string, the grammar) are dropped, and the call's time is split between drafting and
 * verifying in proportion to the addon's own times (the policy's cost model keeps them apart).
 * `continueDrafts` may extend the early-exit drafts before the verification (a lookup
 * continuation, one more call), which needs the separate calls.
 */
export async function draftAndVerify(
  s: LoopState,
  p: number,
  last: number,
  want: number,
  free: readonly number[] = [],
  continueDrafts?: (early: Drafts) => Promise<Drafts | null>,
): Promise<DraftedRound> {
  const t0 = performance.now();
  if (s.ctx.draftVerify && s.spec!.verification === 'cached' && !continueDrafts) {
    const r = await s.ctx.draftVerify({ ...draftOptions(s, last, want, free), logits: needsLogits(s.sampling) });
    const ms = performance.now() - t0;
    const d = cutForbidden(s, toDrafts(s, r.draft, free));
    const v = firstRows(r.verification, d.lastDecoded ? d.tokens.length + 1 : d.tokens.length, s.nVocab);
    const verifyNative = r.verification.nativeMs ?? 0;
    const share = r.draft.nativeMs + verifyNative > 0 ? r.draft.nativeMs / (r.draft.nativeMs + verifyNative) : 0.5;
    return { early: d, d, v, draftMs: ms * share, verifyMs: ms * (1 - share) };
  }
  const early = await draft(s, last, want, free);
  const d = cutForbidden(s, (await continueDrafts?.(early)) ?? early);
  const t1 = performance.now();
  const v = await verify(s, p, last, d);
  return { early, d, v, draftMs: t1 - t0, verifyMs: performance.now() - t1 };
}

/** The first `rows` rows of a decode's result. */
function firstRows(v: NativeDecodeResult, rows: number, nVocab: number): NativeDecodeResult {
  if (v.argmax.length === rows) return v;
  return {
    argmax: v.argmax.subarray(0, rows),
    nativeMs: v.nativeMs,
    maxProb: v.maxProb?.subarray(0, rows),
    logits: v.logits?.subarray(0, rows * nVocab),
  };
}

/**
 * The drafts up to the first one the grammar forbids after the committed state (verifying it and
 * what follows would be wasted). Every kept draft's successor was decoded, so the last kept one is
 * too; a cut early-exit draft's distribution goes along as `rejected` (see acceptPrefix).
 */
export function cutForbidden(s: LoopState, d: Drafts): Drafts {
  const grammar = s.session.grammar;
  if (!grammar) return d;
  const j = allowedPrefix(grammar, d.tokens);
  if (j === d.tokens.length) return d;
  return { tokens: d.tokens.slice(0, j), dists: d.dists?.slice(0, j) ?? null, lastDecoded: true, rejected: d.dists?.[j] ?? null };
}

/** The full model's rows for `last` and the drafts: from the cached layer-E states, or by re-running all layers. */
export async function verify(s: LoopState, p: number, last: number, d: Drafts): Promise<NativeDecodeResult> {
  const { ctx } = s;
  const spec = s.spec!;
  const k = d.tokens.length;
  const logits = needsLogits(s.sampling);
  if (spec.verification === 'cached') {
    const rows = d.lastDecoded ? k + 1 : k;
    return ctx.decode({ layers: [spec.exitLayer, spec.layerCount], count: rows, outputs: 'all', logits });
  }
  // after an end-of-generation draft there is nothing to predict; a probe skips the bonus row
  const bonus = k === 0 || (!s.session.isEog(d.tokens[k - 1]) && !s.policy?.probing);
  ctx.removeFrom(p);
  return ctx.decode({ tokens: Int32Array.from([last, ...d.tokens.slice(0, bonus ? k : k - 1)]), outputs: 'all', logits });
}

/**
 * Keeps what was accepted: the KV cache is cut after the last verified token that has a position,
 * and the tokens go to the session. Verified positions p .. p+rows-1 hold `last` and the drafts;
 * with a full-model token (`next`) `last` and the accepted drafts stay. Without one (every draft
 * accepted and no bonus row) the last accepted draft has no position yet and becomes the next
 * round's `last`. Returns the next round's state, or null when the generation stops.
 */
export function commit(s: LoopState, p: number, last: number, drafts: readonly number[], accepted: number, next: number): { p: number; last: number } | null {
  const { session, stats } = s;
  const kept = next >= 0 ? accepted : accepted - 1;
  s.ctx.removeFrom(p + kept + 1);
  s.onCached(last);
  for (let j = 0; j < kept; j++) s.onCached(drafts[j]);
  if (!emitRound(session, stats, drafts, accepted, next)) return null;
  return { p: p + kept + 1, last: next >= 0 ? next : drafts[accepted - 1] };
}

export function observeRound(s: LoopState, d: Drafts, rows: number, accepted: number, draftMs: number, verifyMs: number): void {
  const k = d.tokens.length;
  s.stats.draftMs += draftMs;
  s.stats.verifyMs += verifyMs;
  s.stats.drafted += k;
  s.stats.draftLengths.push(k);
  s.policy?.observeEarlyRound({ drafted: k, accepted, draftSteps: d.lastDecoded ? k + 1 : k, draftMs, rows, verifyMs });
}

/** The lookup counts of earlier versions (stats.lookup), kept for their readers. */
export function countLegacyLookup(stats: SpeculativeStats, source: string, drafted: number, accepted: number): void {
  if (source !== 'lookup' || !stats.lookup) return;
  stats.lookup.rounds++;
  stats.lookup.drafted += drafted;
  stats.lookup.accepted += accepted;
}
