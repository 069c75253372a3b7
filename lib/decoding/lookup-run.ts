// Greedy generation whose draft sources are free (the context lookup, the caller's prediction, or
// both), in the addon's own loop: one decodeRun call takes plain steps and free rounds until its
// token budget (the addon finds each match in its own index of the sequence's tokens, or follows
// the prediction, and verifies the drafts), so a round pays no hand-off and no JavaScript of its
// own. On the 12-layer copy model each call of the in-turn loop cost about 0.25 ms beyond its
// decode, a plain step about 0.3 ms (BENCHMARKS.md section 16, "Stop 44"). The addon chooses each
// round's drafts with this loop's acceptance counts and cost line (native/lookup-policy.h:
// bestFreeLength and FreeAcceptance's formulas), counting each round and each declined draft into
// them as it goes; the counts are replayed here afterwards.
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
/** Most tokens of one run, and of the first run of a sequence that has measured nothing yet. */
const MAX_RUN_TOKENS = 64;
const FIRST_RUN = 4;
/** The acceptance of drafts that are always right, for whether any could pay (below 1: a rate stays finite). */
const WHOLE = 0.999;

type Runner = NativeSequence & { decodeRun: NonNullable<NativeSequence['decodeRun']> };

/**
 * Whether generation `s` runs its free rounds in the addon's loop: greedy steps run there
 * (`runner`), no early exit (unless `withEarlyExit`: the caller runs them only while its adaptive
 * policy takes plain steps), only free sources (the context lookup, a prediction), drafts chosen by
 * measured rates. Early-exit rounds and the test choices keep the in-turn loop.
 */
export function lookupRunApplies(s: LoopState, runner: Runner | null, withEarlyExit = false): runner is Runner {
  const f = s.free;
  return runner !== null && (withEarlyExit || !s.spec) && f !== null && f.options.choice === 'measured' && f.sources.length > 0;
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

/** decodeRun's roundSource and observed sources, by number. */
const SOURCE_NAMES: readonly FreeDraftSource['name'][] = ['lookup', 'prediction'];

/** A generation's lookup runs, and the time a token took in them (what sizes the next). */
export class LookupRuns {
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
  private runTokens(f: FreeRounds): number {
    const c = f.cost;
    const perToken = !Number.isNaN(this.tokenMs) ? this.tokenMs : c.stepMeasured ? c.plainMs() : c.roundsMeasured ? c.roundMs(17) / 17 : NaN;
    if (Number.isNaN(perToken)) return FIRST_RUN;
    return Math.max(1, Math.min(MAX_RUN_TOKENS, Math.floor(LOOKUP_RUN_MS / Math.max(perToken, 1e-3))));
  }

  /**
   * Tokens from `last` (at `position`) in one addon call, up to `limit`: as many as take about
   * LOOKUP_RUN_MS (runTokens), so text still streams every few ms and an abort is prompt.
   * The session takes them (what it does not keep leaves the KV cache). Returns the next position
   * and token, or null when the generation stopped.
   */
  async run(position: number, last: number, limit: number, onCached: (token: number) => void): Promise<{ position: number; token: number } | null> {
    const { s, ctx, session } = this;
    const f = s.free!;
    syncSources(f, session.tokens); // (the lookup's tokens: the context the addon indexes)
    f.acceptance.age();
    // where no length pays, a probe now and then (one round of PROBE_TOKENS drafts) is what
    // measures whether that changed, as in the in-turn loop (free-rounds.ts, probeDue)
    const plainRate = 1 / f.cost.plainMs();
    const pays = f.sources.some((src) => shortestPayingMatch(f, plainRate, src.name) !== undefined);
    const probe = !pays && probeDue(f, plainRate);
    const runTokens = Math.max(1, Math.min(limit, this.runTokens(f)));
    // the addon looks up wherever drafts accepted whole could pay at the measured costs, also while
    // none is taken: the drafts it declines are checked against the output, and that is how an
    // estimate that fell below paying rises again (without, a copied text ran as plain steps for
    // whole generations after a few slow rounds). Where not even those could pay (stories260K, whose
    // verified row costs about a plain step), the run is a plain run: no index, no lookups. A
    // prediction, which costs no index, is always followed
    const context = lookupSource(f);
    const prediction = predictionSource(f);
    const look = context !== undefined && (pays || probe || freeRoundBeats(f, WHOLE, plainRate));
    let lookup: NativeRunOptions['lookup'] | null = null;
    if (look || prediction) {
      lookup = {
        ...(look ? { context: Int32Array.from(context.context), policy: lookupPolicy(f) } : {}),
        ...(prediction ? { prediction: { ...prediction.addonState(), policy: lookupPolicy(f, 'prediction') } } : {}),
        ...(probe ? { force: PROBE_TOKENS, maxRounds: 1 } : {}),
        // (a round may pass the run's tokens: cut at the run's end, it cost one more round later)
        runTokens,
      };
    }
    const maxTokens = lookup ? Math.min(limit, runTokens + mostFreeDrafts(f)) : runTokens;
    const t0 = performance.now();
    const r = await ctx.decodeRun({ token: last, maxTokens, stopTokens: session.stopTokenIds, ...(lookup ? { lookup } : {}) });
    s.stats.verifyMs += performance.now() - t0;
    this.tokenMs = r.nativeMs / Math.max(1, r.tokens.length);
    const accepted = lookup ? observeRun(s, r) : observePlainRun(s, r);
    if (probe) observeProbe(f, accepted);
    return takeRunTokens(ctx, session, position, last, r.tokens, onCached);
  }
}

/** Counts a run without lookup into the costs and the statistics; returns 0 (no drafts). */
function observePlainRun(s: LoopState, r: NativeRunResult): number {
  const f = s.free!;
  f.cost.observePlainRun(r.tokens.length, r.nativeMs, false);
  s.stats.draftLengths.push(0);
  s.stats.corrections += r.tokens.length;
  f.sinceFree += r.tokens.length;
  return 0;
}

/** Counts a run's rounds and plain steps into the acceptance, the costs and the statistics; returns the drafts accepted. */
function observeRun(s: LoopState, r: NativeRunResult): number {
  const f = s.free!;
  const { stats } = s;
  const rounds = r.roundDrafts?.length ?? 0;
  let accepted = 0;
  for (let i = 0; i < rounds; i++) {
    const drafted = r.roundDrafts![i];
    const a = r.roundAccepted![i];
    const name = SOURCE_NAMES[r.roundSource![i]];
    const src = stats.sources[name]!;
    f.cost.observeRound(drafted + 1, r.roundMs![i]);
    stats.draftLengths.push(drafted);
    src.rounds++;
    src.verifyMs += r.roundMs![i];
    countDrafts(src, 0, drafted, a);
    countLegacyLookup(stats, name, drafted, a);
    accepted += a;
  }
  // (the addon's own times: no hand-off, which its rounds do not pay either). A step right after a
  // round builds its one-token graph again: that extra is the round's (FreeRoundCost's switch), not
  // the step's. Counted into the step, it put a plain step at 0.48 ms against 0.29 on the copy
  // model, and rounds of one draft looked as if they paid on free text
  // what the addon's policy counted, in its order: rounds (each then ages the counts) and declined
  // drafts checked against the output
  const o = r.observed ?? new Int32Array(0);
  for (let i = 0; i + 4 < o.length; i += 5) {
    f.acceptance.observe(SOURCE_NAMES[o[i + 1]], o[i + 2], o[i + 3], o[i + 4]);
    if (o[i] === 0) f.acceptance.age();
  }
  const steps = r.plainSteps ?? 0;
  const switches = r.switchSteps ?? 0;
  if (steps > 0) f.cost.observePlainRun(steps, r.plainMs!, false);
  if (switches > 0) f.cost.observePlainRun(1, r.switchMs! / switches, true);
  if (steps + switches > 0) stats.draftLengths.push(0);
  stats.corrections += r.tokens.length - accepted; // the full model's own tokens
  f.sinceFree = rounds > 0 ? 0 : f.sinceFree + steps + switches;
  if (rounds > 0) f.lastFreeAccepted = r.roundAccepted![rounds - 1];
  return accepted;
}
