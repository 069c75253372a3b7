// Free rounds: drafts that cost no model layers (context lookup, the caller's prediction), the
// choice of whether a round takes one (expected tokens per millisecond against the alternative),
// and their fusion with early exit in either order. Sampling stays exact: a free draft is a point
// mass (accept.ts).
import { needsLogits } from './sampling.js';
import { acceptPrefix, pointMass } from './accept.js';
import { ContextLookup } from './context-lookup.js';
import {
  BUCKET_STARTS,
  bestFreeLength,
  countDrafts,
  type FreeAcceptance,
  type FreeDraftSource,
  type FreeRoundCost,
  measuredChoice,
  type ResolvedFreeDrafts,
} from './draft-sources.js';
import { PredictionDrafts } from './prediction.js';
import { commit, countLegacyLookup, type Drafts, draftAndVerify, type LoopState, penaltyHistory, untilStop } from './rounds.js';
import { allowedPrefix } from './grammar.js';
import { NgramFilter } from './ngram-filter.js';

/** The free draft sources of a generation and what chooses between them. */
export interface FreeRounds {
  options: ResolvedFreeDrafts;
  sources: FreeDraftSource[];
  /** Session tokens already given to the sources. */
  synced: number;
  acceptance: FreeAcceptance;
  cost: FreeRoundCost;
  /** The next plain run follows a multi-row decode (its graph is built again). */
  afterRound: boolean;
  /** Tokens per ms of recent early-exit rounds (NaN before one ran). */
  earlyExitRate: number;
  /** Tokens since the last free round, and how many may pass before a probe. */
  sinceFree: number;
  probeInterval: number;
  /** Drafts accepted in the latest free round. */
  lastFreeAccepted: number;
  /** Free drafts proposed at the latest choice but not verified: the output they are checked against. */
  shadows: ShadowDraft[];
  /** Plain runs may end at a repeat (measured lookup with the addon's plain runs; see repeatStop). */
  repeats: boolean;
  /** The context's n-grams for it, made at the first repeat stop (null before). */
  repeatFilter: NgramFilter | null;
  /** The latest plain run ended at a repeated n-gram. */
  stoppedAtRepeat: boolean;
  /** The choice after such a run declined its draft: the next run does not end at repeats. */
  repeatDeclined: boolean;
}

/**
 * A free draft not taken, kept until the output at its position is known: whether the output
 * followed it is what a verification would have found (a point-mass draft is accepted exactly
 * when the sampled token equals it), so it counts toward the source's acceptance at no cost.
 */
export interface ShadowDraft {
  source: FreeDraftSource['name'];
  matchLength: number;
  tokens: number[];
  /** Session tokens before it. */
  from: number;
}

/** A free draft chosen for a round. */
export interface FreeChoice {
  source: FreeDraftSource;
  tokens: number[];
  matchLength: number;
  acceptance: number;
  /** Taken to measure, not because it is expected to win. */
  probe: boolean;
}

/**
 * The sources a generation drafts from for free: the caller's prediction first, then the context.
 * `kept`: the sequence's lookup index from an earlier generation, whose tokens start `promptTokens`
 * (GenerationMemory.takeLookup); only the prompt's tokens after them are added to it.
 */
export function freeSources(o: ResolvedFreeDrafts, promptTokens: readonly number[], kept: ContextLookup | null = null): FreeDraftSource[] {
  const out: FreeDraftSource[] = [];
  if (o.prediction) out.push(new PredictionDrafts(o.prediction));
  if (o.lookup) {
    const lookup = kept ?? new ContextLookup();
    lookup.pushAll(kept ? promptTokens.slice(kept.length) : promptTokens);
    out.push(lookup);
  }
  return out;
}

/**
 * The free draft for this round, or null when none is expected to beat the alternative (an
 * early-exit round, or a plain step): per source, the draft length with the most expected tokens
 * per ms of its verification.
 */
export function chooseFree(s: LoopState, f: FreeRounds, room: number): FreeChoice | null {
  const { session } = s;
  syncSources(f, session.tokens);
  observeShadows(f, session.tokens);
  f.acceptance.age();
  if (f.options.choice === 'continuation' && s.spec) return null;
  const alternative = alternativeRate(s, f);
  let bestRate = alternative;
  let best: FreeChoice | null = null;
  let likeliest: FreeChoice | null = null; // the candidate with the most expected tokens, for a probe
  const proposals: ShadowDraft[] = [];
  for (const source of f.sources) {
    const matchLength = source.matchLength;
    if (matchLength === 0) continue;
    // until a free round was measured its cost is a guess, which on a small model is 3x too low
    // (a round of 17 rows cost 19 plain steps on stories260K): the first one stays probe-sized
    const most = f.options.choice === 'eager' ? f.options.maxTokens : mostFreeDrafts(f);
    const proposal = untilStop(session, source.draft(Math.min(most, room)));
    if (proposal.length === 0) continue;
    const acceptances = f.acceptance.estimates(source.name, matchLength, proposal.length);
    const acceptance = acceptances[0];
    if (f.options.choice === 'eager') return { source, tokens: proposal, matchLength, acceptance, probe: false };
    proposals.push({ source: source.name, matchLength, tokens: proposal, from: session.tokens.length });
    const { length, rate } = bestFreeLength(acceptances, proposal.length, f.cost);
    if (rate > bestRate) {
      bestRate = rate;
      // (the per-draft acceptance whose power over the draft is the chance it is accepted whole)
      const whole = acceptances.slice(0, length).reduce((x, y) => x * y, 1);
      best = { source, tokens: proposal.slice(0, length), matchLength, acceptance: whole ** (1 / length), probe: false };
    }
    if (!likeliest || acceptance > likeliest.acceptance) likeliest = { source, tokens: proposal.slice(0, PROBE_TOKENS), matchLength, acceptance, probe: true };
  }
  // while free drafts do not win, one is still verified now and then (after PROBE_EVERY generated
  // tokens): its acceptance and the cost of its rows are what the choice is made from. A probe that
  // fails doubles the interval.
  // a probe costs a multi-row decode and the switch back: on a tiny model several plain steps, so it
  // waits until it costs at most 1/40 of the tokens since the last free round. Where not even a
  // draft accepted whole would beat the alternative at the measured costs, a probe can only find
  // that the costs changed: it waits ten times as long (stories260K: a 3-row probe costs about 5
  // plain steps, a whole 6-row round yields fewer tokens a ms than plain steps, and probes every
  // ~200 tokens took 2-3% of free continuation)
  if (!best && likeliest && probeDue(f, alternative)) best = likeliest;
  if (f.options.choice === 'never') return null;
  // what is not verified is checked against the output instead: a source whose short matches are
  // declined (a 1-2 token match's prior is 0.35) otherwise never learns that on this text they hold
  // (on the copy model's quote and edit tasks the choice ran at 0.81-0.90 of the speed of taking
  // every draft whole, BENCHMARKS.md section 16, stop 39)
  f.shadows = proposals.filter((p) => p.source !== best?.source.name);
  if (best) f.sinceFree = 0;
  // a run that ended at a repeat whose draft was declined after all (cut by a stop, or by the room
  // left) is followed by one that does not end at repeats, rather than by a run of one step each
  f.repeatDeclined = f.stoppedAtRepeat && !best;
  f.stoppedAtRepeat = false;
  return best;
}

/** Gives the sources the session's tokens they have not seen. */
export function syncSources(f: FreeRounds, tokens: readonly number[]): void {
  f.cost.position = tokens.length; // (the costs are read where the next token goes)
  while (f.synced < tokens.length) {
    const t = tokens[f.synced++];
    for (const src of f.sources) src.push(t);
  }
}

/** Tokens per ms of what a round does without a free draft: an early-exit round, or a plain step where the adaptive policy may pick one. */
function alternativeRate(s: LoopState, f: FreeRounds): number {
  const plainRate = f.cost.plainRate();
  const earlyRate = s.spec && !Number.isNaN(f.earlyExitRate) ? f.earlyExitRate : plainRate;
  return s.policy ? Math.max(earlyRate, plainRate) : earlyRate;
}

/**
 * Where the next plain run ends at a repeat: n, the shortest match whose lookup draft the measured
 * choice would take now (at the acceptance estimated for it and the measured costs), the filter
 * marked for n-grams of that length, and the n - 1 newest tokens; null where no match would be
 * taken. Before, a run ended only at its length, up to 22 plain steps on the copy model, and hid
 * the start of a repeat: in free continuation the model began to repeat its prompt about 20 tokens
 * in, and lookup drafted a third of what llama.cpp's ngram-simple drafted (BENCHMARKS.md section 16,
 * "Stop 40"). A change of n marks the filter again from the whole context (O(context), rare).
 */
export function repeatStop(s: LoopState, f: FreeRounds, last: number): RepeatStop | null {
  const lookup = lookupSource(f);
  if (!f.repeats || f.repeatDeclined || !lookup) return null;
  syncSources(f, s.session.tokens);
  const start = shortestPayingMatch(f, alternativeRate(s, f));
  if (start === undefined) return null;
  const n = Math.max(2, start);
  // (made only here, over the lookup's own tokens: where no run ends at a repeat, as on
  // stories260K, no token is hashed; setLength marks the n-grams added since the last run)
  const filter = (f.repeatFilter ??= new NgramFilter(s.ctx.state().contextSize, lookup.context));
  filter.setLength(n);
  const history = filter.history();
  // (the run's first n-gram ends with the token it produces after `last`, the newest token here)
  if (!history || history[history.length - 1] !== last) return null;
  return { filter: filter.bits, n, history };
}

/**
 * The shortest match of `source` (the lookup by default) whose draft would beat `alternative` tokens
 * per ms at the acceptance estimated for it and the measured costs (one length per acceptance
 * bucket, the shortest), or undefined where none would.
 */
export function shortestPayingMatch(f: FreeRounds, alternative: number, source: FreeDraftSource['name'] = 'lookup'): number | undefined {
  const most = mostFreeDrafts(f);
  return BUCKET_STARTS.find((m) => bestFreeLength(f.acceptance.estimates(source, m, most), most, f.cost).rate > alternative);
}

/** The most drafts a measured free round may take: PROBE_TOKENS until a free round's cost was measured. */
export function mostFreeDrafts(f: FreeRounds): number {
  return f.cost.roundsMeasured ? f.options.maxTokens : PROBE_TOKENS;
}

/** The generation's context lookup among its free sources (undefined without lookup). */
export function lookupSource(f: FreeRounds): ContextLookup | undefined {
  return f.sources.find((x) => x instanceof ContextLookup);
}

/** The caller's prediction among the free sources (undefined without one). */
export function predictionSource(f: FreeRounds): PredictionDrafts | undefined {
  return f.sources.find((x) => x instanceof PredictionDrafts);
}

/** decodeRun's `repeat`: the filter, its n-gram length and the n - 1 tokens before the run. */
export type RepeatStop = { filter: Uint8Array; n: number; history: Int32Array };

/**
 * The declined drafts of the latest choice against the output since: per draft, the tokens the
 * output followed up to its first difference, as a verification would have counted them (a draft
 * the output has not reached the end of counts as accepted so far).
 */
function observeShadows(f: FreeRounds, output: readonly number[]): void {
  for (const d of f.shadows) {
    const seen = Math.min(d.tokens.length, output.length - d.from);
    let k = 0;
    while (k < seen && output[d.from + k] === d.tokens[k]) k++;
    if (seen > 0) f.acceptance.observe(d.source, d.matchLength, k < seen ? k + 1 : k, k);
  }
  f.shadows = [];
}

/**
 * Whether a free round could beat a plain step at all, by the measured costs, at the acceptance the
 * sources' long matches have shown (their prior before any). Where it cannot (on stories260K a free
 * round's row costs about a plain step), only probes take free rounds, and plain runs need not stop
 * every few steps to look for one. True until a free round was measured.
 */
export function freeRoundsCouldPay(f: FreeRounds): boolean {
  const a = Math.max(...f.sources.map((src) => f.acceptance.estimate(src.name, Infinity)));
  return freeRoundBeats(f, Math.min(a, 0.999), f.cost.plainRate());
}

/**
 * Whether a free draft of per-token acceptance `a` could beat `rate` tokens per ms at the measured
 * costs, at the round sizes they were measured for (bestFreeLength's limit). True until a free round
 * was measured (its cost is a guess until then).
 */
export function freeRoundBeats(f: FreeRounds, a: number, rate: number): boolean {
  return !f.cost.roundsMeasured || bestFreeLength(a, f.options.maxTokens, f.cost).rate > rate;
}

/**
 * Whether a probe round is due (no free draft is expected to win): after `probeInterval` tokens
 * without a free round, once the probe costs at most 1 / PROBE_COST_SHARE of them; ten times later
 * where not even a draft accepted whole would beat `alternative` (tokens per ms) at the measured
 * costs. That wait needs a cost measured more than once, and a probe counts as at most
 * MAX_PROBE_STEPS plain steps: one round slowed by a pause of the machine would otherwise make the
 * next probe, the only measurement that can correct it, wait thousands of tokens (stop 39).
 */
export function probeDue(f: FreeRounds, alternative: number): boolean {
  // one round measured is all the cost line knows, and a process's first round builds and allocates
  // its graph for the first time: 2.1 ms for 2 rows on the committed 12-layer model, where later
  // ones took about 0.6. Spaced by that cost, the next probe came hundreds of tokens later, and a
  // prediction equal to the output was declined for a whole generation (3 of 8 new processes,
  // BENCHMARKS.md section 16, "Stop 45"). A second round soon (PAUSED_ROUND leaves the slow one out)
  if (f.cost.roundSamples === 1) return f.sinceFree >= SECOND_PROBE_AFTER;
  if (f.sinceFree < f.probeInterval) return false;
  const probeSteps = Math.min(MAX_PROBE_STEPS, f.cost.roundMs(PROBE_TOKENS + 1) / f.cost.plainMs());
  const settled = f.cost.roundSamples >= SETTLED_ROUNDS && !freeRoundBeats(f, 1, alternative);
  return f.sinceFree >= (settled ? 10 : 1) * PROBE_COST_SHARE * probeSteps;
}

/** Tokens after the first measured free round before a second probe, where no free draft is taken. */
const SECOND_PROBE_AFTER = 8;
/** A probe waits until it costs at most 1 / PROBE_COST_SHARE of the tokens since the last free round. */
const PROBE_COST_SHARE = 40;
/** The most plain steps a probe is taken to cost in its spacing (stories260K: about 5). */
const MAX_PROBE_STEPS = 8;
/** Free rounds measured before their cost may space probes ten times wider. */
const SETTLED_ROUNDS = 3;

/**
 * Plain steps a run may take before the sources are looked at again: `doubling` (the run length
 * that doubles from 8 while they find nothing), or no limit where not even a long match's draft
 * would pay at the measured costs. There a stop to look costs a hand-off and finds at most a probe
 * (which comes at the end of a run): on stories260K the stops made two more runs than plain decoding
 * in a 128-token generation, about 2% of its time.
 */
export function stepsBeforeLook(f: FreeRounds, doubling: number): number {
  // (the other choices take or decline drafts whatever the costs: their runs stop as before, so
  // what they draft does not depend on timings)
  return !measuredChoice(f.options) || freeRoundsCouldPay(f) ? doubling : Infinity;
}

/**
 * How the next plain run ends: after `cap` steps at most (stepsBeforeLook), or at a repeat
 * (repeatStop), which alone looks for the lookup, so a run with one need not stop every few steps.
 * Where no free draft could pay neither is needed, and neither is searched for (the search took 26
 * us a run, 0.7% of stories260K's free continuation).
 */
export function plainRunEnd(s: LoopState, f: FreeRounds, last: number, doubling: number): { cap: number; repeat: RepeatStop | null } {
  const cap = stepsBeforeLook(f, doubling);
  if (cap === Infinity) return { cap, repeat: null };
  const repeat = repeatStop(s, f, last);
  // (a prediction still needs looks: its re-alignment after an edit is not a repeat)
  return { cap: repeat && f.sources.every((x) => x.name === 'lookup') ? Infinity : cap, repeat };
}

/** Drafts in a probe round: enough to see whether a source agrees, few rows to pay for. */
export const PROBE_TOKENS = 2;

/** After a probe: probe again soon if it found accepted drafts, else half as often (at most every 512 tokens). */
export function observeProbe(f: FreeRounds, accepted: number): void {
  f.probeInterval = accepted > 0 ? PROBE_EVERY : Math.min(2 * f.probeInterval, 512);
}

export const PROBE_EVERY = 64;

/**
 * How many early-exit drafts continue a free draft (0: none): when the free draft is likely to be
 * accepted whole and early-exit rounds pay (or the draft length is fixed), or always when the
 * choice is eager.
 */
export function earlyExitExtension(s: LoopState, c: FreeChoice, room: number): number {
  const spec = s.spec!;
  const f = s.free!;
  const left = room - c.tokens.length;
  if (left < 1 || s.session.isEog(c.tokens[c.tokens.length - 1])) return 0;
  if (f.options.choice === 'eager') return Math.min(spec.draftTokens, left);
  // the first free round goes alone: it measures what a free round costs (a fused round's time is
  // not a free round's), and until then free drafts stay probe-sized (mostFreeDrafts)
  if (!f.cost.roundsMeasured) return 0;
  // with a fixed draft length every other round is an early-exit round (the caller's choice), so
  // extending the free draft saves one; adaptive drafting takes them only where they beat plain steps
  const pays = !s.policy || (!Number.isNaN(f.earlyExitRate) && f.earlyExitRate > 1 / f.cost.plainMs());
  if (!pays || c.acceptance ** c.tokens.length < 0.5) return 0;
  return Math.min(s.policy ? s.policy.next() : spec.draftTokens, left);
}

/**
 * Whether lookupAfterDrafts may continue this round's early-exit drafts, so that drafting and
 * verifying take separate calls. With the measured choice a continuation needs a 4-token match,
 * which is likely only while the text already repeats: a match of the newest tokens now.
 */
export function lookupMayContinue(s: LoopState): boolean {
  const f = s.free;
  const lookup = f?.sources.find((x) => x.name === 'lookup');
  if (!f || !lookup?.peek || s.policy?.probing) return false;
  // (lookupAfterDrafts also needs every early-exit draft likely accepted: aEarly^k >= 0.5, k >= 1)
  return !measuredChoice(f.options) || (lookup.matchLength >= 2 && earlyAcceptance(s) >= 0.5);
}

/** Per-draft acceptance of early-exit drafts so far (Laplace's rule: 1/2 before any). */
function earlyAcceptance(s: LoopState): number {
  const ee = s.stats.sources.earlyExit!;
  return (ee.accepted + 1) / (ee.drafted + 2);
}

/**
 * A lookup draft that continues early-exit drafts: the context's continuation of the longest
 * suffix of the sequence and the drafts, when it is likely to be reached (the early-exit drafts all
 * accepted) and accepted. Its tokens pass layers [0, E) in one more draft call, after the last early
 * draft (already decoded), so one verification checks both. Returns null when it does not pay.
 */
export async function lookupAfterDrafts(s: LoopState, d: Drafts, room: number): Promise<{ drafts: Drafts; count: number; matchLength: number } | null> {
  const f = s.free;
  const spec = s.spec!;
  const lookup = f?.sources.find((x) => x.name === 'lookup');
  if (!f || !lookup?.peek || !d.lastDecoded || spec.verification !== 'cached' || s.policy?.probing) return null;
  const k = d.tokens.length;
  const left = Math.min(f.options.maxTokens, room - k);
  if (left < 1 || s.session.isEog(d.tokens[k - 1])) return null;
  const { tokens, matchLength } = lookup.peek(d.tokens, left);
  let c = untilStop(s.session, [...d.tokens, ...tokens]).slice(k);
  if (c.length === 0) return null;
  const a = f.acceptance.estimate('lookup', matchLength);
  if (measuredChoice(f.options)) {
    if (matchLength < 4 || earlyAcceptance(s) ** k < 0.5 || a < 0.5) return null;
    c = c.slice(0, Math.max(1, bestFreeLength(a, c.length, f.cost).length));
  }
  const greedy = s.sampling.temperature === 0;
  await s.ctx.draft({ prefix: Int32Array.from(c), layer: spec.exitLayer, maxTokens: 0 }); // no new drafts: nothing is sampled
  const dists = greedy ? null : [...d.dists!, ...c.map((t) => pointMass(t, s.nVocab))];
  return { drafts: { tokens: [...d.tokens, ...c], dists, lastDecoded: true }, count: c.length, matchLength };
}

/**
 * A round drafted for free: `last` and the drafts through all layers in one batch. A free draft is
 * a point mass, so sampling accepts draft d with probability p(d) and otherwise resamples from p
 * without d (acceptPrefix with one-hot draft distributions): exact, like every other round.
 */
export async function freeRound(s: LoopState, p: number, last: number, c: FreeChoice): Promise<{ p: number; last: number } | null> {
  const { sampling, nVocab, stats } = s;
  const f = s.free!;
  // free drafts the grammar forbids are cut before the batch (a cut point mass needs no residual:
  // norm(max(0, p − δ)) is p itself when p gives the draft no mass)
  const grammar = s.session.grammar;
  const look = grammar ? c.tokens.slice(0, allowedPrefix(grammar, c.tokens)) : c.tokens;
  const t0 = performance.now();
  const v = await s.ctx.decode({ tokens: Int32Array.from([last, ...look]), outputs: 'all', logits: needsLogits(sampling) });
  const t1 = performance.now();
  f.cost.observeRound(look.length + 1, t1 - t0, p);
  f.afterRound = true;
  const dists = sampling.temperature === 0 ? null : look.map((t) => pointMass(t, nVocab));
  const { accepted, next } = acceptPrefix(v, look, dists, sampling, s.rng, nVocab, penaltyHistory(s), grammar);
  f.acceptance.observe(c.source.name, c.matchLength, look.length, accepted);
  f.lastFreeAccepted = accepted;
  if (c.probe) observeProbe(f, accepted);
  stats.verifyMs += t1 - t0;
  stats.draftLengths.push(look.length);
  const src = stats.sources[c.source.name]!;
  src.rounds++;
  src.verifyMs += t1 - t0;
  countDrafts(src, 0, look.length, accepted);
  const before = stats.accepted;
  const after = commit(s, p, last, look, accepted, next);
  // accepted free drafts are counted apart from the early-exit drafts
  countLegacyLookup(stats, c.source.name, look.length, stats.accepted - before);
  stats.accepted = before;
  stats.samplingMs += performance.now() - t1;
  return after;
}

/**
 * A free draft continued by early exit: `last` and the free drafts through layers [0, E) in one
 * batch, early-exit drafts after them (one draft call), then one verification of all of them. Each
 * draft keeps its own distribution (a point mass for the free ones), so sampling stays exact.
 */
export async function fusedRound(s: LoopState, p: number, last: number, c: FreeChoice, extend: number): Promise<{ p: number; last: number } | null> {
  const { sampling, nVocab, stats } = s;
  const f = s.free!;
  const t0 = performance.now();
  const { d, v, draftMs, verifyMs } = await draftAndVerify(s, p, last, extend, c.tokens);
  const { tokens, dists } = d;
  const t1 = t0 + draftMs;
  const t2 = t1 + verifyMs;
  const { accepted, next } = acceptPrefix(v, tokens, dists, sampling, s.rng, nVocab, penaltyHistory(s), s.session.grammar, d.rejected);
  const nFree = Math.min(c.tokens.length, tokens.length);
  const nEarly = tokens.length - nFree;
  f.cost.noteFusedRows(nFree + 1);
  f.acceptance.observe(c.source.name, c.matchLength, nFree, Math.min(accepted, nFree));
  f.lastFreeAccepted = Math.min(accepted, nFree);
  f.afterRound = true;
  if (c.probe) observeProbe(f, Math.min(accepted, nFree));
  stats.draftMs += t1 - t0;
  stats.verifyMs += t2 - t1;
  stats.drafted += nEarly;
  stats.draftLengths.push(tokens.length);
  const src = stats.sources[c.source.name]!;
  src.rounds++;
  src.verifyMs += t2 - t1;
  countDrafts(src, 0, nFree, Math.min(accepted, nFree));
  const ee = stats.sources.earlyExit!;
  ee.draftMs += t1 - t0;
  countDrafts(ee, nFree, nEarly, Math.max(0, accepted - nFree));
  const before = stats.accepted;
  const after = commit(s, p, last, tokens, accepted, next);
  // of the accepted drafts, the free ones are counted apart from the early-exit ones
  const taken = stats.accepted - before;
  const freeTaken = Math.min(taken, nFree);
  countLegacyLookup(stats, c.source.name, nFree, freeTaken);
  stats.accepted = before + taken - freeTaken;
  stats.samplingMs += performance.now() - t2;
  return after;
}
