// Greedy generation in the addon's own loop: one decodeRun call takes plain steps, free rounds (the
// context lookup, the caller's prediction, or both) and early-exit rounds (at a fixed draft length,
// or at the length adaptive drafting chose before the call, replayed into its policy afterwards)
// until its token budget (the addon finds each match in its own index of the sequence's tokens, or
// follows the prediction, drafts with layers [0, E) and verifies), so a round pays no hand-off and
// no JavaScript of its own. On the 12-layer copy model each call of the in-turn loop cost about
// 0.25 ms beyond its decode, a plain step about 0.3 ms (BENCHMARKS.md section 16, "Stop 44"). The
// addon chooses each free round's drafts with this loop's acceptance counts and cost line
// (native/lookup-policy.h: bestFreeLength and FreeAcceptance's formulas), counting each round and
// each declined draft into them as it goes; the counts are replayed here afterwards. A free round
// is taken where it beats an early-exit round at the rate early-exit rounds measure (the in-turn
// loop's alternativeRate); the addon does not fuse the two sources in one round.
import type { NativeLookupPolicy, NativeRunOptions, NativeRunResult, NativeSequence } from '../native/binding.js';
import { countDrafts, type FreeDraftSource } from './draft-sources.js';
import {
  type FreeRounds,
  freeRoundBeats,
  lookupSource,
  mostFreeDrafts,
  observeProbe,
  predictionSource,
  PROBE_TOKENS,
  probeDue,
  shortestPayingMatch,
  syncSources,
} from './free-rounds.js';
import { takeRunTokens } from './plain.js';
import { countLegacyLookup, type LoopState } from './rounds.js';
import type { DecodeSession } from './session.js';

/**
 * How long one run may take (ms) before its tokens stream out. Twice a plain run's (plain.ts): each
 * call costs a hand-off and the JavaScript around it, and on the copy model the same 64-token
 * generations ran at 1.45x / 1.51x / 1.57x plain (quote; a first version) in calls of 32 / 48 / 64
 * tokens. At 16 ms text still streams about once a frame.
 */
const LOOKUP_RUN_MS = 16;
/**
 * Most tokens of one run, and of the first run of a sequence that has measured nothing yet. 128, not
 * 64: LOOKUP_RUN_MS bounds a run anyway, and where a step is as short as stories260K's (0.07-0.17 ms)
 * each call's JavaScript (choosing, counting, about 0.25 ms beside the hand-off) was 3-4% of lookup's
 * time against plain decoding's; at 128, lookup alone read 1.00-1.01x plain against 0.96-0.97x
 * (BENCHMARKS.md section 16, "Stop 49").
 */
const MAX_RUN_TOKENS = 128;
const FIRST_RUN = 4;
/**
 * Early-exit rounds of one adaptive call, at most (in tokens: this many rounds accepted whole): the
 * policy chooses their length from the rounds before, so a call holds a few of them, not 16 ms of
 * rounds at a length it may already have left (on stories260K, where early exit never pays, a long
 * run of them would cost what the in-turn loop learns from two or three rounds).
 */
const ADAPTIVE_ROUNDS = 4;
/** The acceptance of drafts that are always right, for whether any could pay (below 1: a rate stays finite). */
const WHOLE = 0.999;

/**
 * Tokens for a run of the addon's loop at `perToken` ms a token (NaN: nothing measured yet): as
 * many as take about LOOKUP_RUN_MS, FIRST_RUN before any measurement.
 */
function tokensForRun(perToken: number): number {
  if (Number.isNaN(perToken)) return FIRST_RUN;
  return Math.max(1, Math.min(MAX_RUN_TOKENS, Math.floor(LOOKUP_RUN_MS / Math.max(perToken, 1e-3))));
}

export type Runner = NativeSequence & { decodeRun: NonNullable<NativeSequence['decodeRun']> };

/**
 * Whether generation `s` runs in the addon's loop: greedy steps run there (`runner`); free drafts,
 * if any, chosen by measured rates; early exit, if any, verified from the cached layer-E states, at
 * a fixed draft length or (`adaptive`, only with free drafts) at the length the adaptive policy
 * chooses before each call, which also takes its probes in the in-turn loop. The test choices and
 * overlap keep the in-turn loop.
 */
export function addonRunApplies(s: LoopState, runner: Runner | null, adaptive = false): runner is Runner {
  const { free: f, spec } = s;
  if (runner === null) return false;
  if (f !== null && !(f.options.choice === 'measured' && f.sources.length > 0)) return false;
  if (spec === null) return f !== null;
  const earlyExit = spec.verification === 'cached' && !spec.overlap && !spec.inTurn;
  return s.policy !== null ? adaptive && f !== null && earlyExit : earlyExit;
}

/** Whether the addon's runs of generation `s` take early-exit rounds (a fixed draft length). */
function earlyExitInRuns(s: LoopState): boolean {
  return s.spec !== null && s.policy === null;
}

/**
 * The state the addon's loop chooses a source's draft lengths from: its acceptance and the costs,
 * as bestFreeLength reads them. Until a free round was measured, rounds of PROBE_TOKENS drafts at
 * most (mostFreeDrafts); the addon raises the limit after each round, as the costs here do.
 */
export function lookupPolicy(f: FreeRounds, source: FreeDraftSource['name'] = 'lookup'): NativeLookupPolicy {
  const cost = f.cost.addonState();
  return { ...f.acceptance.addonState(source), ...cost, limit: f.cost.roundsMeasured ? cost.limit : PROBE_TOKENS, maxDrafts: f.options.maxTokens };
}

/** decodeRun's roundSource and observed sources, by number (EARLY_EXIT: an early-exit round). */
const SOURCE_NAMES: readonly FreeDraftSource['name'][] = ['lookup', 'prediction'];
const EARLY_EXIT = 2;

/** A generation's runs in the addon's loop, and the time a token took in them (what sizes the next). */
export class AddonRuns {
  /** Native time per produced token (NaN before a run). */
  private tokenMs = NaN;

  constructor(
    private readonly s: LoopState,
    private readonly ctx: Runner,
    private readonly session: DecodeSession,
  ) {}

  /**
   * Tokens for the next run: as many as take LOOKUP_RUN_MS at the time a token took in this
   * generation's runs; before one, at the plain step the sequence measured, or a token of a
   * 17-row round where only rounds were (a copied text), FIRST_RUN before anything.
   */
  private runTokens(f: FreeRounds | null): number {
    const c = f?.cost;
    const perToken = !Number.isNaN(this.tokenMs) ? this.tokenMs : !c ? NaN : c.stepMeasured ? c.plainMs() : c.roundsMeasured ? c.roundMs(17) / 17 : NaN;
    return tokensForRun(perToken);
  }

  /**
   * Tokens from `last` (at `position`) in one addon call, up to `limit`: as many as take about
   * LOOKUP_RUN_MS (runTokens), so text still streams every few ms and an abort is prompt.
   * The session takes them (what it does not keep leaves the KV cache). Returns the next position
   * and token, or null when the generation stopped.
   */
  async run(
    position: number,
    last: number,
    limit: number,
    onCached: (token: number) => void,
    adaptiveDrafts = 0,
  ): Promise<{ position: number; token: number } | null> {
    const { s, ctx, session } = this;
    const f = s.free;
    // early-exit rounds at the fixed draft length, or at the length adaptive drafting chose for this run
    const spec = earlyExitInRuns(s) || adaptiveDrafts > 0 ? s.spec! : null;
    const draftTokens = adaptiveDrafts > 0 ? adaptiveDrafts : (spec?.draftTokens ?? 0);
    let lookup: NativeRunOptions['lookup'] | null = null;
    let probe = false;
    if (f) {
      syncSources(f, session.tokens); // (the lookup's tokens: the context the addon indexes)
      f.acceptance.age();
      // what a free round must beat: an early-exit round at its measured rate, or a plain step
      const plainRate = f.cost.plainRate();
      const alternative = spec && !Number.isNaN(f.earlyExitRate) ? f.earlyExitRate : plainRate;
      // where no length pays, a probe now and then (one round of PROBE_TOKENS drafts) is what
      // measures whether that changed, as in the in-turn loop (free-rounds.ts, probeDue)
      const pays = f.sources.some((src) => shortestPayingMatch(f, alternative, src.name) !== undefined);
      probe = !pays && probeDue(f, alternative);
      // the addon looks up wherever drafts accepted whole could pay at the measured costs, also while
      // none is taken: the drafts it declines are checked against the output, and that is how an
      // estimate that fell below paying rises again (without, a copied text ran as plain steps for
      // whole generations after a few slow rounds). Where not even those could pay (stories260K, whose
      // verified row costs about a plain step), the run is a plain run: no index, no lookups. A
      // prediction, which costs no index, is always followed
      const context = lookupSource(f);
      const prediction = predictionSource(f);
      const look = context !== undefined && (pays || probe || freeRoundBeats(f, WHOLE, alternative));
      if (look || prediction) {
        lookup = {
          ...(look ? { context: Int32Array.from(context.context), policy: lookupPolicy(f) } : {}),
          ...(prediction ? { prediction: { ...prediction.addonState(), policy: lookupPolicy(f, 'prediction') } } : {}),
          ...(probe ? { force: PROBE_TOKENS, maxRounds: 1 } : {}),
        };
      }
    }
    // (adaptive drafting's rounds: a few a call, as the policy may change their length after each)
    const runTokens = Math.max(1, Math.min(limit, this.runTokens(f), adaptiveDrafts > 0 ? ADAPTIVE_ROUNDS * (adaptiveDrafts + 1) : Infinity));
    // (a round may pass the run's tokens: cut at the run's end, it cost one more round later)
    if (lookup) lookup.runTokens = runTokens;
    const earlyExit: NativeRunOptions['earlyExit'] = spec
      ? {
          layer: spec.exitLayer,
          draftTokens,
          minProbability: spec.minDraftProbability,
          rate: f && !Number.isNaN(f.earlyExitRate) ? f.earlyExitRate : 0,
          ...(lookup ? {} : { runTokens }),
        }
      : undefined;
    const past = Math.max(lookup ? mostFreeDrafts(f!) : 0, draftTokens);
    const maxTokens = Math.min(limit, runTokens + past);
    const t0 = performance.now();
    const r = await ctx.decodeRun({
      token: last,
      maxTokens,
      stopTokens: session.stopTokenIds,
      ...(lookup ? { lookup } : {}),
      ...(earlyExit ? { earlyExit } : {}),
    });
    const wallMs = performance.now() - t0;
    this.tokenMs = r.nativeMs / Math.max(1, r.tokens.length);
    const before = session.tokens.length;
    const next = takeRunTokens(ctx, session, position, last, r.tokens, onCached);
    // (the tokens the session kept: an end token or a stop string may end it inside the run)
    const kept = session.tokens.length - before;
    const freeAccepted = lookup || earlyExit ? observeRun(s, r, wallMs, kept, position) : observePlainRun(s, r, wallMs, kept, position);
    if (probe) observeProbe(f!, freeAccepted);
    return next;
  }
}

/**
 * `steps` plain steps of a run that took `ms` in the addon (its own time, no hand-off): the plain step
 * of the free-draft costs, and adaptive drafting's full step, as the in-turn loop's plain runs give
 * both. Without the second, where free drafts put plain steps in the addon's runs, the policy measured
 * a full step only at its refreshes, and on stories260K (whose step grows from 0.08 to 0.17 ms over a
 * generation) a stale one set against a probe's draft and verification times put it into drafting:
 * 0.8-2.4 early-exit rounds a generation against 0.4 for adaptive drafting alone (BENCHMARKS.md
 * section 16, "Stop 48").
 */
function observePlainSteps(s: LoopState, f: FreeRounds, steps: number, ms: number, position: number): void {
  if (steps <= 0) return;
  f.cost.observePlainRun(steps, ms, false, undefined, position);
  s.policy?.observeFullStep(ms / steps);
}

/** Counts a run from `position` without rounds into the costs and the statistics; returns 0 (no free drafts). */
function observePlainRun(s: LoopState, r: NativeRunResult, wallMs: number, kept: number, position: number): number {
  const f = s.free!;
  s.stats.verifyMs += wallMs;
  observePlainSteps(s, f, r.tokens.length, r.nativeMs, position + r.tokens.length / 2);
  s.stats.draftLengths.push(0);
  s.stats.corrections += kept;
  f.sinceFree += r.tokens.length;
  return 0;
}

/**
 * Counts a run's rounds and plain steps into the acceptance, the costs and the statistics, as the
 * in-turn loop counts its own (the session's counts, accepted and corrections, only for the `kept`
 * tokens it took); returns the free drafts accepted.
 */
function observeRun(s: LoopState, r: NativeRunResult, wallMs: number, kept: number, position: number): number {
  const f = s.free;
  const { stats } = s;
  const rounds = r.roundDrafts?.length ?? 0;
  let freeAccepted = 0;
  let acceptedKept = 0;
  let freeRounds = 0;
  let draftMs = 0;
  let earlyRounds = 0;
  for (let i = 0; i < rounds; i++) {
    const drafted = r.roundDrafts![i];
    const a = r.roundAccepted![i];
    const ms = r.roundMs![i];
    const aKept = Math.max(0, Math.min(a, kept - r.roundAt![i]));
    acceptedKept += aKept;
    stats.draftLengths.push(drafted);
    if (r.roundSource![i] === EARLY_EXIT) {
      // as earlyExitRound counts its round (self-speculative.ts)
      const ee = stats.sources.earlyExit!;
      const dms = r.roundDraftMs![i];
      // adaptive drafting learns from the round as from its own: the round's drafts and its last one
      // were decoded with layers [0, E), and verified in one decode
      s.policy?.observeEarlyRound({ drafted, accepted: a, draftSteps: drafted + 1, draftMs: dms, rows: drafted + 1, verifyMs: ms - dms });
      earlyRounds++;
      stats.drafted += drafted;
      stats.accepted += aKept;
      ee.rounds++;
      ee.draftMs += dms;
      ee.verifyMs += ms - dms;
      countDrafts(ee, 0, drafted, a);
      draftMs += dms;
      continue;
    }
    const name = SOURCE_NAMES[r.roundSource![i]];
    const src = stats.sources[name]!;
    f!.cost.observeRound(drafted + 1, ms, position + r.roundAt![i]);
    src.rounds++;
    src.verifyMs += ms;
    countDrafts(src, 0, drafted, a);
    countLegacyLookup(stats, name, drafted, a);
    freeRounds++;
    freeAccepted += a;
    f!.lastFreeAccepted = a;
  }
  // (the policy's next() asked for the first early-exit round; the others count as if each had asked)
  if (earlyRounds > 1) s.policy?.countRounds(earlyRounds - 1);
  // (the call's time, split as the addon's own times split it; the hand-off goes with verifying)
  stats.draftMs += draftMs;
  stats.verifyMs += Math.max(0, wallMs - draftMs);
  const steps = r.plainSteps ?? 0;
  const switches = r.switchSteps ?? 0;
  if (steps + switches > 0) stats.draftLengths.push(0);
  // (the driver counted the call as one round: a run of plain steps counts as one, as in the in-turn loop)
  stats.rounds += Math.max(0, rounds + (steps + switches > 0 ? 1 : 0) - 1);
  stats.corrections += kept - acceptedKept; // the full model's own tokens
  if (!f) return 0;
  if (r.earlyRate !== undefined && r.earlyRate > 0) f.earlyExitRate = r.earlyRate;
  // what the addon's policy counted, in its order: rounds (each then ages the counts) and declined
  // drafts checked against the output
  const o = r.observed ?? new Int32Array(0);
  for (let i = 0; i + 4 < o.length; i += 5) {
    f.acceptance.observe(SOURCE_NAMES[o[i + 1]], o[i + 2], o[i + 3], o[i + 4]);
    if (o[i] === 0) f.acceptance.age();
  }
  // (the addon's own times: no hand-off, which its rounds do not pay either). A step right after a
  // round builds its one-token graph again: that extra is the round's (FreeRoundCost's switch), not
  // the step's. Counted into the step, it put a plain step at 0.48 ms against 0.29 on the copy
  // model, and rounds of one draft looked as if they paid on free text
  // (the run's steps and switches, at its middle position: where they fell in it is not reported)
  const middle = position + r.tokens.length / 2;
  observePlainSteps(s, f, steps, r.plainMs!, middle);
  if (switches > 0) f.cost.observePlainRun(1, r.switchMs! / switches, true, undefined, middle);
  f.sinceFree = freeRounds > 0 ? 0 : f.sinceFree + r.tokens.length;
  return freeAccepted;
}
