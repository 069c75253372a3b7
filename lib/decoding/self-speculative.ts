// The in-turn strategy of the generation driver (driver.ts holds the round skeleton; the overlapped
// strategy is pipelined.ts): every round runs on the generation's own context, one after the other
// (the rounds' machinery is in rounds.ts, free drafts in free-rounds.ts, the accept rule in
// accept.ts). A round is a plain step (or, greedy, a run of plain steps in one addon call), a free
// draft (context lookup, the caller's prediction: decoding/draft-sources.ts) verified with all
// layers, an early-exit draft verified from its cached layer-E states, or a free draft that early
// exit continues.
//
// Self-speculative decoding (LayerSkip): draft with the first E layers (early exit through the
// model's own norm and LM head, or a fitted draft head), verify the drafts with layers [E, N) from
// their cached layer-E hidden states in one call, accept the longest agreeing prefix plus the full
// model's own next token, and roll the KV cache back to what was accepted. A round here is one call
// into the addon (draftVerify; draft and verify where a lookup continues the drafts); greedy rounds
// at a fixed draft length run many per call in the addon's own loop (addon-run.ts).
//
// Greedy: a draft is accepted iff it equals the full model's argmax, so the output is the
// plain greedy output token for token. Sampling: standard speculative sampling (accept with
// min(1, p/q), else resample from norm(max(0, p − q))), which keeps the full model's distribution;
// a free draft is a point mass.
import { checkBoolean, checkInteger, checkNumber, ContextFullError } from '../native/errors.js';
import { assertLayerRanges } from '../model-file/architectures.js';
import type { SpeculativeStats } from './types.js';
import type { NativeDecodeResult, NativeModelInfo, NativeSequence } from '../native/binding.js';
import { pickToken, SamplerRng, type ResolvedSampling } from './sampling.js';
import type { DraftHead } from '../draft-head/draft-head.js';
import { acceptPrefix, newStats } from './accept.js';
import { type Cursor, driveRounds, MAX_ROUND_DRAFTS, type RoundStrategy } from './driver.js';
import { countDrafts, measuredChoice, newSourceStats, type ResolvedFreeDrafts } from './draft-sources.js';
import { DraftPolicy } from './draft-policy.js';
import { type GenerationMemory, type MemoryKeyParts, newFreeMemory } from './generation-memory.js';
import {
  chooseFree,
  earlyExitExtension,
  freeRound,
  freeRoundsCouldPay,
  type FreeRounds,
  freeSources,
  fusedRound,
  lookupAfterDrafts,
  lookupMayContinue,
  lookupSource,
  PROBE_EVERY,
  plainRunEnd,
  syncSources,
} from './free-rounds.js';
import { plainRun, runLength } from './plain.js';
import { AddonRuns, addonRunApplies } from './addon-run.js';
import { commit, countLegacyLookup, type Drafts, draftAndVerify, ema, type LoopState, observeRound, penaltyHistory, plainRound } from './rounds.js';
import type { DecodeSession } from './session.js';
import { checkOptionKeys, type KeysOf } from '../util/option-keys.js';

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
  /** @internal Benchmarks: rounds in the TypeScript loop where the addon's would run (freeDraftChoice 'in-turn'). */
  inTurn?: boolean;
}

export function resolveSelfSpeculative(o: SelfSpeculativeOptions, info: NativeModelInfo): ResolvedSelfSpeculative {
  if (typeof o !== 'object' || o === null) throw new TypeError('selfSpeculative must be an object');
  checkOptionKeys('selfSpeculative', o, SELF_SPECULATIVE_KEYS);
  assertLayerRanges(info.architecture, 'selfSpeculative');
  const n = info.layerCount;
  if (n < 2) throw new RangeError('selfSpeculative: the model needs at least 2 layers');
  const exitLayer = checkInteger('selfSpeculative.exitLayer', o.exitLayer, 1, n - 1);
  const draftTokens = checkInteger('selfSpeculative.draftTokens', o.draftTokens ?? 4, 1, MAX_ROUND_DRAFTS);
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
  const lookupTokens = checkInteger('selfSpeculative.lookupTokens', o.lookupTokens ?? 8, 1, MAX_ROUND_DRAFTS);
  if (lookup && overlap)
    throw new RangeError('selfSpeculative: lookup and overlap cannot be combined (an overlapped round is drafted by early exit ahead of time)');
  return { exitLayer, draftTokens, adaptive, minDraftProbability, verification, layerCount: n, draftHead, overlap, lookup, lookupTokens };
}

/**
 * Self-speculative decoding, with free drafts (context lookup, a prediction) where they pay. With
 * `spec` null only free drafts run and the other steps are plain.
 */
export async function selfSpeculativeLoop(
  ctx: NativeSequence,
  first: NativeDecodeResult,
  session: DecodeSession,
  sampling: ResolvedSampling,
  nVocab: number,
  spec: ResolvedSelfSpeculative | null,
  onCached: (token: number) => void,
  promptTokens: readonly number[] = [],
  freeOptions: ResolvedFreeDrafts | null = null,
  memory: GenerationMemory | null = null,
): Promise<SpeculativeStats> {
  // what earlier generations on this sequence measured, for the same configuration
  const parts: MemoryKeyParts = {
    exitLayer: spec?.exitLayer ?? null,
    draftTokens: spec?.draftTokens ?? 0,
    verification: spec?.verification ?? '-',
    draftHead: spec?.draftHead ?? null,
    sampling,
    free: freeOptions,
  };
  const newPolicy = () => new DraftPolicy(spec!.draftTokens, spec!.exitLayer / spec!.layerCount);
  const policy = spec?.adaptive ? (memory ? memory.policy(parts, newPolicy) : newPolicy()) : null;
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
  // the free-draft state this generation starts from (kept by the sequence, or new), written back at its end
  const kept = freeOptions ? (memory?.freeState(parts, PROBE_EVERY) ?? newFreeMemory(PROBE_EVERY)) : null;
  let indexedBefore = 0;
  if (freeOptions && kept) {
    // the lookup index the sequence kept, if this context extends what it indexed
    const index = freeOptions.lookup ? (memory?.takeLookup(promptTokens) ?? null) : null;
    indexedBefore = index?.lookup.length ?? 0;
    const sources = freeSources(freeOptions, promptTokens, index?.lookup);
    s.free = {
      ...kept,
      options: freeOptions,
      sources,
      synced: 0,
      afterRound: true,
      lastFreeAccepted: 0,
      shadows: [],
      repeats: ctx.decodeRun !== undefined && freeOptions.lookup && measuredChoice(freeOptions),
      repeatFilter: index?.filter ?? null,
      stoppedAtRepeat: false,
      repeatDeclined: false,
    };
    for (const src of sources) s.stats.sources[src.name] = newSourceStats();
    if (freeOptions.lookup) s.stats.lookup = { rounds: 0, drafted: 0, accepted: 0 };
  }
  const { contextSize, nextPosition } = ctx.state();
  const last = pickToken(first, sampling, s.rng, 0, nVocab, penaltyHistory(s), session.grammar); // the first token comes from the prompt's decode
  try {
    return await driveRounds(session, s.stats, contextSize, { p: nextPosition, last }, inTurn(s, contextSize));
  } finally {
    if (kept && s.free) {
      kept.sinceFree = s.free.sinceFree;
      kept.probeInterval = s.free.probeInterval;
      kept.earlyExitRate = s.free.earlyExitRate;
      keepLookup(s, s.free, memory, indexedBefore);
    }
  }
}

/**
 * At a generation's end (also after an error or abort: the index holds tokens only, which stay
 * valid), adds the output the rounds had not yet given it, counts the tokens the generation added
 * (into the stats object the loop returns) and leaves the index with the sequence for the next
 * generation, whose prompt usually holds this one's (a chat's next turn).
 */
function keepLookup(s: LoopState, f: FreeRounds, memory: GenerationMemory | null, indexedBefore: number): void {
  const lookup = lookupSource(f);
  if (!lookup) return;
  syncSources(f, s.session.tokens);
  s.stats.sources.lookup!.indexed = lookup.length - indexedBefore;
  memory?.keepLookup({ lookup, filter: f.repeatFilter });
}

/**
 * The in-turn strategy: each round is a free draft (alone, or continued by early exit), an
 * early-exit draft (possibly continued by a lookup), or plain steps, one after the other on `s.ctx`.
 */
function inTurn(s: LoopState, contextSize: number): RoundStrategy {
  const { session, sampling, spec, policy } = s;
  // greedy plain steps run several per addon call (decodeRun); sampling steps one by one
  // (not with penalties: the addon's loop picks the plain argmax)
  // (nor with a grammar: it masks each row in TypeScript)
  const runner =
    sampling.temperature === 0 && !sampling.penalties && !sampling.constrained && s.ctx.decodeRun ? (s.ctx as Parameters<typeof plainRun>[0]) : null;
  // free drafts: plain steps per run, doubling from 8 up to runLength(), or staying at 8 while free
  // drafts are accepted and could pay (a run may hide the next free draft: free rounds follow each
  // other without plain steps between them while the text repeats, so only the start of a repeat
  // waits for a run). Where free rounds cannot pay, short runs would only add hand-offs: on
  // stories260K 28 runs of 8 steps instead of 7 in a 256-token generation.
  let plainSteps = 8;
  let stepMs = NaN; // one plain step, measured in runs
  // greedy free drafts and fixed-length early exit: plain steps, free rounds and early-exit rounds in
  // the addon's loop (addon-run.ts). With adaptive early exit and free drafts, its plain steps and
  // its early-exit rounds run there too, among the free rounds, up to the policy's next choice. In the
  // in-turn loop every round and plain run paid a hand-off and its JavaScript: on the committed
  // 12-layer model adaptive early exit + lookup ran free continuation at 1.11x plain where lookup
  // alone, in the addon's loop, ran 1.21x (BENCHMARKS.md section 16, "Stop 45")
  const runs = addonRunApplies(s, runner, policy !== null) ? new AddonRuns(s, runner, session) : null;
  return {
    async round({ p, last }, room) {
      // (the last step before the probe goes through next(), which starts it)
      const upTo = !runs ? 0 : !policy ? Infinity : policy.plainWins() ? policy.plainStepsBeforeProbe() - 1 : 0;
      if (runs && upTo > 0) {
        const before = session.tokens.length;
        const r = await runs.run(p, last, Math.min(session.remaining, contextSize - p, upTo), s.onCached);
        policy?.countPlain(session.tokens.length - before);
        return r && { p: r.position, last: r.token };
      }
      // adaptive drafting's own turn, with free drafts in the addon's loop: its probe (due after its
      // plain steps there) as one round here, and, while drafting wins, its early-exit rounds at the
      // length it chooses now, a few a call in the addon's loop among the free rounds that beat them.
      // Here, a free round taken in their place left the policy where it was (drafting, or its probe
      // due) and the next round came back here, each with a hand-off the cost line does not count:
      // adaptive + lookup read 0.76x plain on a stories260K prompt where either alone read
      // 0.97-1.0x (BENCHMARKS.md section 16, "Stop 47")
      const asked = runs && policy ? Math.max(0, Math.min(policy.next(), room)) : undefined;
      if (asked && policy!.probing) return earlyExitRound(s, p, last, asked, room);
      if (asked) {
        const r = await runs!.run(p, last, Math.min(session.remaining, contextSize - p), s.onCached, asked);
        return r && { p: r.position, last: r.token };
      }
      // (asked 0: the policy asked for plain steps that measure a full step, which a free round would put off)
      const choice = s.free && room > 0 && asked === undefined ? chooseFree(s, s.free, room) : null; // (syncs the sources)
      if (choice) {
        const extend = spec && !choice.probe ? earlyExitExtension(s, choice, room) : 0;
        return extend > 0 ? fusedRound(s, p, last, choice, extend) : freeRound(s, p, last, choice);
      }
      // (next() once a step: asked above already, where it was 0)
      const want = asked !== undefined ? 0 : spec ? Math.max(0, Math.min(policy ? policy.next() : spec.draftTokens, room)) : 0;
      if (want > 0) return earlyExitRound(s, p, last, want, room);
      if (!runner) {
        const next = await plainRound(s, last);
        if (s.free) s.free.sinceFree++;
        return { p: p + 1, last: next };
      }
      // plain steps in one call: until the adaptive policy's next probe and, with free drafts, the
      // next look at their sources (a run as long as the policy's probe interval, up to 512 steps,
      // would hide a repeat that a lookup could draft) or a repeat the lookup would draft, or the
      // run length
      const end = s.free ? plainRunEnd(s, s.free, last, plainSteps) : { cap: Infinity, repeat: null };
      const cap = Math.min(policy ? policy.plainStepsBeforeProbe() : Infinity, end.cap);
      const n = Math.min(cap, Number.isNaN(stepMs) ? 2 : runLength(stepMs), session.remaining, contextSize - p);
      const t0 = performance.now();
      const before = session.tokens.length;
      const r = await plainRun(runner, session, p, last, n, s.onCached, end.repeat ?? undefined);
      const ms = performance.now() - t0;
      s.stats.verifyMs += ms;
      s.stats.corrections += session.tokens.length - before; // the full model's own tokens
      if (!r) return null;
      const steps = r.position - p;
      stepMs = r.nativeMs / steps;
      s.stats.draftLengths.push(0);
      policy?.skipPlain(steps);
      // (with the addon's runs the policy's rounds are timed there, without a hand-off: its full step too)
      policy?.observeFullStep((runs ? r.nativeMs : ms) / steps);
      if (s.free) {
        s.free.cost.observePlainRun(steps, ms, s.free.afterRound, r.firstStepMs, p + steps / 2);
        s.free.afterRound = false;
        s.free.sinceFree += steps;
        s.free.stoppedAtRepeat = r.repeat;
        plainSteps = Math.min(plainSteps * 2, s.free.lastFreeAccepted > 0 && freeRoundsCouldPay(s.free) ? 8 : runLength(stepMs));
      }
      return { p: r.position, last: r.token };
    },
    recover(e, at) {
      // a context shared by several sequences ran out of cells (the others hold them): the generation
      // ends as at a full context, with its text, instead of losing it to an error
      if (!(e instanceof ContextFullError) || session.done) return false;
      s.ctx.removeFrom(at.p); // drafts of the failed round, if any (a lookup continuation's call may fail after the drafts)
      session.stop('contextFull');
      return true;
    },
  };
}

/** An early-exit round: up to `want` drafts from layers [0, E), a lookup may continue them, one verification. */
async function earlyExitRound(s: LoopState, p: number, last: number, want: number, room: number): Promise<Cursor | null> {
  const { session, sampling, nVocab } = s;
  const t0 = performance.now();
  // a lookup may continue the early-exit drafts (one more call, for layers [0, E) of its drafts)
  const found: { ext: Awaited<ReturnType<typeof lookupAfterDrafts>> } = { ext: null };
  const continueDrafts = lookupMayContinue(s)
    ? async (e: Drafts) => {
        found.ext = await lookupAfterDrafts(s, e, room);
        return found.ext?.drafts ?? null;
      }
    : undefined;
  const { early, d, v, draftMs, verifyMs } = await draftAndVerify(s, p, last, want, [], continueDrafts);
  const { ext } = found;
  const t1 = t0 + draftMs;
  const k = early.tokens.length;
  const t2 = t1 + verifyMs;
  const { accepted, next } = acceptPrefix(v, d.tokens, d.dists, sampling, s.rng, nVocab, penaltyHistory(s), session.grammar, d.rejected);
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
  return after;
}
