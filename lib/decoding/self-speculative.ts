// The generation driver: every round of a generation that is not overlapped (decoding/pipelined.ts)
// runs here, whatever drafts it. A round is a plain step (or, greedy, a run of plain steps in one
// addon call), a free draft (context lookup, the caller's prediction: decoding/draft-sources.ts)
// verified with all layers, an early-exit draft verified from its cached layer-E states, or a free
// draft that early exit continues.
//
// Self-speculative decoding (LayerSkip): draft with the first E layers (early exit through the
// model's own norm and LM head, or a fitted draft head), verify the drafts with layers [E, N) from
// their cached layer-E hidden states in one call, accept the longest agreeing prefix plus the full
// model's own next token, and roll the KV cache back to what was accepted. A round is two calls
// into the addon: draft (its token-to-token loop runs natively) and verify.
//
// Greedy: a draft is accepted iff it equals the full model's argmax, so the output is the
// plain greedy output token for token. Sampling: standard speculative sampling (accept with
// min(1, p/q), else resample from norm(max(0, p − q))), which keeps the full model's distribution;
// a free draft is a point mass.
import { checkBoolean, checkInteger, checkNumber, ContextFullError } from '../errors.js';
import { assertLayerRanges } from '../architectures.js';
import type { SpeculativeStats } from './types.js';
import type { NativeContext, NativeDecodeResult, NativeModelInfo } from '../native.js';
import { distribution, greedyToken, needsLogits, pickToken, SamplerRng, sampleFrom, targetDistribution, type ResolvedSampling } from '../sampling.js';
import type { DraftHead } from '../draft-head/draft-head.js';
import { ContextLookup } from './context-lookup.js';
import { bestFreeLength, countDrafts, FreeAcceptance, FreeRoundCost, newSourceStats, type FreeDraftSource, type ResolvedFreeDrafts } from './draft-sources.js';
import { DraftPolicy } from './draft-policy.js';
import { plainRun, plainStep, runLength } from './plain.js';
import { PredictionDrafts } from './prediction.js';
import type { DecodeSession } from './session.js';
import { checkOptionKeys, type KeysOf } from '../option-keys.js';

export interface SelfSpeculativeOptions {
  /** Draft with layers [0, exitLayer); 1 <= exitLayer < layer count. */
  exitLayer: number;
  /** Most draft tokens per round (default 4; 1..64). */
  draftTokens?: number;
  /** Choose each round's draft length (0..draftTokens) from observed acceptance and measured costs (default false). */
  adaptive?: boolean;
  /** Stop a draft when the draft's top probability falls below this (default 0 = never; 0.3 when adaptive). */
  minDraftProbability?: number;
  /** 'cached': verify from the drafts' cached layer-E hidden states (default); 'full': re-run all layers on the drafts. */
  verification?: 'cached' | 'full';
  /** A fitted draft head (exit adapter and/or draft vocabulary) for this exit layer, or the path of its file. */
  draftHead?: DraftHead | string;
  /**
   * Draft the next round while this one is verified, in a second, draft-only context on this host
   * (see decoding/pipelined.ts). Meant for verifications that wait on something other than this
   * host's cores: layers above the exit on RPC servers (default false). Not with `adaptive`,
   * verification 'full' or several sequences. Costs a second KV cache; generated tokens are not
   * kept as a prompt prefix.
   */
  overlap?: boolean;
  /**
   * Context lookup drafts (decoding/context-lookup.ts): when the last tokens occurred earlier in the
   * prompt or the generated text, a round drafts what followed them there, at no draft cost, and
   * verifies it with all layers; other rounds draft by early exit (default false). Not with overlap.
   */
  lookup?: boolean;
  /** Most tokens of a lookup draft (default 8; 1..64). */
  lookupTokens?: number;
}

const SELF_SPECULATIVE_KEYS = {
  exitLayer: true,
  draftTokens: true,
  adaptive: true,
  minDraftProbability: true,
  verification: true,
  draftHead: true,
  overlap: true,
  lookup: true,
  lookupTokens: true,
} as const satisfies KeysOf<SelfSpeculativeOptions>;

export interface ResolvedSelfSpeculative {
  exitLayer: number;
  draftTokens: number;
  adaptive: boolean;
  minDraftProbability: number;
  verification: 'cached' | 'full';
  layerCount: number;
  draftHead: DraftHead | string | null;
  overlap: boolean;
  lookup: boolean;
  lookupTokens: number;
}

export function resolveSelfSpeculative(o: SelfSpeculativeOptions, info: NativeModelInfo): ResolvedSelfSpeculative {
  if (typeof o !== 'object' || o === null) throw new TypeError('selfSpeculative must be an object');
  checkOptionKeys('selfSpeculative', o, SELF_SPECULATIVE_KEYS);
  assertLayerRanges(info.architecture, 'selfSpeculative');
  const n = info.layerCount;
  if (n < 2) throw new RangeError('selfSpeculative: the model needs at least 2 layers');
  const exitLayer = checkInteger('selfSpeculative.exitLayer', o.exitLayer, 1, n - 1);
  const draftTokens = checkInteger('selfSpeculative.draftTokens', o.draftTokens ?? 4, 1, 64);
  const adaptive = o.adaptive ?? false;
  const minDraftProbability = checkNumber('selfSpeculative.minDraftProbability', o.minDraftProbability ?? (adaptive ? 0.3 : 0), 0, 1);
  const verification = o.verification ?? 'cached';
  if (verification !== 'cached' && verification !== 'full') throw new RangeError("selfSpeculative.verification must be 'cached' or 'full'");
  const draftHead = o.draftHead ?? null;
  if (draftHead !== null && typeof draftHead !== 'string' && (typeof draftHead !== 'object' || typeof draftHead.exitLayer !== 'number')) {
    throw new TypeError('selfSpeculative.draftHead must be a DraftHead or the path of a draft head file');
  }
  if (typeof draftHead === 'string' && draftHead.length === 0) throw new TypeError('selfSpeculative.draftHead: the path is empty');
  const overlap = checkBoolean('selfSpeculative.overlap', o.overlap) ?? false;
  if (overlap && adaptive)
    throw new RangeError('selfSpeculative: overlap and adaptive cannot be combined (an overlapped round is drafted before the last one is scored)');
  if (overlap && verification === 'full')
    throw new RangeError("selfSpeculative: overlap verifies from the drafts' layer-E states; it cannot be combined with verification 'full'");
  const lookup = checkBoolean('selfSpeculative.lookup', o.lookup) ?? false;
  const lookupTokens = checkInteger('selfSpeculative.lookupTokens', o.lookupTokens ?? 8, 1, 64);
  if (lookup && overlap)
    throw new RangeError('selfSpeculative: lookup and overlap cannot be combined (an overlapped round is drafted by early exit ahead of time)');
  return { exitLayer, draftTokens, adaptive, minDraftProbability, verification, layerCount: n, draftHead, overlap, lookup, lookupTokens };
}

/** What one round's draft call produced. */
interface Drafts {
  tokens: number[];
  /** Sampling: the distribution each draft was sampled from (one-hot for a free draft). */
  dists: Float64Array[] | null;
  /** The last draft's layers [0, E) are in the KV cache, so a verification can score the position after it. */
  lastDecoded: boolean;
}

interface LoopState {
  ctx: NativeContext;
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

/** The free draft sources of a generation and what chooses between them. */
interface FreeRounds {
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
}

/** A free draft chosen for a round. */
interface FreeChoice {
  source: FreeDraftSource;
  tokens: number[];
  matchLength: number;
  acceptance: number;
  /** Taken to measure, not because it is expected to win. */
  probe: boolean;
}

/**
 * Self-speculative decoding, with free drafts (context lookup, a prediction) where they pay. With
 * `spec` null only free drafts run and the other steps are plain.
 */
export async function selfSpeculativeLoop(
  ctx: NativeContext,
  first: NativeDecodeResult,
  session: DecodeSession,
  sampling: ResolvedSampling,
  nVocab: number,
  spec: ResolvedSelfSpeculative | null,
  onCached: (token: number) => void,
  promptTokens: readonly number[] = [],
  freeOptions: ResolvedFreeDrafts | null = null,
): Promise<SpeculativeStats> {
  const policy = spec?.adaptive ? new DraftPolicy(spec.draftTokens, spec.exitLayer / spec.layerCount) : null;
  const s: LoopState = {
    ctx,
    session,
    sampling,
    nVocab,
    spec,
    rng: new SamplerRng(sampling.seed),
    policy,
    stats: newStats(spec?.exitLayer ?? null),
    onCached,
    free: null,
    promptTokens,
  };
  if (spec) s.stats.sources.earlyExit = newSourceStats();
  if (freeOptions) {
    const sources = freeSources(freeOptions, promptTokens);
    s.free = {
      options: freeOptions,
      sources,
      synced: 0,
      acceptance: new FreeAcceptance(),
      cost: new FreeRoundCost(),
      afterRound: true,
      earlyExitRate: NaN,
      sinceFree: 0,
      probeInterval: PROBE_EVERY,
      lastFreeAccepted: 0,
    };
    for (const src of sources) s.stats.sources[src.name] = newSourceStats();
    if (freeOptions.lookup) s.stats.lookup = { rounds: 0, drafted: 0, accepted: 0 };
  }
  // greedy plain steps run several per addon call (decodeRun); sampling steps one by one
  // (not with penalties: the addon's loop picks the plain argmax)
  const runner = sampling.temperature === 0 && !sampling.penalties && ctx.decodeRun ? (ctx as Parameters<typeof plainRun>[0]) : null;
  // free drafts: plain steps per run, doubling from 8 up to runLength(), or staying at 8 while free
  // drafts are accepted (a run may hide the next free draft: free rounds follow each other without
  // plain steps between them while the text repeats, so only the start of a repeat waits for a run)
  let plainSteps = 8;
  let stepMs = NaN; // one plain step, measured in runs
  const { contextSize, nextPosition } = ctx.state();
  let p = nextPosition; // the position of `last`, the newest token not yet in the KV cache
  let last = pickToken(first, sampling, s.rng, 0, nVocab, penaltyHistory(s)); // the first token comes from the prompt's decode
  if (!session.accept(last)) return finishStats(s.stats, session.tokens.length, session.tokens.length);
  s.stats.corrections++;
  try {
    while (!session.done) {
      session.check();
      if (p >= contextSize) {
        session.stop('contextFull');
        break;
      }
      // drafts must fit the token limit (a round emits up to k + 1 tokens) and the context
      const room = Math.min(session.maxTokens - session.tokens.length - 1, contextSize - 1 - p);
      s.stats.rounds++;
      const choice = s.free && room > 0 ? chooseFree(s, s.free, room) : null; // (syncs the sources)
      if (choice) {
        const extend = spec && !choice.probe ? earlyExitExtension(s, choice, room) : 0;
        const after = extend > 0 ? await fusedRound(s, p, last, choice, extend) : await freeRound(s, p, last, choice);
        if (!after) break;
        ({ p, last } = after);
        continue;
      }
      const want = spec ? Math.max(0, Math.min(policy ? policy.next() : spec.draftTokens, room)) : 0;
      if (want === 0) {
        if (!runner) {
          last = await plainRound(s, last);
          p++;
          if (s.free) s.free.sinceFree++;
          continue;
        }
        // plain steps in one call: until the adaptive policy's next probe, or the run length
        const cap = policy ? policy.plainStepsBeforeProbe() : s.free ? plainSteps : Infinity;
        const n = Math.min(cap, Number.isNaN(stepMs) ? 2 : runLength(stepMs), session.remaining, contextSize - p);
        const t0 = performance.now();
        const before = session.tokens.length;
        const r = await plainRun(runner, session, p, last, n, onCached);
        const ms = performance.now() - t0;
        s.stats.verifyMs += ms;
        s.stats.corrections += session.tokens.length - before; // the full model's own tokens
        if (!r) break;
        const steps = r.position - p;
        stepMs = r.nativeMs / steps;
        s.stats.draftLengths.push(0);
        policy?.skipPlain(steps);
        policy?.observeFullStep(ms / steps);
        if (s.free) {
          s.free.cost.observePlainRun(steps, ms, s.free.afterRound);
          s.free.afterRound = false;
          s.free.sinceFree += steps;
          plainSteps = Math.min(plainSteps * 2, s.free.lastFreeAccepted > 0 ? 8 : runLength(stepMs));
        }
        ({ position: p, token: last } = r);
        continue;
      }
      const t0 = performance.now();
      const early = await draft(s, last, want);
      // a lookup may continue the early-exit drafts (one more call, for layers [0, E) of its drafts)
      const ext = await lookupAfterDrafts(s, early, room);
      const d = ext?.drafts ?? early;
      const k = early.tokens.length;
      const t1 = performance.now();
      const v = await verify(s, p, last, d);
      const t2 = performance.now();
      const { accepted, next } = acceptPrefix(v, d.tokens, d.dists, sampling, s.rng, nVocab, penaltyHistory(s));
      observeRound(s, early, v.argmax.length, Math.min(accepted, k), t1 - t0, t2 - t1);
      const ee = s.stats.sources.earlyExit!;
      ee.rounds++;
      ee.draftMs += t1 - t0;
      ee.verifyMs += t2 - t1;
      countDrafts(ee, 0, k, Math.min(accepted, k));
      if (ext) {
        const lk = s.stats.sources.lookup!;
        const lkAccepted = Math.max(0, accepted - k);
        countDrafts(lk, k, ext.count, lkAccepted);
        // the lookup drafts were tested only if every early-exit draft before them was accepted
        if (accepted >= k) s.free!.acceptance.observe('lookup', ext.matchLength, ext.count, lkAccepted);
      }
      const before = session.tokens.length;
      const acceptedBefore = s.stats.accepted;
      const after = commit(s, p, last, d.tokens, accepted, next);
      if (ext) {
        // accepted lookup drafts are counted apart from the early-exit ones
        const taken = s.stats.accepted - acceptedBefore;
        const lookupTaken = Math.max(0, taken - k);
        countLegacyLookup(s.stats, 'lookup', ext.count, lookupTaken);
        s.stats.accepted -= lookupTaken;
      }
      s.stats.samplingMs += performance.now() - t2;
      if (s.free) {
        s.free.earlyExitRate = ema(s.free.earlyExitRate, (session.tokens.length - before) / (performance.now() - t0));
        s.free.afterRound = true;
        s.free.sinceFree += session.tokens.length - before;
      }
      if (!after) break;
      ({ p, last } = after);
    }
  } catch (e) {
    // a context shared by several sequences ran out of cells (the others hold them): the generation
    // ends as at a full context, with its text, instead of losing it to an error
    if (!(e instanceof ContextFullError) || session.done) throw e;
    ctx.removeFrom(p); // drafts of the failed round, if any (a lookup continuation's call may fail after the drafts)
    session.stop('contextFull');
  }
  return finishStats(s.stats, session.tokens.length, 0);
}

function ema(previous: number, value: number): number {
  return Number.isNaN(previous) ? value : 0.8 * previous + 0.2 * value;
}

/** The sources a generation drafts from for free: the caller's prediction first, then the context. */
function freeSources(o: ResolvedFreeDrafts, promptTokens: readonly number[]): FreeDraftSource[] {
  const out: FreeDraftSource[] = [];
  if (o.prediction) {
    const impl = new PredictionDrafts(o.prediction);
    out.push({
      name: 'prediction',
      push: (t) => impl.push(t),
      draft: (n) => impl.draft(n),
      get matchLength() {
        return impl.matchLength;
      },
    });
  }
  if (o.lookup) {
    const impl = new ContextLookup();
    impl.pushAll(promptTokens);
    out.push({
      name: 'lookup',
      push: (t) => impl.push(t),
      draft: (n) => impl.draft(n),
      peek: (extra, n) => impl.peek(extra, n),
      get matchLength() {
        return impl.matchLength;
      },
    });
  }
  return out;
}

/**
 * The free draft for this round, or null when none is expected to beat the alternative (an
 * early-exit round, or a plain step): per source, the draft length with the most expected tokens
 * per ms of its verification.
 */
function chooseFree(s: LoopState, f: FreeRounds, room: number): FreeChoice | null {
  const { session } = s;
  while (f.synced < session.tokens.length) {
    const t = session.tokens[f.synced++];
    for (const src of f.sources) src.push(t);
  }
  f.acceptance.age();
  if (f.options.choice === 'continuation' && s.spec) return null;
  const plainRate = 1 / f.cost.plainMs();
  // the alternative: an early-exit round, or a plain step where the adaptive policy may pick one
  const earlyRate = s.spec && !Number.isNaN(f.earlyExitRate) ? f.earlyExitRate : plainRate;
  let bestRate = s.policy ? Math.max(earlyRate, plainRate) : earlyRate;
  let best: FreeChoice | null = null;
  let likeliest: FreeChoice | null = null; // the candidate with the most expected tokens, for a probe
  for (const source of f.sources) {
    const matchLength = source.matchLength;
    if (matchLength === 0) continue;
    const proposal = untilStop(session, source.draft(Math.min(f.options.maxTokens, room)));
    if (proposal.length === 0) continue;
    const acceptance = f.acceptance.estimate(source.name, matchLength);
    if (f.options.choice === 'eager') return { source, tokens: proposal, matchLength, acceptance, probe: false };
    const { length, rate } = bestFreeLength(acceptance, proposal.length, f.cost);
    if (rate > bestRate) {
      bestRate = rate;
      best = { source, tokens: proposal.slice(0, length), matchLength, acceptance, probe: false };
    }
    if (!likeliest || acceptance > likeliest.acceptance) likeliest = { source, tokens: proposal.slice(0, PROBE_TOKENS), matchLength, acceptance, probe: true };
  }
  // while free drafts do not win, one is still verified now and then (after PROBE_EVERY generated
  // tokens): its acceptance and the cost of its rows are what the choice is made from. A probe that
  // fails doubles the interval.
  // a probe costs a multi-row decode and the switch back: on a tiny model several plain steps, so it
  // waits until it costs at most 1/40 of the tokens since the last free round
  const probeSteps = f.cost.roundMs(PROBE_TOKENS + 1) / f.cost.plainMs();
  if (!best && likeliest && f.sinceFree >= Math.max(f.probeInterval, 40 * probeSteps)) best = likeliest;
  if (f.options.choice === 'never') return null;
  if (best) f.sinceFree = 0;
  return best;
}

/** Drafts in a probe round: enough to see whether a source agrees, few rows to pay for. */
const PROBE_TOKENS = 2;

/** After a probe: probe again soon if it found accepted drafts, else half as often (at most every 512 tokens). */
function observeProbe(f: FreeRounds, accepted: number): void {
  f.probeInterval = accepted > 0 ? PROBE_EVERY : Math.min(2 * f.probeInterval, 512);
}

const PROBE_EVERY = 64;

/**
 * How many early-exit drafts continue a free draft (0: none): when the free draft is likely to be
 * accepted whole and early-exit rounds pay, or always when the choice is eager.
 */
function earlyExitExtension(s: LoopState, c: FreeChoice, room: number): number {
  const spec = s.spec!;
  const f = s.free!;
  const left = room - c.tokens.length;
  if (left < 1 || s.session.isEog(c.tokens[c.tokens.length - 1])) return 0;
  if (f.options.choice === 'eager') return Math.min(spec.draftTokens, left);
  const pays = !Number.isNaN(f.earlyExitRate) && f.earlyExitRate > 1 / f.cost.plainMs();
  if (!pays || c.acceptance ** c.tokens.length < 0.5) return 0;
  return Math.min(s.policy ? s.policy.next() : spec.draftTokens, left);
}

/**
 * A lookup draft that continues early-exit drafts: the context's continuation of the longest
 * suffix of the sequence and the drafts, when it is likely to be reached (the early-exit drafts all
 * accepted) and accepted. Its tokens pass layers [0, E) in one more draft call, after the last early
 * draft (already decoded), so one verification checks both. Returns null when it does not pay.
 */
async function lookupAfterDrafts(s: LoopState, d: Drafts, room: number): Promise<{ drafts: Drafts; count: number; matchLength: number } | null> {
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
  if (f.options.choice === 'measured') {
    const ee = s.stats.sources.earlyExit!;
    const aEarly = (ee.accepted + 1) / (ee.drafted + 2);
    if (matchLength < 4 || aEarly ** k < 0.5 || a < 0.5) return null;
    c = c.slice(0, Math.max(1, bestFreeLength(a, c.length, f.cost).length));
  }
  const greedy = s.sampling.temperature === 0;
  await s.ctx.draft({ prefix: Int32Array.from(c), layer: spec.exitLayer, maxTokens: 0 }); // no new drafts: nothing is sampled
  const dists = greedy ? null : [...d.dists!, ...c.map((t) => pointMass(t, s.nVocab))];
  return { drafts: { tokens: [...d.tokens, ...c], dists, lastDecoded: true }, count: c.length, matchLength };
}

/** Drafts up to a completed stop string (later drafts are wasted; the stop string ends the generation). */
function untilStop(session: DecodeSession, tokens: number[]): number[] {
  if (!session.hasStopStrings) return tokens;
  const end = tokens.findIndex((_, j) => session.wouldStop(tokens.slice(0, j + 1)));
  return end >= 0 ? tokens.slice(0, end + 1) : tokens;
}

/** A free draft's distribution for speculative sampling: a point mass on the drafted token. */
export function pointMass(token: number, nVocab: number): Float64Array {
  const q = new Float64Array(nVocab);
  q[token] = 1;
  return q;
}

/**
 * A round drafted for free: `last` and the drafts through all layers in one batch. A free draft is
 * a point mass, so sampling accepts draft d with probability p(d) and otherwise resamples from p
 * without d (acceptPrefix with one-hot draft distributions): exact, like every other round.
 */
async function freeRound(s: LoopState, p: number, last: number, c: FreeChoice): Promise<{ p: number; last: number } | null> {
  const { sampling, nVocab, stats } = s;
  const f = s.free!;
  const look = c.tokens;
  const t0 = performance.now();
  const v = await s.ctx.decode({ tokens: Int32Array.from([last, ...look]), outputs: 'all', logits: needsLogits(sampling) });
  const t1 = performance.now();
  f.cost.observeRound(look.length + 1, t1 - t0);
  f.afterRound = true;
  const dists = sampling.temperature === 0 ? null : look.map((t) => pointMass(t, nVocab));
  const { accepted, next } = acceptPrefix(v, look, dists, sampling, s.rng, nVocab, penaltyHistory(s));
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
async function fusedRound(s: LoopState, p: number, last: number, c: FreeChoice, extend: number): Promise<{ p: number; last: number } | null> {
  const { sampling, nVocab, stats, session } = s;
  const spec = s.spec!;
  const f = s.free!;
  const greedy = sampling.temperature === 0;
  const t0 = performance.now();
  const r = await s.ctx.draft({
    token: last,
    prefix: Int32Array.from(c.tokens),
    layer: spec.exitLayer,
    maxTokens: extend,
    minProbability: spec.minDraftProbability,
    finish: spec.verification === 'cached',
    temperature: sampling.temperature,
    uniforms: greedy ? undefined : Float64Array.from({ length: extend }, () => s.rng.next()),
  });
  const t1 = performance.now();
  let tokens = [...c.tokens, ...r.tokens];
  let lastDecoded = r.lastDecoded;
  const cut = untilStop(session, tokens);
  if (cut.length < tokens.length) {
    tokens = cut;
    lastDecoded = true;
  }
  const draftSampling = { ...sampling, topK: 0, topP: 1, minP: 0 };
  const dists = greedy
    ? null
    : tokens.map((t, j) => (j < c.tokens.length ? pointMass(t, nVocab) : distribution(r.logits!, draftSampling, (j - c.tokens.length) * nVocab, nVocab)));
  const d: Drafts = { tokens, dists, lastDecoded };
  const v = await verify(s, p, last, d);
  const t2 = performance.now();
  const { accepted, next } = acceptPrefix(v, tokens, dists, sampling, s.rng, nVocab, penaltyHistory(s));
  const nFree = Math.min(c.tokens.length, tokens.length);
  const nEarly = tokens.length - nFree;
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

/** The lookup counts of earlier versions (stats.lookup), kept for their readers. */
function countLegacyLookup(stats: SpeculativeStats, source: string, drafted: number, accepted: number): void {
  if (source !== 'lookup' || !stats.lookup) return;
  stats.lookup.rounds++;
  stats.lookup.drafted += drafted;
  stats.lookup.accepted += accepted;
}

/** A zero-length draft: one plain step with the full model. Returns the next `last`. */
async function plainRound(s: LoopState, last: number): Promise<number> {
  const t0 = performance.now();
  const next = await plainStep(s.ctx, last, s.sampling, s.rng, s.nVocab, penaltyHistory(s));
  const ms = performance.now() - t0;
  s.policy?.observeFullStep(ms);
  s.free?.cost.observePlainRun(1, ms, s.free.afterRound);
  if (s.free) s.free.afterRound = false;
  s.stats.verifyMs += ms;
  s.stats.draftLengths.push(0);
  s.onCached(last);
  const before = s.session.tokens.length;
  if (s.session.accept(next)) s.stats.corrections++;
  else s.stats.corrections += s.session.tokens.length - before;
  return next;
}

/** Up to `want` early-exit drafts after `last`, in one native call. */
async function draft(s: LoopState, last: number, want: number): Promise<Drafts> {
  const { sampling, session } = s;
  const spec = s.spec!;
  const greedy = sampling.temperature === 0;
  // a bonus row (the full model's token after the last draft) needs the last draft's layers [0, E);
  // a probe of the adaptive policy skips it: it only measures acceptance, as cheaply as it can
  const finish = spec.verification === 'cached' && !s.policy?.probing;
  const r = await s.ctx.draft({
    token: last,
    layer: spec.exitLayer,
    maxTokens: want,
    minProbability: spec.minDraftProbability,
    finish,
    temperature: sampling.temperature,
    uniforms: greedy ? undefined : Float64Array.from({ length: want }, () => s.rng.next()),
  });
  let tokens = Array.from(r.tokens);
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
  const dists = greedy ? null : tokens.map((_, j) => distribution(r.logits!, draftSampling, j * s.nVocab, s.nVocab));
  return { tokens, dists, lastDecoded };
}

/** The full model's rows for `last` and the drafts: from the cached layer-E states, or by re-running all layers. */
async function verify(s: LoopState, p: number, last: number, d: Drafts): Promise<NativeDecodeResult> {
  const { ctx } = s;
  const spec = s.spec!;
  const k = d.tokens.length;
  const logits = needsLogits(s.sampling);
  if (spec.verification === 'cached') {
    const rows = d.lastDecoded ? k + 1 : k;
    return ctx.decode({ layers: [spec.exitLayer, spec.layerCount], count: rows, outputs: 'all', logits });
  }
  // after an end-of-generation draft there is nothing to predict; a probe skips the bonus row
  const bonus = !s.session.isEog(d.tokens[k - 1]) && !s.policy?.probing;
  ctx.removeFrom(p);
  return ctx.decode({ tokens: Int32Array.from([last, ...d.tokens.slice(0, bonus ? k : k - 1)]), outputs: 'all', logits });
}

/**
 * The accept rule. Row j of `verified` is the full model's prediction after drafts[0 .. j).
 * Greedy: drafts are accepted while they equal the full model's argmax. Sampling: draft j is
 * accepted with probability min(1, p_j(d) / q_j(d)); at the first rejection the replacement is
 * sampled from norm(max(0, p_j − q_j)). Returns how many drafts were accepted and the full model's
 * token after them (a correction, or the bonus token when every draft was accepted), or -1 when
 * every draft was accepted and `verified` has no row after the last one.
 */
export function acceptPrefix(
  verified: Pick<NativeDecodeResult, 'argmax' | 'logits'>,
  drafts: readonly number[],
  draftDists: readonly Float64Array[] | null,
  sampling: ResolvedSampling,
  rng: SamplerRng,
  nVocab: number,
  history: readonly number[] = [],
): { accepted: number; next: number } {
  const greedy = sampling.temperature === 0;
  // with penalties, row j's distribution depends on the tokens before it: the history and drafts [0, j)
  const before = (j: number): readonly number[] => (sampling.penalties ? [...history, ...drafts.slice(0, j)] : history);
  for (let j = 0; j < drafts.length; j++) {
    const d = drafts[j];
    if (greedy) {
      const t = greedyToken(verified, sampling, j, nVocab, before(j));
      if (t !== d) return { accepted: j, next: t };
      continue;
    }
    const pj = targetDistribution(verified.logits!, sampling, j, nVocab, before(j));
    const qj = draftDists![j];
    if (rng.next() * qj[d] >= pj[d]) return { accepted: j, next: sampleFrom(residual(pj, qj), rng) };
  }
  const k = drafts.length;
  return { accepted: k, next: k < verified.argmax.length ? pickToken(verified as NativeDecodeResult, sampling, rng, k, nVocab, before(k)) : -1 };
}

/** The newest tokens the penalties look at: the prompt's and the session's (empty without penalties). */
function penaltyHistory(s: LoopState): number[] {
  const p = s.sampling.penalties;
  if (!p) return [];
  const fromSession = s.session.tokens.slice(-p.lastN);
  const fromPrompt = fromSession.length < p.lastN ? s.promptTokens.slice(Math.max(0, s.promptTokens.length - (p.lastN - fromSession.length))) : [];
  return [...fromPrompt, ...fromSession];
}

/**
 * Keeps what was accepted: the KV cache is cut after the last verified token that has a position,
 * and the tokens go to the session. Verified positions p .. p+rows-1 hold `last` and the drafts;
 * with a full-model token (`next`) `last` and the accepted drafts stay. Without one (every draft
 * accepted and no bonus row) the last accepted draft has no position yet and becomes the next
 * round's `last`. Returns the next round's state, or null when the generation stops.
 */
function commit(s: LoopState, p: number, last: number, drafts: readonly number[], accepted: number, next: number): { p: number; last: number } | null {
  const { session, stats } = s;
  const kept = next >= 0 ? accepted : accepted - 1;
  s.ctx.removeFrom(p + kept + 1);
  s.onCached(last);
  for (let j = 0; j < kept; j++) s.onCached(drafts[j]);
  if (!emitRound(session, stats, drafts, accepted, next)) return null;
  return { p: p + kept + 1, last: next >= 0 ? next : drafts[accepted - 1] };
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

function observeRound(s: LoopState, d: Drafts, rows: number, accepted: number, draftMs: number, verifyMs: number): void {
  const k = d.tokens.length;
  s.stats.draftMs += draftMs;
  s.stats.verifyMs += verifyMs;
  s.stats.drafted += k;
  s.stats.draftLengths.push(k);
  s.policy?.observeDraftStep(draftMs / (d.lastDecoded ? k + 1 : k));
  s.policy?.observeVerify(rows, verifyMs);
  s.policy?.observeRound(k, accepted);
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
