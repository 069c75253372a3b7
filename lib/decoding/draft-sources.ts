// Draft sources and the measurements that choose between them each round.
//
// Early exit drafts cost model layers; free drafts (context lookup, a caller's prediction) cost
// nothing to make, only their verification. A round takes a free draft when its expected tokens per
// millisecond beat the alternative (an early-exit round, or a plain step), with the draft length
// that maximises that rate: acceptance is estimated per source and per match length (a long match
// in the context is far more likely to continue than a 2-token one), and the cost of verifying k
// rows with all layers is measured (a least-squares line through recent rounds).
import { checkEnum, checkInteger } from '../native/errors.js';
import type { SourceStats } from './types.js';
import { costLine, lowerMedian } from './cost-model.js';
import { checkOptionKeys, type KeysOf } from '../util/option-keys.js';
import { MAX_ROUND_DRAFTS } from './driver.js';

export type DraftSourceName = 'earlyExit' | 'lookup' | 'prediction';

/** A source of drafts that cost no model layers. */
export interface FreeDraftSource {
  readonly name: 'lookup' | 'prediction';
  /** A token of the output (the lookup also reads the prompt first). */
  push(token: number): void;
  /** Up to `max` tokens predicted for after the newest token (empty: none). */
  draft(max: number): number[];
  /** How many newest tokens support the draft (its confidence; 0: no draft). */
  readonly matchLength: number;
  /** The draft after the newest tokens and `extra` tokens not yet accepted (lookup only). */
  peek?(extra: readonly number[], max: number): { tokens: number[]; matchLength: number };
}

export function newSourceStats(): SourceStats {
  return { rounds: 0, drafted: 0, accepted: 0, draftedByPosition: [], acceptedByPosition: [], draftMs: 0, verifyMs: 0 };
}

/** Counts one round's drafts of a source at draft positions from `offset`, `accepted` of them accepted. */
export function countDrafts(stats: SourceStats, offset: number, drafted: number, accepted: number): void {
  stats.drafted += drafted;
  stats.accepted += accepted;
  for (let j = 0; j < drafted; j++) {
    const at = offset + j;
    while (stats.draftedByPosition.length <= at) {
      stats.draftedByPosition.push(0);
      stats.acceptedByPosition.push(0);
    }
    stats.draftedByPosition[at]++;
    if (j < accepted) stats.acceptedByPosition[at]++;
  }
}

/** Match lengths that share an acceptance estimate. */
const BUCKETS = [2, 4, 8, 16, Infinity] as const;
/** The shortest match length of each bucket. */
export const BUCKET_STARTS: readonly number[] = [1, ...BUCKETS.slice(0, -1).map((b) => b + 1)];
/**
 * Prior per source and bucket (as `PRIOR_WEIGHT` pseudo-observations): optimistic enough that a
 * source is tried. Each generation starts near them (a tenth of earlier evidence carries over), and
 * the shortest match they would take is where plain runs end at a repeat (repeatStop).
 */
const PRIOR: Record<FreeDraftSource['name'], readonly number[]> = {
  // a match in the context: two tokens of it say little, sixteen a lot. At 0.35-0.9 a repeat ended a
  // run at a 5-token match and a short match waited for evidence in every new generation; at these,
  // 3 tokens, and the copy model's quote ran 3-12% faster, edit 3-5%, free 0-4%, its chat (drafts
  // accepted 45%) 0-4% slower (BENCHMARKS.md section 16, "Stop 41"). The long matches' stays at 0.9:
  // at 0.95 a whole draft looked as if it could pay on stories260K, whose plain runs then stopped
  // at repeats for drafts that never pay
  lookup: [0.5, 0.7, 0.85, 0.9, 0.9],
  // the caller's own prediction of the output: its short runs are the output's first tokens and
  // the re-alignment after an edit, which the caller vouches for as much as the rest. With the
  // lookup's priors a prediction waited for a 3-token run at the start and after every edit, and
  // drafted about half of an edit task's tokens. Higher priors for its longer runs (0.85-0.95)
  // reached long rounds sooner where the prediction is the output (4-7% faster) but read 0.98x on
  // the edit task, where the output leaves the revised words (BENCHMARKS.md section 16, "Stop 46")
  prediction: [0.75, 0.8, 0.85, 0.9, 0.9],
};
const PRIOR_WEIGHT = 2;

/**
 * Per-token acceptance of free drafts, per source and match-length bucket: accepted / (accepted +
 * rejections), the maximum-likelihood estimate for a geometric run, with forgetting. Every round
 * also decays the counts a little, so a bucket that once failed is tried again later.
 */
export class FreeAcceptance {
  // per source, per bucket (arrays, not a map of string keys: a choice reads them for every draft
  // it weighs, a few times per plain run, on the main thread between decodes)
  private readonly counts: Record<FreeDraftSource['name'], { accepted: number; rejected: number }[]> = {
    lookup: BUCKETS.map(() => ({ accepted: 0, rejected: 0 })),
    prediction: BUCKETS.map(() => ({ accepted: 0, rejected: 0 })),
  };
  private static readonly decay = 0.95; // per drafted token
  private static readonly ageing = 0.995; // per round
  private static readonly carriedOver = 0.1; // per new generation (startGeneration)

  estimate(source: FreeDraftSource['name'], matchLength: number): number {
    const b = bucket(matchLength);
    const c = this.counts[source][b];
    return (c.accepted + PRIOR_WEIGHT * PRIOR[source][b]) / (c.accepted + c.rejected + PRIOR_WEIGHT);
  }

  /**
   * A round's `drafted` drafts from a match of `matchLength`, `accepted` of them accepted. Draft i
   * is counted at the match it extends, matchLength + i: once the output follows a draft, its match
   * is that much longer (so a long copy's later drafts count where a long match's drafts do). Each
   * bucket the round reaches decays once by 0.95 per draft.
   */
  observe(source: FreeDraftSource['name'], matchLength: number, drafted: number, accepted: number): void {
    const d = FreeAcceptance.decay ** drafted;
    let previous = -1; // buckets only grow with i: a new one is decayed when the drafts reach it
    for (let i = 0; i <= Math.min(accepted, drafted - 1); i++) {
      const b = bucket(matchLength + i);
      const c = this.counts[source][b];
      if (b !== previous) {
        previous = b;
        c.accepted *= d;
        c.rejected *= d;
      }
      if (i < accepted) c.accepted++;
      else c.rejected++;
    }
  }

  /** Per-draft acceptance of the first `n` drafts after a match of `matchLength` (draft i: at matchLength + i). */
  estimates(source: FreeDraftSource['name'], matchLength: number, n: number): number[] {
    const out = new Array<number>(n);
    for (let i = 0; i < n; i++) out[i] = this.estimate(source, matchLength + i);
    return out;
  }

  age(): void {
    this.scale(FreeAcceptance.ageing);
  }

  /**
   * A source's counts, priors and rates, for the addon's lookup loop (native/lookup-policy.h), which
   * chooses with them as estimate() and observe() do, and ages them once a round as age() does.
   */
  addonState(source: FreeDraftSource['name']): AddonAcceptance {
    return {
      counts: Float64Array.from(this.counts[source].flatMap((c) => [c.accepted, c.rejected])),
      priors: Float64Array.from(PRIOR[source]),
      priorWeight: PRIOR_WEIGHT,
      decay: FreeAcceptance.decay,
      ageing: FreeAcceptance.ageing,
    };
  }

  /**
   * A new generation, usually on another prompt: what earlier generations saw counts a tenth.
   * Acceptance belongs to a text more than to a configuration: after a chat prompt whose long
   * matches were mostly rejected (4 of 21), the full kept counts held lookup off the next prompt,
   * an edit that repeats its passage, for its whole generation (BENCHMARKS.md 16, "Stop 34"); a
   * quarter still held the next task's short matches back (stop 41).
   * Costs are kept whole: they do not depend on the text.
   */
  startGeneration(): void {
    this.scale(FreeAcceptance.carriedOver);
  }

  /** Every count times `f`: older evidence weighs less, the prior relatively more. */
  private scale(f: number): void {
    for (const buckets of Object.values(this.counts)) {
      for (const c of buckets) {
        c.accepted *= f;
        c.rejected *= f;
      }
    }
  }
}

/** FreeAcceptance's state as the addon's lookup loop takes it (lookup.policy of decodeRun). */
export interface AddonAcceptance {
  /** Per bucket, accepted then rejected. */
  counts: Float64Array;
  priors: Float64Array;
  priorWeight: number;
  decay: number;
  ageing: number;
}

function bucket(matchLength: number): number {
  let b = 0;
  while (matchLength > BUCKETS[b]) b++; // (the last bucket is unbounded)
  return b;
}

/**
 * What a free round costs against a plain step, in milliseconds, as the generation measures it.
 *
 * - A plain step: per-step time of plain runs that did not follow a multi-row decode (llama.cpp
 *   reuses a one-token graph from step to step; a decode of another shape builds a new one).
 * - A free round of k rows (the newest token and k - 1 drafts, all layers): the median of recent
 *   rounds of k rows where there are SIZE_SAMPLES of them, else a least-squares line through recent
 *   free rounds, which pay their own graph build; while their sizes span fewer than TRUSTED_SPAN
 *   rows, a line through their mean at half a plain step a row (half their mean cost a row before a
 *   step is measured), or before any, 1 + 0.5 (k - 1) plain steps (UNMEASURED_ROW_COST; the first
 *   round, probe-sized, measures it).
 * - The switch back: the extra time of the first plain run after a free round (its graph is built
 *   again; on stories260K that alone costs about a plain step).
 * - The position: a step and each row of a round cost `slope` more a position on (attention covers
 *   the KV window), fitted through the plain runs, or through the rounds of each size where plain
 *   runs do not span enough positions (early exit at a fixed draft length takes no plain step);
 *   rounds are kept at position 0 and every cost is read where it decodes (`position`, the
 *   session's next token by default).
 */
/**
 * A free round's extra row, in plain steps, until a round is measured. Measured (BENCHMARKS.md
 * section 16): 0.4 on the 1B shape at 2 threads (memory-bound), 0.55-0.7 on the 12-layer brown model
 * and 0.5-0.9 on stories260K at 1 thread (compute- and overhead-bound). At 0.5 a guessed round
 * of a 2-token draft (3 rows) pays only at an acceptance above 0.62: a short match (the 0.35-0.55
 * priors) waits for a measured cost, a long one (0.75 and up) is tried.
 */
const UNMEASURED_ROW_COST = 0.5;
/** The most a switch back to plain steps is taken to cost, in plain steps (a larger sample is noise). */
const MAX_SWITCH_STEPS = 3;
/**
 * A round measured at more than this many times what the typical round measured against the cost
 * line was slowed by something else, a pause of the machine (a real change of cost moves the typical
 * round too).
 */
const PAUSED_ROUND = 2;
/** Samples of one row count before their median is its cost (FreeRoundCost.bySize). */
const SIZE_SAMPLES = 3;
/** Rows between the smallest and the largest round measured before the cost line's slope is trusted. */
const TRUSTED_SPAN = 4;
/** Plain runs the step's slope over positions is fitted through, and the span of positions they must cover. */
const STEP_SAMPLES = 24;
const SLOPE_SPAN = 64;

export class FreeRoundCost {
  /**
   * How much faster than plain steps a free round must be expected to run to be taken, where the
   * alternative is a plain step. The choice takes rounds where its estimates are high, so they are
   * optimistic in the rounds taken (BENCHMARKS.md section 16, "Stop 48": by decile 0.44 predicted,
   * 0.34 realized ... 0.95 / 0.90), and a round predicted to win by a few percent loses on average.
   * On stories260K, whose verified row costs about a plain step, lookup took 10-20 such rounds a
   * generation at 0.94-0.96x plain; at 1.1, 0.97-0.99x (the copy model and brown-12L unchanged;
   * "Stop 49"). Against an early-exit round, whose rate is measured, none: there a margin of 1.1
   * cost fusion 3% on stories260K.
   */
  static plainMargin = 1.1;
  /** Recent free rounds: [rows, ms, position of their first row]. */
  private readonly samples: [number, number, number][] = [];
  private base = NaN;
  private perRow = NaN;
  private step = NaN;
  /** The positions of the steps `step` averages, averaged alike (where the step line passes). */
  private stepPosition = 0;
  /** Recent plain steps: [mean position, ms a step], what the slope is fitted through. */
  private readonly steps: [number, number][] = [];
  /**
   * What a plain step, and each verified row of a round, costs more a position further on (ms): on
   * the CPU attention covers the KV window, and on stories260K a step grows from 0.07 to 0.17 ms
   * over a 256-token generation while a round's rows grow alike (a row's attention is a step's).
   * Without it every cost was an average over positions: a generation began with the step of the
   * previous one's end (twice its cost) and rounds that lose to plain steps looked as if they paid,
   * and a 17-row round late in a generation cost twice what a line through earlier rounds said
   * (BENCHMARKS.md section 16, "Stop 49").
   */
  private slope = 0;
  /**
   * The slope through the plain runs once they span SLOPE_SPAN positions (null before). Until then
   * the slope is fitted through the free rounds themselves (roundsSlope): with early exit at a fixed
   * draft length a generation takes no plain step, and without a slope a free round was priced at
   * its average over positions against early-exit rounds measured where they ran. On stories260K a
   * one-draft lookup round took 0.16-0.17 ms in a generation's first 64 tokens and 0.28-0.29 in its
   * last, an early-exit round 0.28 and 0.51: early on lookup rounds were declined where they ran at
   * 10 tokens a ms against 7, and late long rounds were taken at half their cost (BENCHMARKS.md
   * section 16, "Stop 50").
   */
  private stepsSlope: number | null = null;
  /** Whether base, perRow and bySize are fitted through the samples as they are (fit()). */
  private fitted = true;
  private switchMs = NaN;
  /** The position the costs are read at by default: the session's next token (syncSources sets it). */
  position = 0;
  /** The most rows of the samples (kept: bestFreeLength reads it at every choice). */
  private largest = 0;
  /**
   * Per row count measured at least SIZE_SAMPLES times among the kept samples, the lower median of
   * their times: roundMs takes it before the line. The line is one for rounds of every size, and
   * where they mix it can be far off for some: on stories260K with early exit, a line through rounds
   * of 2-17 rows put a 2-row round at 0.27 ms where they took 0.21-0.23, so lookup rounds of one draft
   * looked worse than early-exit rounds where they were better (BENCHMARKS.md section 16, "Stop 47").
   */
  private readonly bySize = new Map<number, number>();
  /** The most free drafts (and the newest token) a fused round verified (noteFusedRows). */
  private fusedRows = 0;

  /** A free round's decode of `rows` rows, the first at `position`, took `ms`. */
  observeRound(rows: number, ms: number, position = this.position): void {
    if (!(ms > 0)) return;
    this.samples.push([rows, ms, position]);
    if (this.samples.length > 48) this.samples.shift();
    this.largest = this.samples.reduce((m, [x]) => Math.max(m, x), 0);
    this.fitted = false;
  }

  /**
   * The slope (the plain runs', else the rounds'), and the line and the per-size costs through the
   * samples, each taken back to position 0 (the slope's part of its rows off); made when a cost is
   * read after a change, not at each round (a run of the addon's loop reports up to 64 rounds, and a
   * fit at each cost stories260K's lookup 0.5 ms a generation).
   */
  private fit(): void {
    if (this.fitted) return;
    this.fitted = true;
    this.slope = this.stepsSlope ?? this.roundsSlope();
    if (this.samples.length === 0) return;
    const at0 = this.samples.map(([x, y, p]): [number, number] => [x, Math.max(0.1 * y, y - x * this.slope * p)]);
    let line = costLine(at0, 1e-6, 1 / 2);
    // a pause of the machine only ever adds time: a round measured at more than PAUSED_ROUND times
    // what the typical round measured against the line (the lower median of the ratios) is left out
    // of it. Kept, one slow probe can hold lookup off a copying text for thousands of tokens: no round
    // pays at that cost, so none is measured again (most likely what BENCHMARKS.md section 16, stop
    // 39, saw: lookup drafting nothing on 9 of 10 documents the model copied)
    const ratios = at0.map(([x, y]) => y / (line.base + line.perUnit * x));
    const typical = lowerMedian(ratios)!;
    const kept = at0.filter((_, i) => ratios[i] <= PAUSED_ROUND * typical);
    if (kept.length < at0.length) line = costLine(kept, 1e-6, 1 / 2);
    // through rounds of nearly one size the slope is a guess (half their mean cost a row) or noise
    // (least squares through 2- and 3-row rounds), and a round of 2-3 rows costs mostly what any
    // round costs (a graph built for its shape, the hand-off). After a first 2-row round on the copy
    // model the guess put a 17-row round at 5.5 ms against 3.1 measured; after a chat whose drafts
    // failed, 48 rounds of 2-3 rows put it at 39 ms. Rounds may grow only to twice the largest
    // measured one, so no larger round was taken to correct it, and lookup drafted nothing on the
    // texts the model copied next (BENCHMARKS.md section 16, "Stop 40"). There a row is taken to cost
    // what an unmeasured one does. A slope too low is no safer: the addon's loop raises its limit
    // after each round it takes (2r - 1 drafts), within the run, at the same line. In a fresh
    // context on stories260K, a least-squares slope of 0 through 2- and 3-row rounds put 17 rows at
    // the cost of 5, and one run took 31 rounds of 11-16 drafts, nearly all rejected (66 ms for 110
    // tokens, 0.35x plain; BENCHMARKS.md section 16, "Stop 49")
    const guessed = this.stepMeasured ? UNMEASURED_ROW_COST * this.plainMs(0) : Number.NaN;
    const sizes = kept.map(([x]) => x);
    if (Math.max(...sizes) - Math.min(...sizes) < TRUSTED_SPAN && !Number.isNaN(guessed)) {
      // (through their mean: the base is the mean cost less the guessed rows' share)
      const rowsCost = kept.reduce((sum, [x, y]) => sum + y - guessed * x, 0);
      line = { base: Math.max(0, rowsCost / kept.length), perUnit: guessed };
    }
    this.base = line.base;
    this.perRow = line.perUnit;
    const times = new Map<number, number[]>();
    for (const [x, y] of kept) {
      const ys = times.get(x);
      if (ys) ys.push(y);
      else times.set(x, [y]);
    }
    this.bySize.clear();
    for (const [x, ys] of times) if (ys.length >= SIZE_SAMPLES) this.bySize.set(x, lowerMedian(ys)!);
  }

  /** Free rounds measured (at most the 48 newest). */
  get roundSamples(): number {
    return this.samples.length;
  }

  /**
   * A plain run of `steps` steps, at `position` on average, took `ms`; `afterRound`: it followed a
   * free round (or other multi-row decode); `firstStepMs`: the native time of its first step, where
   * known. A run after a round measures the step from its later steps and the switch from its first:
   * while the text repeats, nearly every run follows a round, and without this the step stayed
   * unmeasured (a guess of 1 ms against 0.35 measured on the 12-layer model), so short free drafts
   * looked 2-3x cheaper than they are.
   */
  observePlainRun(steps: number, ms: number, afterRound: boolean, firstStepMs?: number, position = this.position): void {
    if (!(ms > 0) || steps < 1) return;
    if (!afterRound) {
      this.observeStep(ms / steps, position, steps);
      return;
    }
    let extra: number;
    if (steps >= 2 && firstStepMs !== undefined && firstStepMs >= 0 && firstStepMs < ms) {
      const step = (ms - firstStepMs) / (steps - 1);
      this.observeStep(step, position, steps - 1);
      extra = firstStepMs - step;
    } else if (!Number.isNaN(this.step)) {
      extra = ms - steps * this.plainMs(position);
    } else {
      return;
    }
    // a sample far beyond the switch's cost is the VM's pause, not the switch (measured: a rebuilt
    // graph costs 0.3-1.2 plain steps here)
    extra = Math.min(Math.max(0, extra), MAX_SWITCH_STEPS * this.plainMs(position));
    this.switchMs = Number.isNaN(this.switchMs) ? extra : 0.8 * this.switchMs + 0.2 * extra;
  }

  /**
   * `steps` plain steps at `position` on average took `ms` each. A run weighs as one sample of a fifth
   * per 8 steps (64 steps: 0.83): with the position's part taken out, a long run is the better
   * measurement, and a context's first runs (4 steps, building their graphs at 2-3x a step) no longer
   * set the step for its whole first generation (BENCHMARKS.md section 16, "Stop 48": lookup there
   * read 0.78-0.82x plain).
   */
  private observeStep(ms: number, position: number, steps: number): void {
    const first = Number.isNaN(this.step);
    const w = 1 - 0.8 ** Math.max(1, steps / 8);
    this.step = first ? ms : (1 - w) * this.step + w * ms;
    this.stepPosition = first ? position : (1 - w) * this.stepPosition + w * position;
    this.steps.push([position, ms]);
    if (this.steps.length > STEP_SAMPLES) this.steps.shift();
    const positions = this.steps.map(([p]) => p);
    // (only over a span of positions: within one KV window a step's cost does not grow)
    if (Math.max(...positions) - Math.min(...positions) < SLOPE_SPAN) return;
    const slope = Math.max(0, costLine(this.steps, 0, 0).perUnit);
    if (slope === this.stepsSlope) return;
    this.stepsSlope = slope;
    this.fitted = false;
  }

  /**
   * The slope through the free rounds: the median, over pairs of rounds of one row count at least
   * SLOPE_SPAN positions apart, of their cost's change a row and a position (a round's rows all grow
   * with the position; sizes differ in their graphs, and long rounds come late), 0 without such a
   * pair. A median, not least squares: one round slowed by a pause of the machine, paired with one
   * of its size, set a least-squares slope 12 times too high, which priced every round late in a
   * generation out while it stayed among the samples (the line leaves such rounds out, fit()).
   */
  private roundsSlope(): number {
    const slopes: number[] = [];
    for (let i = 0; i < this.samples.length; i++) {
      const [rows, ms, p] = this.samples[i];
      for (let j = i + 1; j < this.samples.length; j++) {
        const [rowsJ, msJ, pJ] = this.samples[j];
        if (rowsJ === rows && Math.abs(pJ - p) >= SLOPE_SPAN) slopes.push((msJ - ms) / (rows * (pJ - p)));
      }
    }
    return slopes.length > 0 ? Math.max(0, lowerMedian(slopes)!) : 0;
  }

  /** The most rows of a recent measured round, or of a fused round's free part (0 before one). */
  get largestRound(): number {
    return Math.max(this.largest, this.fusedRows);
  }

  /**
   * A free draft continued by early exit verified `rows` rows of it (its drafts and the newest
   * token). Its time is not a free round's (its drafts also passed layers [0, E) in the draft
   * call), so it is no sample of the line; but such rounds are all that runs where early exit
   * continues every free draft, and without them rounds never grew past twice the first measured
   * one: a prediction equal to the output ran rounds of 2 free drafts and 3 early-exit drafts for a
   * whole generation on the committed 12-layer model (0.95x plain, prediction alone 1.8x;
   * BENCHMARKS.md section 16, "Stop 45").
   */
  noteFusedRows(rows: number): void {
    this.fusedRows = Math.max(this.fusedRows, rows);
  }

  /** Whether a free round's rows were measured (before one, roundMs() is a guess). */
  get roundsMeasured(): boolean {
    return this.samples.length > 0;
  }

  /** Whether a plain step was measured (before, plainMs() is 1). */
  get stepMeasured(): boolean {
    return !Number.isNaN(this.step);
  }

  /** Tokens per ms a free round must beat where the alternative is a plain step at `position`. */
  plainRate(position = this.position): number {
    return FreeRoundCost.plainMargin / this.plainMs(position);
  }

  /**
   * One plain step at `position` (1 before anything is measured: the other figures are then in steps
   * too): the steps' average where they were taken, and the slope's change from there (at least a
   * tenth of the average: a slope fitted through noise must not make a step free).
   */
  plainMs(position = this.position): number {
    if (Number.isNaN(this.step)) return 1;
    this.fit();
    return Math.max(0.1 * this.step, this.step - this.slope * this.stepPosition) + this.slope * position;
  }

  /**
   * The costs as the addon's lookup loop takes them, at position 0: a round of r rows costs
   * roundCosts[r] where that size was measured often enough, else roundBase + roundRow r (roundMs's
   * line), and each of its rows stepSlope more a position on, as a plain step does; `limit` the most
   * drafts bestFreeLength allows (0: none).
   */
  addonState(): { roundBase: number; roundRow: number; roundCosts: Float64Array; plainMs: number; stepSlope: number; plainMargin: number; limit: number } {
    const base = this.roundMs(0, 0);
    return {
      roundBase: base,
      roundRow: this.roundMs(1, 0) - base,
      roundCosts: this.sizeCosts(),
      plainMs: this.plainMs(0),
      stepSlope: this.slope,
      plainMargin: FreeRoundCost.plainMargin,
      limit: this.roundsMeasured ? Math.min(MAX_ROUND_DRAFTS, Math.max(1, 2 * this.largestRound - 1)) : 0,
    };
  }

  /** A free round of `rows` rows whose first is at `position`, the switch back to plain steps included. */
  roundMs(rows: number, position = this.position): number {
    this.fit();
    const decode =
      this.bySize.get(rows) ?? (Number.isNaN(this.perRow) ? this.plainMs(0) * (1 + UNMEASURED_ROW_COST * (rows - 1)) : this.base + this.perRow * rows);
    return decode + rows * this.slope * position + (Number.isNaN(this.switchMs) ? 0 : this.switchMs);
  }

  /** roundMs at position 0 of each row count measured often enough (0: none, the line applies), for decodeRun (lookup.policy.roundCosts). */
  sizeCosts(): Float64Array {
    const out = new Float64Array(MAX_ROUND_DRAFTS + 2);
    this.fit();
    for (const rows of this.bySize.keys()) if (rows < out.length) out[rows] = this.roundMs(rows, 0);
    return out;
  }
}

/**
 * The best free draft length for acceptance `a`: the d in [1, max] with the most tokens per ms, and
 * that rate. Rounds grow at most to twice the rows of the largest measured one: the cost line is
 * fitted through the rounds taken, and far beyond them it can be far off (on stories260K a line
 * through 3-row probes, with half their mean row cost as slope, puts a 17-row round at about 12
 * plain steps; one cost 19).
 */
export function bestFreeLength(a: number | readonly number[], max: number, cost: FreeRoundCost): { length: number; rate: number } {
  const limit = cost.roundsMeasured ? Math.min(max, 2 * cost.largestRound - 1) : max;
  let length = 0;
  let rate = 0;
  // the expected tokens of d drafts: 1 + a0 + a0 a1 + ... + a0 ... a(d-1) (a number: the same at every draft)
  let tokens = 1;
  let reach = 1;
  for (let d = 1; d <= limit; d++) {
    reach *= typeof a === 'number' ? a : a[Math.min(d - 1, a.length - 1)];
    tokens += reach;
    const r = tokens / cost.roundMs(d + 1);
    if (r > rate) {
      rate = r;
      length = d;
    }
  }
  return { length, rate };
}

/** Context lookup drafts: `generate({ lookup: true })` or with options. */
export interface LookupOptions {
  /** Most tokens of one free draft, lookup or prediction (default 16; 1..64). */
  maxTokens?: number;
}

/** How free drafts are chosen (ResolvedFreeDrafts.choice). */
export type FreeDraftChoice = 'measured' | 'eager' | 'continuation' | 'never' | 'in-turn';

/** Whether drafts are chosen by their expected rate ('measured', in either loop). */
export function measuredChoice(o: ResolvedFreeDrafts): boolean {
  return o.choice === 'measured' || o.choice === 'in-turn';
}

/** What a generation drafts for free, resolved once. */
export interface ResolvedFreeDrafts {
  lookup: boolean;
  /** The caller's prediction of the output, as tokens (null: none). */
  prediction: number[] | null;
  maxTokens: number;
  /**
   * 'measured': by expected rate (default). Tests of the accept rule: 'eager' takes every free draft
   * whole and lets early exit continue it, 'continuation' drafts from the context only after early
   * exit (every round starts with early-exit drafts that a lookup continues). Benchmarks: 'never'
   * keeps and consults the index but verifies no free draft (what the index itself costs);
   * 'in-turn' is 'measured' in the TypeScript loop where the addon's would run (addon-run.ts: free
   * rounds, and fixed-length early exit's rounds with or without free drafts).
   */
  choice: FreeDraftChoice;
}

export interface FreeDraftOptions {
  lookup?: boolean | LookupOptions;
  prediction?: string | readonly number[];
  /** @internal 'eager' or 'continuation' (tests of the accept rule; see ResolvedFreeDrafts.choice). */
  freeDraftChoice?: FreeDraftChoice;
}

/**
 * The free drafts of a generation, or null for none. `specLookup` is selfSpeculative.lookup's
 * (an older spelling of the same): either one turns lookup on.
 */
export function resolveFreeDrafts(
  o: FreeDraftOptions,
  specLookup: { lookup: boolean; lookupTokens: number } | null,
  tokenize: (text: string) => number[],
  checkTokens: (name: string, tokens: unknown) => number[],
): ResolvedFreeDrafts | null {
  const l = o.lookup;
  if (l !== undefined && typeof l !== 'boolean' && (typeof l !== 'object' || l === null)) {
    throw new TypeError('lookup must be true, false or an options object');
  }
  if (typeof l === 'object') checkOptionKeys('lookup', l, { maxTokens: true } as const satisfies KeysOf<LookupOptions>);
  const lookup = (l !== undefined && l !== false) || (specLookup?.lookup ?? false);
  const maxTokens =
    typeof l === 'object' && l.maxTokens !== undefined
      ? checkInteger('lookup.maxTokens', l.maxTokens, 1, MAX_ROUND_DRAFTS)
      : specLookup?.lookup
        ? specLookup.lookupTokens
        : 16;
  let prediction: number[] | null = null;
  if (o.prediction !== undefined) {
    if (typeof o.prediction === 'string') prediction = tokenize(o.prediction);
    else if (Array.isArray(o.prediction)) prediction = checkTokens('prediction', o.prediction);
    else throw new TypeError('prediction must be a string or an array of token ids');
    if (prediction.length === 0) prediction = null;
  }
  const choice = checkEnum('freeDraftChoice', o.freeDraftChoice, ['measured', 'eager', 'continuation', 'never', 'in-turn'] as const) ?? 'measured';
  if (!lookup && !prediction) return null;
  return { lookup, prediction, maxTokens, choice };
}
