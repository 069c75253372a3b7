// Adaptive drafting: picks each round's draft length from the observed acceptance and the
// measured costs of drafting and verifying, so that a model whose early exit rarely agrees with
// the full model falls back to plain decoding (draft length 0) instead of running slower.
//
// Per-token acceptance a is estimated as accepted / (accepted + rejections) (the maximum-
// likelihood estimate for a geometric run), with exponential forgetting. A round with draft
// length d yields (1 - a^(d+1)) / (1 - a) tokens and costs d·draft + verify(d+1) (+ one
// draft step for the bonus position); a plain step yields 1 token for one full decode.

import { costLine, estimatedVerifyCost, expectedTokens, lowerMedian } from './cost-model.js';

export class DraftPolicy {
  private static readonly decay = 0.9;
  private static readonly maxProbeInterval = 512;
  private static readonly margin = 1.1;
  // refreshes of the full step's cost while drafting wins (next())
  private static readonly firstRefresh = 32;
  private static readonly maxRefresh = 256;
  private static readonly refreshSteps = 4;
  private accepted = 2; // prior: a = 0.5 over a few observations
  private rejected = 2;
  private readonly draftSamples: number[] = []; // one early-exit step (recent)
  private readonly fullSamples: number[] = []; // one plain full decode (recent)
  private readonly vSamples: [number, number][] = []; // (tokens, ms) of recent verifications
  private verifyBase = NaN; // verify(k) ≈ verifyBase + verifyPerToken · k
  private verifyPerToken = NaN;
  private plainSteps = 0;
  private probeInterval: number;
  /** The current round is a probe (one draft token while plain steps win). */
  probing = false;
  /** Drafting rounds since a full step was last measured, and how many may pass before a refresh. */
  private roundsSinceFullStep = 0;
  private refreshInterval = DraftPolicy.firstRefresh;
  /** A short plain run is due, to measure the full step again while drafting wins. */
  private refreshing = false;

  constructor(
    private readonly maxDraft: number,
    private readonly exitFraction: number, // E / N, for cost guesses before measurements
    private readonly probeEvery = 16,
  ) {
    this.probeInterval = probeEvery;
  }

  /**
   * A new generation starts with this policy (a sequence's policy is kept between its generations:
   * costs, acceptance and the steps since the last probe carry over, so that each generation does not
   * pay again for the probes that measured them).
   */
  startGeneration(): void {
    this.probing = false; // an aborted generation may have ended inside a probe round
  }

  get acceptance(): number {
    return this.accepted / (this.accepted + this.rejected);
  }

  /** The draft length for the next round: 0 means a plain full-model step. */
  next(): number {
    if (this.refreshing) return 0; // until the plain run it asked for has measured a full step
    const costs = this.costs();
    const best = this.bestDraft(Math.min(this.acceptance, 0.999), costs);
    // while plain steps win, probe now and then with one draft token (acceptance may change with
    // the text); a probe that fails doubles the interval, so a model whose early exit never agrees
    // pays for ever fewer probes
    if (best === 0) {
      this.refreshInterval = DraftPolicy.firstRefresh;
      if (++this.plainSteps >= this.probeSpacing(costs)) {
        this.plainSteps = 0;
        this.probing = true;
        return 1;
      }
      return 0;
    }
    // the reverse probe: while drafting wins, no plain step measures the full step, so one slow
    // measurement (a VM pause, a graph build) would keep drafting chosen for good. On stories260K
    // a first plain run measured at 0.95 ms a step (0.09 after it) kept a policy drafting at 0.5x
    // plain for a whole benchmark run. A plain run of 4 steps measures it again after 32 rounds,
    // then at doubling intervals up to 256 rounds while drafting still wins (in the tests'
    // simulation of a model where drafting wins 1.5x, the same speed to 0.1%)
    if (++this.roundsSinceFullStep >= this.refreshInterval) {
      this.refreshInterval = Math.min(this.refreshInterval * 2, DraftPolicy.maxRefresh);
      this.refreshing = true;
      return 0;
    }
    return best;
  }

  /**
   * Plain steps between probes: the interval, but once a draft step and a full step are measured at
   * least 40 times a probe's cost in full steps (at most 512), so probing costs at most 1/40 of the
   * time (on stories260K a probe of one draft costs about 4.5 plain steps: probes every 16 steps
   * took 7% of a generation).
   */
  private probeSpacing({ full, draft, verify } = this.costs()): number {
    if (this.draftSamples.length === 0 || this.fullSamples.length === 0) return this.probeInterval;
    const byCost = Math.min(DraftPolicy.maxProbeInterval, Math.ceil((40 * (2 * draft + verify(2))) / full));
    return Math.max(this.probeInterval, byCost);
  }

  /** Recent costs (ms): a full step, an early-exit step and a verification of k rows (measured or guessed). */
  private costs(): { full: number; draft: number; verify: (k: number) => number } {
    // medians of recent timings: single decodes on a busy machine have outliers, mostly slow ones
    const full = lowerMedian(this.fullSamples) ?? 1;
    const draft = lowerMedian(this.draftSamples) ?? this.exitFraction * full;
    const verify = (k: number) =>
      Number.isNaN(this.verifyBase) ? full * estimatedVerifyCost(this.exitFraction, k) : this.verifyBase + this.verifyPerToken * k;
    return { full, draft, verify };
  }

  /** The draft length that yields the most tokens per ms at per-token acceptance `a` (0: plain steps win). */
  private bestDraft(a: number, { full, draft, verify } = this.costs()): number {
    // drafting must beat plain decoding by a margin: cost estimates are noisy, and a split decode
    // (draft + verify) that wins only on noise loses in reality
    let best = 0;
    let bestRate = DraftPolicy.margin / full;
    for (let d = 1; d <= this.maxDraft; d++) {
      const tokens = expectedTokens(a, d);
      const cost = (d + 1) * draft + verify(d + 1);
      if (tokens / cost > bestRate) {
        bestRate = tokens / cost;
        best = d;
      }
    }
    return best;
  }

  /**
   * After next() returned 0: how many plain steps, this one included, come before the policy would
   * decide anything else (its next probe). Acceptance and costs only change with rounds, so until
   * then every step would be plain. A refresh of the full step's cost asks for a few steps only:
   * drafting may still win.
   */
  plainStepsBeforeProbe(): number {
    if (this.refreshing) return DraftPolicy.refreshSteps;
    return Math.max(1, this.probeSpacing() - this.plainSteps);
  }

  /** `steps` plain steps ran for one next() that returned 0. */
  skipPlain(steps: number): void {
    this.plainSteps += steps - 1;
  }

  /**
   * Whether next() would choose plain steps now, without asking it (next() counts a step and may
   * start a probe or a refresh): plain steps win at the measured costs and acceptance, and no
   * refresh of the full step is due.
   */
  plainWins(): boolean {
    return !this.refreshing && !this.probing && this.bestDraft(Math.min(this.acceptance, 0.999)) === 0;
  }

  /**
   * `rounds` more early-exit rounds ran at the length one next() chose (the addon's loop runs several
   * per call): they count toward the next refresh of the full step's cost, as if each had asked.
   */
  countRounds(rounds: number): void {
    this.roundsSinceFullStep += rounds;
  }

  /** `tokens` were produced without asking next() (plainWins() held): they count toward the next probe. */
  countPlain(tokens: number): void {
    this.plainSteps += tokens;
  }

  /**
   * An early-exit round as a whole: its draft steps' time (`draftSteps` of them: the drafts, and the
   * last one when it was decoded too), its verification of `rows` rows, and its acceptance. Both
   * loops report their rounds through it (rounds.ts for the in-turn loop, addon-run.ts for the
   * addon's).
   */
  observeEarlyRound(r: { drafted: number; accepted: number; draftSteps: number; draftMs: number; rows: number; verifyMs: number }): void {
    this.observeDraftStep(r.draftMs / r.draftSteps);
    this.observeVerify(r.rows, r.verifyMs);
    this.observeRound(r.drafted, r.accepted);
  }

  observeRound(drafted: number, accepted: number): void {
    if (this.probing) {
      // a probe that fails doubles the interval. Where the measured costs say drafting would lose
      // even if every draft were accepted (on a tiny model a draft step can cost as much as a full
      // step), acceptance cannot change the choice, only the costs can: probes then come at the
      // longest interval (on stories260K one probe costs ~5 plain steps, 2-4% of a 256-token run)
      this.probing = false;
      const couldPay = this.bestDraft(0.999) > 0;
      this.probeInterval = !couldPay
        ? DraftPolicy.maxProbeInterval
        : accepted > 0
          ? this.probeEvery
          : Math.min(this.probeInterval * 2, DraftPolicy.maxProbeInterval);
    }
    const d = DraftPolicy.decay ** drafted;
    this.accepted = this.accepted * d + accepted;
    this.rejected = this.rejected * d + (accepted < drafted ? 1 : 0);
  }

  observeDraftStep(ms: number): void {
    pushRecent(this.draftSamples, ms);
  }

  observeFullStep(ms: number): void {
    // a refresh's run is the one measurement since drafting began: the older ones are stale, and
    // a window of them all slow would outvote it for several refreshes
    if (this.refreshing) this.fullSamples.length = 0;
    pushRecent(this.fullSamples, ms);
    this.refreshing = false;
    this.roundsSinceFullStep = 0;
  }

  observeVerify(tokens: number, ms: number): void {
    this.vSamples.push([tokens, ms]);
    if (this.vSamples.length > 32) this.vSamples.shift();
    const line = costLine(this.vSamples, 0, 1 / 4);
    this.verifyBase = line.base;
    this.verifyPerToken = line.perUnit;
  }
}

function pushRecent(samples: number[], v: number, keep = 9): void {
  samples.push(v);
  if (samples.length > keep) samples.shift();
}
