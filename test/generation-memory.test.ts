// What a sequence keeps between generations (generation-memory.ts), when plain runs stop early to
// look for free drafts (free-rounds.ts), and how far free rounds grow past measured ones
// (draft-sources.ts): pure logic, no model.
import { describe, expect, it } from 'vitest';
import { DraftPolicy } from '../lib/decoding/draft-policy.js';
import { bestFreeLength, FreeAcceptance, FreeRoundCost, type ResolvedFreeDrafts } from '../lib/decoding/draft-sources.js';
import {
  chooseFree,
  earlyExitExtension,
  type FreeChoice,
  freeRoundsCouldPay,
  type FreeRounds,
  probeDue,
  plainRunEnd,
  repeatStop,
  stepsBeforeLook,
} from '../lib/decoding/free-rounds.js';
import { PredictionDrafts } from '../lib/decoding/prediction.js';
import type { LoopState } from '../lib/decoding/rounds.js';
import { GenerationMemory, type MemoryKeyParts } from '../lib/decoding/generation-memory.js';
import { resolveSampling } from '../lib/decoding/sampling.js';
import { ContextLookup } from '../lib/decoding/context-lookup.js';
import { NgramFilter, ngramHash } from '../lib/decoding/ngram-filter.js';

const lookupOnly: ResolvedFreeDrafts = { lookup: true, prediction: null, maxTokens: 16, choice: 'measured' };
const parts = (over: Partial<MemoryKeyParts> = {}): MemoryKeyParts => ({
  exitLayer: 3,
  draftTokens: 4,
  verification: 'cached',
  draftHead: null,
  sampling: resolveSampling({ temperature: 0 }),
  free: lookupOnly,
  ...over,
});

/** A generation's free-draft state with lookup on and nothing observed yet, with `over` set. */
const freeRounds = (over: Partial<FreeRounds>): FreeRounds => ({
  options: lookupOnly,
  sources: [],
  synced: 0,
  acceptance: new FreeAcceptance(),
  cost: new FreeRoundCost(),
  afterRound: false,
  earlyExitRate: NaN,
  sinceFree: 0,
  probeInterval: 64,
  lastFreeAccepted: 0,
  shadows: [],
  repeats: false,
  repeatFilter: null,
  stoppedAtRepeat: false,
  repeatDeclined: false,
  ...over,
});

describe('GenerationMemory', () => {
  it('gives the next generation of the same configuration the same policy and free-draft state', () => {
    const m = new GenerationMemory();
    let made = 0;
    const make = () => {
      made++;
      return new DraftPolicy(4, 0.6);
    };
    const a = m.policy(parts(), make);
    expect(m.policy(parts(), make)).toBe(a);
    expect(made).toBe(1);
    const f = m.freeState(parts(), 64);
    f.sinceFree = 37;
    expect(m.freeState(parts(), 64).sinceFree).toBe(37);
  });

  it("gives the next generation the free drafts' acceptance at a quarter of its weight", () => {
    const m = new GenerationMemory();
    const f = m.freeState(parts(), 64);
    for (let i = 0; i < 20; i++) f.acceptance.observe('lookup', 20, 8, 1); // long matches, mostly rejected
    const fresh = new FreeAcceptance();
    for (let i = 0; i < 20; i++) fresh.observe('lookup', 20, 8, 1);
    expect(f.acceptance.estimate('lookup', 20)).toBe(fresh.estimate('lookup', 20));
    fresh.startGeneration();
    const next = m.freeState(parts(), 64);
    expect(next.acceptance.estimate('lookup', 20)).toBe(fresh.estimate('lookup', 20));
    expect(next.acceptance.estimate('lookup', 20)).toBeGreaterThan(0.7);
  });

  it('keeps configurations apart: exit, draft length, head, sampling and free drafts', () => {
    const m = new GenerationMemory();
    const make = () => new DraftPolicy(4, 0.6);
    const base = m.policy(parts(), make);
    const head = { exitLayer: 3 } as unknown as MemoryKeyParts['draftHead'];
    const others: Partial<MemoryKeyParts>[] = [
      { exitLayer: 2 },
      { draftTokens: 3 },
      { verification: 'full' },
      { draftHead: head },
      { draftHead: 'heads/a.gguf' },
      { sampling: resolveSampling({ temperature: 0.8, seed: 1 }) },
      { free: null },
      { free: { ...lookupOnly, maxTokens: 8 } },
    ];
    const seen = new Set([base]);
    for (const o of others) seen.add(m.policy(parts(o), make));
    expect(seen.size).toBe(others.length + 1);
    // the same head object again is the same configuration
    expect(m.policy(parts({ draftHead: head }), make)).toBe(m.policy(parts({ draftHead: head }), make));
  });

  it('keeps the most recently used configurations only', () => {
    const m = new GenerationMemory();
    const make = () => new DraftPolicy(4, 0.6);
    const first = m.policy(parts({ draftTokens: 1 }), make);
    const second = m.policy(parts({ draftTokens: 2 }), make);
    for (let d = 3; d <= GenerationMemory.maxConfigurations + 1; d++) m.policy(parts({ draftTokens: d }), make);
    m.policy(parts({ draftTokens: 2 }), make); // used again: now the most recent
    m.policy(parts({ draftTokens: 99 }), make); // one more: the least recently used goes
    expect(m.policy(parts({ draftTokens: 2 }), make)).toBe(second);
    expect(m.policy(parts({ draftTokens: 1 }), make)).not.toBe(first);
  });

  it('ends a probe left open by an aborted generation', () => {
    const m = new GenerationMemory();
    const p = m.policy(parts(), () => new DraftPolicy(4, 0.6));
    p.probing = true;
    expect(m.policy(parts(), () => new DraftPolicy(4, 0.6)).probing).toBe(false);
  });
});

describe('freeRoundsCouldPay (whether plain runs stop early to look for free drafts)', () => {
  const rounds = (perRowSteps: number, baseSteps: number, accepted: boolean): FreeRounds => {
    const cost = new FreeRoundCost();
    cost.observePlainRun(10, 10, false); // a plain step: 1 ms
    for (const rows of [3, 5, 9]) cost.observeRound(rows, baseSteps + perRowSteps * rows);
    const acceptance = new FreeAcceptance();
    // long matches: every draft accepted, or every other one rejected
    for (let i = 0; i < 20; i++) acceptance.observe('lookup', 20, 8, accepted ? 8 : 1);
    return freeRounds({ sources: [new ContextLookup()], acceptance, cost, lastFreeAccepted: 1 });
  };

  it('yes while no free round was measured', () => {
    const f = rounds(1, 0, true);
    f.cost = new FreeRoundCost();
    expect(freeRoundsCouldPay(f)).toBe(true);
  });
  it('no where a row costs a plain step (stories260K): no draft length beats plain steps', () => {
    expect(freeRoundsCouldPay(rounds(1.05, 0.5, true))).toBe(false);
  });
  it('yes where rows are cheap and long matches are accepted (brown-12L, the 1B shape)', () => {
    expect(freeRoundsCouldPay(rounds(0.5, 1, true))).toBe(true);
  });
  it('no where rows are cheap but long matches are mostly rejected', () => {
    expect(freeRoundsCouldPay(rounds(0.5, 1, false))).toBe(false);
  });
});

describe('FreeAcceptance across generations', () => {
  it("counts an earlier generation's acceptance a tenth at the next one's start", () => {
    const a = new FreeAcceptance();
    // long matches (the 16+ bucket, prior 0.9 as 2 pseudo-observations) whose 8-token drafts had
    // only their first token accepted, 20 rounds (as after the chat task of the peer run)
    for (let i = 0; i < 20; i++) a.observe('lookup', 20, 8, 1);
    // the counts in closed form: each round decays them by 0.95^8, then adds 1 accepted, 1 rejection
    let n = 0;
    for (let i = 0; i < 20; i++) n = n * 0.95 ** 8 + 1;
    const before = a.estimate('lookup', 20);
    expect(before).toBeCloseTo((n + 2 * 0.9) / (2 * n + 2), 12);
    a.startGeneration();
    const after = a.estimate('lookup', 20);
    expect(after).toBeCloseTo((n / 10 + 2 * 0.9) / (n / 5 + 2), 12);
    expect(after).toBeGreaterThan(before + 0.1);
  });
});

describe('bestFreeLength (how long a free round may be)', () => {
  it('grows rounds at most to twice the rows of the largest measured one', () => {
    // probe-sized rounds only (3 rows): the line through them says nothing reliable about 17 rows
    const cost = new FreeRoundCost();
    cost.observePlainRun(10, 10, false);
    for (let i = 0; i < 4; i++) cost.observeRound(3, 2.2 + 0.1 * i);
    expect(bestFreeLength(0.98, 16, cost).length).toBeLessThanOrEqual(5);
    for (let i = 0; i < 4; i++) cost.observeRound(6, 3.5 + 0.1 * i);
    const after = bestFreeLength(0.98, 16, cost).length;
    expect(after).toBeGreaterThan(5);
    expect(after).toBeLessThanOrEqual(11);
  });
  it('drafts further where later drafts extend a longer match (per-draft acceptance)', () => {
    // a 1 ms plain step, rounds of 1 + 0.2 ms a row (the 12-layer brown model's on this CPU)
    const cost = new FreeRoundCost();
    cost.observePlainRun(10, 10, false);
    for (const rows of [3, 9, 17]) cost.observeRound(rows, 1 + 0.2 * rows);
    const flat = bestFreeLength(0.75, 16, cost);
    // the same acceptance at every draft is the geometric case
    expect(bestFreeLength(Array(16).fill(0.75), 16, cost)).toEqual(flat);
    // 0.75 for the first draft, then the acceptance of ever longer matches: a longer draft pays
    const rising = [0.75, 0.8, 0.85, 0.9, 0.95, ...Array(11).fill(0.97)];
    expect(bestFreeLength(rising, 16, cost).length).toBeGreaterThan(flat.length + 3);
  });
  it('takes what the caller allows before any round is measured', () => {
    expect(bestFreeLength(0.98, 4, new FreeRoundCost()).length).toBe(4);
  });
  it('costs a round by the median of its own size where measured three times, else by the line', () => {
    // stories260K with early exit: one-draft rounds cheap and steady, longer ones dearer per row
    // than the one-draft rounds suggest (each new length builds a graph)
    const cost = new FreeRoundCost();
    cost.observePlainRun(10, 1.5, false);
    const samples: [number, number][] = [
      [2, 0.21],
      [2, 0.23],
      [4, 0.5],
      [9, 1.1],
      [17, 2.1],
      [2, 0.22],
      [5, 0.7],
    ];
    for (const [rows, ms] of samples) cost.observeRound(rows, ms);
    // the line through all of them, as it was: above what 2-row rounds took
    const line = (rows: number) => cost.addonState().roundBase + cost.addonState().roundRow * rows;
    expect(cost.roundMs(2)).toBeCloseTo(0.22, 12); // (the lower median of 0.21, 0.22, 0.23)
    expect(cost.roundMs(3)).toBeGreaterThan(cost.roundMs(2));
    expect(Math.abs(cost.roundMs(9) - line(9))).toBeLessThan(1e-9); // (measured once: the line)
    expect(cost.roundMs(2)).toBeLessThan(line(2));
    const table = cost.sizeCosts();
    expect(table.length).toBe(66);
    expect(table[2]).toBeCloseTo(0.22, 12);
    expect([...table].filter((x) => x > 0)).toHaveLength(1);
  });
});

describe('FreeRoundCost at a position (a step and each row of a round cost more as the KV window grows)', () => {
  // stories260K-like: a step of 0.07 ms at position 0 and 0.4 us more a position; a round 0.05 ms
  // plus, a row, 0.03 ms and what a step gains at its position
  const step = (p: number) => 0.07 + 0.0004 * p;
  const round = (rows: number, p: number) => 0.05 + rows * (0.03 + 0.0004 * p);
  const measured = () => {
    const cost = new FreeRoundCost();
    for (const p of [10, 40, 80, 150, 230]) cost.observePlainRun(16, 16 * step(p), false, undefined, p);
    for (const [rows, p] of [
      [3, 20],
      [9, 120],
      [17, 200],
      [5, 60],
    ])
      cost.observeRound(rows, round(rows, p), p);
    return cost;
  };
  it('reads a plain step and a round where they decode', () => {
    const cost = measured();
    for (const p of [0, 100, 300]) {
      expect(cost.plainMs(p)).toBeCloseTo(step(p), 9);
      for (const rows of [2, 5, 17]) expect(cost.roundMs(rows, p)).toBeCloseTo(round(rows, p), 9);
    }
    // by default at `position` (syncSources sets it), and to the addon at position 0 with the slope
    cost.position = 250;
    expect(cost.plainMs()).toBeCloseTo(step(250), 9);
    const state = cost.addonState();
    expect(state.plainMs).toBeCloseTo(step(0), 9);
    expect(state.stepSlope).toBeCloseTo(0.0004, 9);
    expect(state.roundBase + state.roundRow * 4 + 4 * state.stepSlope * 250).toBeCloseTo(round(4, 250), 9);
  });
  it('keeps the step flat until its runs span 64 positions', () => {
    const cost = new FreeRoundCost();
    for (const p of [10, 30, 60]) cost.observePlainRun(16, 16 * step(p), false, undefined, p);
    expect(cost.addonState().stepSlope).toBe(0);
  });
  // with early exit at a fixed draft length a generation takes no plain step: only rounds are timed
  const roundsOnly = (slope: number, positions: readonly (readonly [number, number])[]) => {
    const cost = new FreeRoundCost();
    for (const [rows, p] of positions) cost.observeRound(rows, 0.05 + rows * (0.03 + slope * p), p);
    return cost;
  };
  // one-draft rounds all through a generation, a few of two drafts late in it (a size's own
  // positions, not the sizes' mix, give the slope: 3-row rounds here cost more for both reasons)
  const spread: [number, number][] = [
    [2, 5],
    [2, 40],
    [2, 90],
    [2, 150],
    [2, 220],
    [3, 160],
    [3, 200],
    [3, 240],
  ];
  it('without plain steps, fits the slope through the rounds of each size', () => {
    const cost = roundsOnly(0.0004, spread);
    expect(cost.addonState().stepSlope).toBeCloseTo(0.0004, 9);
    for (const p of [0, 100, 250]) for (const rows of [2, 3]) expect(cost.roundMs(rows, p)).toBeCloseTo(round(rows, p), 9);
  });
  it('is not moved by a round slowed by a pause of the machine', () => {
    const cost = roundsOnly(0.0004, [...spread, [17, 100]]);
    cost.observeRound(17, 5 * (0.05 + 17 * (0.03 + 0.0004 * 180)), 180);
    expect(cost.addonState().stepSlope).toBeCloseTo(0.0004, 9);
  });
  it("takes the plain runs' slope once they span 64 positions, and none from rounds within one window", () => {
    const cost = roundsOnly(0.0008, spread);
    for (const p of [10, 40, 80, 150, 230]) cost.observePlainRun(16, 16 * step(p), false, undefined, p);
    expect(cost.addonState().stepSlope).toBeCloseTo(0.0004, 9);
    const near = roundsOnly(0.0004, [
      [2, 100],
      [2, 130],
      [3, 120],
      [3, 150],
    ]);
    expect(near.addonState().stepSlope).toBe(0);
  });
});

describe('FreeRoundCost (the plain step and the switch back, from runs that follow a round)', () => {
  /** A cost with two measured round sizes, and its 17-row decode before any switch was measured. */
  const measured = () => {
    const cost = new FreeRoundCost();
    cost.observeRound(3, 3);
    cost.observeRound(9, 6);
    return { cost, decode17: cost.roundMs(17) };
  };
  it("measures the step from a run's later steps and the switch from its first step", () => {
    const { cost, decode17 } = measured();
    // 8 steps after a round: the first 0.9 ms (its graph rebuilt), the other seven 0.35 ms each
    cost.observePlainRun(8, 0.9 + 7 * 0.35, true, 0.9);
    expect(cost.plainMs()).toBeCloseTo(0.35, 12);
    expect(cost.roundMs(17) - decode17).toBeCloseTo(0.9 - 0.35, 12);
    // a later run after a round: both move a fifth of the way to the new sample
    cost.observePlainRun(3, 1.1 + 2 * 0.45, true, 1.1);
    expect(cost.plainMs()).toBeCloseTo(0.8 * 0.35 + 0.2 * 0.45, 12);
    expect(cost.roundMs(17) - decode17).toBeCloseTo(0.8 * 0.55 + 0.2 * (1.1 - 0.45), 12);
  });
  it("leaves the step unmeasured after a round when the run's first step is not timed", () => {
    const { cost } = measured();
    cost.observePlainRun(8, 4, true);
    expect(cost.plainMs()).toBe(1); // the unmeasured placeholder
  });
  it('takes a first step far beyond a rebuilt graph as three plain steps (a pause of the machine)', () => {
    const { cost, decode17 } = measured();
    cost.observePlainRun(8, 20 + 7 * 0.35, true, 20);
    expect(cost.roundMs(17) - decode17).toBeCloseTo(3 * 0.35, 12);
  });
  it('leaves a round slowed by a pause of the machine out of its cost line', () => {
    // a 3-row probe paused to 30 ms, then one at 3 ms: the line goes through the 3 ms one alone
    // (half its cost per row as slope), not through their mean of 16.5 ms
    const probes = new FreeRoundCost();
    probes.observeRound(3, 30);
    expect(probes.roundMs(3)).toBeCloseTo(30, 12);
    probes.observeRound(3, 3);
    expect(probes.roundMs(3)).toBeCloseTo(3, 12);
    // rounds on the line 1 + 0.4 rows, and one 9-row round paused to 40 ms: the line stays exact
    const rounds = new FreeRoundCost();
    for (const [rows, ms] of [
      [3, 2.2],
      [6, 3.4],
      [9, 40],
      [9, 4.6],
    ])
      rounds.observeRound(rows, ms);
    expect(rounds.roundMs(17)).toBeCloseTo(1 + 0.4 * 17, 9);
  });
  it('through rounds of nearly one size, takes a row at half a plain step (their fixed cost is not per row)', () => {
    // a 1 ms plain step and one 2-row round of 2.6 ms: half its cost a row (0.65 ms) would put a
    // 17-row round at 11.05 ms; a row at half a plain step, through the round, at 1.6 + 0.5 * 17
    // a 1 ms plain step, then these rounds
    const afterStep = (rounds: readonly (readonly [number, number])[]) => {
      const c = new FreeRoundCost();
      c.observePlainRun(10, 10, false);
      for (const [rows, ms] of rounds) c.observeRound(rows, ms);
      return c;
    };
    const cost = afterStep([[2, 2.6]]);
    expect(cost.roundMs(2)).toBeCloseTo(2.6, 12);
    expect(cost.roundMs(17)).toBeCloseTo(1.6 + 0.5 * 17, 12);
    // a second size TRUSTED_SPAN rows away measures the slope (least squares through three rounds)
    cost.observeRound(6, 3.1);
    cost.observeRound(6, 3.1);
    expect(cost.roundMs(17) - cost.roundMs(6)).toBeCloseTo(11 * (0.5 / 4), 9);
    // a slope too low through nearly one size is no measurement either (least squares: below 0,
    // which put 17 rows at the cost of 5 in a fresh context): half a plain step a row, through their mean
    const flat = afterStep([
      [2, 2.0],
      [3, 1.9],
      [3, 1.9],
    ]);
    expect(flat.roundMs(17)).toBeCloseTo((2.0 + 1.9 + 1.9) / 3 + 0.5 * (17 - 8 / 3), 9);
    // rounds of 2 and 3 rows whose least-squares slope is 1.4 ms a row (noise across one row): half a
    // plain step a row through their mean (2.5 rows, 2.75 ms); rounds 6 rows apart keep their slope
    const narrow = afterStep([
      [2, 2.0],
      [3, 3.4],
      [2, 2.1],
      [3, 3.5],
    ]);
    expect(narrow.roundMs(17)).toBeCloseTo(2.75 + 0.5 * (17 - 2.5), 9);
    const wide = afterStep([
      [3, 6],
      [9, 15],
      [3, 6],
    ]);
    expect(wide.roundMs(17)).toBeCloseTo(1.5 + 1.5 * 17, 9);
    // before a plain step is measured the guess has no scale: half the round's cost a row
    const unscaled = new FreeRoundCost();
    unscaled.observeRound(2, 2.6);
    expect(unscaled.roundMs(17)).toBeCloseTo(1.3 + 0.65 * 17, 12);
  });
});

describe('chooseFree with measured costs (a prediction from its first token, a short lookup match not)', () => {
  /** A 1 ms plain step, free rounds of 0.6 ms + 0.5 ms a row (half a plain step, as the 12-layer model's at 1 thread); the output so far is `tokens`. */
  const choose = (sources: FreeRounds['sources'], tokens: number[]) => {
    const cost = new FreeRoundCost();
    cost.observePlainRun(10, 10, false);
    for (const rows of [3, 9, 17]) cost.observeRound(rows, 0.6 + 0.5 * rows);
    const f = freeRounds({ sources, cost });
    const session = { tokens, hasStopStrings: false };
    return chooseFree({ session, spec: null, policy: null } as unknown as LoopState, f, 32);
  };

  it("drafts the caller's prediction once the output's first token follows it", () => {
    const prediction = Array.from({ length: 40 }, (_, i) => 100 + i);
    const c = choose([new PredictionDrafts(prediction)], [100]);
    expect(c?.source.name).toBe('prediction');
    expect(c?.probe).toBe(false);
    expect(c?.tokens.length).toBeGreaterThanOrEqual(2);
  });
  it('does not verify a 2-token context match at the same costs', () => {
    const lookup = new ContextLookup();
    lookup.pushAll([5, 6, 7, 8, 9, 5]);
    expect(choose([lookup], [6])?.source.name).toBeUndefined();
  });
});

describe('FreeRoundCost.plainMargin (how much faster than a plain step a free round must be expected to run)', () => {
  /** A 9-token context match (prior 0.9), a 1 ms step, rounds of r rows at r - 0.2 ms: one draft is the best, 1.9 tokens in 1.8 ms. */
  const choiceAt = (margin: number) => {
    const saved = FreeRoundCost.plainMargin;
    FreeRoundCost.plainMargin = margin;
    try {
      const cost = new FreeRoundCost();
      cost.observePlainRun(10, 10, false);
      for (const rows of [2, 2, 2, 6, 6, 6]) cost.observeRound(rows, rows - 0.2);
      const lookup = new ContextLookup();
      lookup.pushAll([...Array.from({ length: 30 }, (_, i) => 100 + i), ...Array.from({ length: 8 }, (_, i) => 100 + i)]);
      const f = freeRounds({ sources: [lookup], cost });
      const state = { session: { tokens: [108], hasStopStrings: false }, spec: null, policy: null } as unknown as LoopState;
      expect(bestFreeLength(0.9, 16, cost)).toEqual({ length: 1, rate: 1.9 / 1.8 });
      return chooseFree(state, f, 32);
    } finally {
      FreeRoundCost.plainMargin = saved;
    }
  };
  it('takes a draft expected to beat plain steps by 5.6% without a margin, not at 1.1', () => {
    expect(choiceAt(1)?.tokens).toEqual([109]);
    expect(choiceAt(1.1)).toBeNull();
  });
  it('hands the addon its margin', () => {
    expect(new FreeRoundCost().addonState().plainMargin).toBe(FreeRoundCost.plainMargin);
  });
});

describe('chooseFree draft lengths with per-draft acceptance', () => {
  it('drafts a 5-token match further where longer matches have held', () => {
    // a 1 ms plain step, rounds of 0.6 + 0.1 ms a row; long matches' drafts all accepted so far
    const cost = new FreeRoundCost();
    cost.observePlainRun(10, 10, false);
    for (const rows of [3, 9, 17]) cost.observeRound(rows, 0.6 + 0.1 * rows);
    const acceptance = new FreeAcceptance();
    for (let i = 0; i < 10; i++) acceptance.observe('lookup', 9, 16, 16);
    const lookup = new ContextLookup();
    lookup.pushAll([...Array.from({ length: 30 }, (_, i) => 100 + i), 100, 101, 102, 103]);
    const f = freeRounds({ sources: [lookup], cost, acceptance });
    const state = { session: { tokens: [104], hasStopStrings: false }, spec: null, policy: null } as unknown as LoopState;
    const c = chooseFree(state, f, 32);
    // the match's own bucket (5-8) is at its prior, 0.85: alone it would give 6 drafts; its later
    // drafts extend matches of 9 and more, accepted so far
    expect(bestFreeLength(0.85, 16, cost).length).toBe(6);
    expect(c?.tokens.length).toBeGreaterThanOrEqual(8);
    expect(c?.tokens.slice(0, 3)).toEqual([105, 106, 107]);
  });
});

describe('declined free drafts (checked against the output instead of verified)', () => {
  /** A 2-token context match where a row costs half a plain step (declined: its prior is 0.5), then `next` generated. */
  const declinedThen = (next: number[]) => {
    const cost = new FreeRoundCost();
    cost.observePlainRun(10, 10, false);
    for (const rows of [3, 9, 17]) cost.observeRound(rows, 0.6 + 0.5 * rows);
    const lookup = new ContextLookup();
    lookup.pushAll([5, 6, 7, 8, 9, 10, 11, 12, 5]); // the prompt; the output's first token is 6
    const f = freeRounds({ sources: [lookup], cost });
    const tokens = [6];
    const state = { session: { tokens, hasStopStrings: false }, spec: null, policy: null } as unknown as LoopState;
    expect(chooseFree(state, f, 32)).toBeNull();
    expect(f.shadows.map((d) => d.tokens.slice(0, 4))).toEqual([[7, 8, 9, 10]]);
    tokens.push(...next);
    chooseFree(state, f, 32);
    return f;
  };
  it('counts a declined draft the output followed as accepted, each draft at the match it extends', () => {
    // four drafts the output followed, at ageing 0.995: the first at match 2 (beside the prior's 2 x
    // 0.5), the next two at matches 3 and 4 (the 3-4 bucket, prior 0.7), the last at 5
    const f = declinedThen([7, 8, 9, 10]);
    expect(f.acceptance.estimate('lookup', 2)).toBeCloseTo((0.995 + 2 * 0.5) / (0.995 + 2), 12);
    expect(f.acceptance.estimate('lookup', 4)).toBeCloseTo((2 * 0.995 + 2 * 0.7) / (2 * 0.995 + 2), 12);
  });
  it('and one the output left at its first token as rejected', () => {
    expect(declinedThen([99, 8]).acceptance.estimate('lookup', 2)).toBeCloseTo((2 * 0.5) / (0.995 + 2), 12);
  });
});

/** A 1 ms plain step and three 3-row free rounds of `roundMs` each (none measured: null). */
const probeSizedCosts = (roundMs: number | null) => {
  const cost = new FreeRoundCost();
  cost.observePlainRun(10, 10, false);
  if (roundMs !== null) for (let i = 0; i < 3; i++) cost.observeRound(3, roundMs);
  return cost;
};

describe('chooseFree probes (how often a free draft is verified only to measure)', () => {
  /** Costs of probeSizedCosts(roundMs); 300 tokens since the last free round, a 2-token context match. */
  const probeAfter300 = (roundMs: number) => {
    const cost = probeSizedCosts(roundMs);
    const lookup = new ContextLookup();
    lookup.pushAll([5, 6, 7, 8, 9, 5]);
    const f = freeRounds({ sources: [lookup], cost, sinceFree: 300 });
    const session = { tokens: [6], hasStopStrings: false };
    return chooseFree({ session, spec: null, policy: null } as unknown as LoopState, f, 32);
  };
  it('probes after 40 times its cost where a draft accepted whole would win', () => {
    // 2.4 ms for 3 rows: a whole 6-row round yields 6 tokens in about 3.6 ms; probes every 96 tokens
    expect(probeAfter300(2.4)?.probe).toBe(true);
  });
  it('waits 400 times its cost where not even a draft accepted whole would win (stories260K)', () => {
    // 5 ms for 3 rows: a whole 6-row round yields 6 tokens in about 7.5 ms, slower than 6 plain steps;
    // at 40 times (200 tokens) it would probe here, at 400 (2,000) it does not
    expect(probeAfter300(5)).toBeNull();
  });
  it('does not let one probe slowed by a pause hold off the next for thousands of tokens', () => {
    // a 1 ms plain step and 3-row probes that took 30 ms: at that cost no round pays, and 400 times
    // it would wait 12,000 tokens for the only measurement that can correct it. One round measured:
    // a second probe 8 tokens later (the first may be a process's first use); two: 40 times the
    // probe, counted as at most 8 plain steps (320 tokens)
    const f = (sinceFree: number, rounds: number) => {
      const cost = new FreeRoundCost();
      cost.observePlainRun(10, 10, false);
      for (let i = 0; i < rounds; i++) cost.observeRound(3, 30);
      return freeRounds({ sources: [new ContextLookup()], cost, sinceFree });
    };
    expect(freeRoundsCouldPay(f(0, 1))).toBe(false);
    expect(probeDue(f(7, 1), 1)).toBe(false);
    expect(probeDue(f(8, 1), 1)).toBe(true);
    expect(probeDue(f(300, 2), 1)).toBe(false);
    expect(probeDue(f(330, 2), 1)).toBe(true);
  });
});

describe('stepsBeforeLook (how long a plain run goes before the sources are looked at)', () => {
  /** Lookup on, with the costs of probeSizedCosts(roundMs). */
  const state = (roundMs: number | null) => freeRounds({ sources: [new ContextLookup()], cost: probeSizedCosts(roundMs) });
  it('stops every few steps while a free round could pay, or before one was measured', () => {
    expect(stepsBeforeLook(state(null), 16)).toBe(16);
    expect(stepsBeforeLook(state(1.5), 16)).toBe(16); // a whole 6-row round: 6 tokens in ~2.3 ms
  });
  it('does not stop where not even a long match would pay (stories260K)', () => {
    // a 6-row round of a long match (acceptance 0.9): ~4.7 tokens in ~7.5 ms, against 7.5 plain steps
    expect(stepsBeforeLook(state(5), 16)).toBe(Infinity);
  });
  it("stops every few steps with a test's choice (eager, never), whatever the costs", () => {
    const f = state(5);
    expect(stepsBeforeLook({ ...f, options: { ...f.options, choice: 'eager' } }, 16)).toBe(16);
    expect(stepsBeforeLook({ ...f, options: { ...f.options, choice: 'never' } }, 16)).toBe(16);
  });
});

describe('earlyExitExtension (early-exit drafts after a free draft)', () => {
  /** A free draft of 4 tokens at acceptance 0.95; early-exit rounds measured at 1 token/ms, plain steps at 5 (stories260K's). */
  const extension = (policy: DraftPolicy | null, roundMeasured = true) => {
    const cost = new FreeRoundCost();
    cost.observePlainRun(10, 2, false);
    if (roundMeasured) cost.observeRound(3, 0.6);
    const free = { options: lookupOnly, cost, earlyExitRate: 1 } as unknown as FreeRounds;
    const s = { spec: { draftTokens: 3 }, free, policy, session: { isEog: () => false } } as unknown as LoopState;
    const c = { tokens: [5, 6, 7, 8], acceptance: 0.95, probe: false } as unknown as FreeChoice;
    return earlyExitExtension(s, c, 32);
  };
  it("continues with the caller's fixed draft length, whose rounds are early-exit rounds anyway", () => {
    expect(extension(null)).toBe(3);
  });
  it('does not where adaptive drafting would take plain steps instead (early exit slower than plain)', () => {
    expect(extension(new DraftPolicy(3, 0.6))).toBe(0);
  });
  it('does not before a free round was measured: the first one goes alone and measures the cost', () => {
    expect(extension(null, false)).toBe(0);
  });
});

describe('NgramFilter (the context n-grams a native plain run ends at)', () => {
  /** The filter's bit of the n-gram `tokens[from, from + n)`, by the hash alone. */
  const isMarked = (f: NgramFilter, tokens: number[], from: number, n: number) => {
    const bit = ngramHash(tokens, from, n) >>> (32 - Math.log2(f.bits.length * 8));
    return ((f.bits[bit >> 3] >> (bit & 7)) & 1) === 1;
  };
  it('marks every n-gram of its context as it grows, and all of them again for a new length', () => {
    const tokens = [7, 8, 9, 10, 11, 12];
    const context = tokens.slice(0, 3);
    const f = new NgramFilter(100, context);
    f.setLength(3);
    context.push(...tokens.slice(3));
    f.setLength(3);
    for (let i = 0; i + 3 <= tokens.length; i++) expect(isMarked(f, tokens, i, 3)).toBe(true);
    expect(f.bits.reduce((a, b) => a + popcount(b), 0)).toBe(4); // 4 trigrams, nothing else (no collision here)
    f.setLength(4);
    expect(f.bits.reduce((a, b) => a + popcount(b), 0)).toBe(3);
    for (let i = 0; i + 4 <= tokens.length; i++) expect(isMarked(f, tokens, i, 4)).toBe(true);
    expect(Array.from(f.history()!)).toEqual([10, 11, 12]);
  });
  it('keeps at most 1 in 32 bits set for a full context', () => {
    const f = new NgramFilter(4096, []);
    expect(f.bits.length * 8).toBeGreaterThanOrEqual(32 * 4096);
  });
});

describe('repeatStop (where a plain run ends: the shortest match whose lookup draft would be taken)', () => {
  /** A 1 ms plain step, rounds of 1 + 0.3 ms a row, the output [104] after a prompt `prompt` (the lookup's context). */
  const stopAfter = (prompt: number[], acceptance = new FreeAcceptance(), over: Partial<FreeRounds> = {}) => {
    const cost = new FreeRoundCost();
    cost.observePlainRun(10, 10, false);
    for (const rows of [3, 9, 17]) cost.observeRound(rows, 1 + 0.3 * rows);
    const lookup = new ContextLookup();
    lookup.pushAll(prompt);
    const f = freeRounds({ sources: [lookup], cost, acceptance, repeats: true, ...over });
    return { f, stop: repeatStop(loopState([104]), f, 104) };
  };
  /** The loop state repeatStop reads: the output `tokens` and a context of 256 cells. */
  const loopState = (tokens: number[]) =>
    ({ session: { tokens, hasStopStrings: false }, ctx: { state: () => ({ contextSize: 256 }) }, spec: null, policy: null }) as unknown as LoopState;
  const prompt = Array.from({ length: 30 }, (_, i) => 100 + i);
  it('at the priors and these costs, a match of 3 (the 3-4 bucket, 0.7) is the shortest taken', () => {
    // a draft at a match of 1-2 (0.5) yields fewer tokens a ms than plain steps here, at 3-4 more
    const { stop, f } = stopAfter(prompt);
    expect(bestFreeLength(f.acceptance.estimates('lookup', 1, 16), 16, f.cost).rate).toBeLessThan(1);
    expect(bestFreeLength(f.acceptance.estimates('lookup', 3, 16), 16, f.cost).rate).toBeGreaterThan(1);
    expect(stop?.n).toBe(3);
    expect(Array.from(stop!.history)).toEqual([129, 104]); // the context's newest 2: the run's first trigram starts with them
  });
  it('longer where short matches have failed, shorter where they have held', () => {
    const failed = new FreeAcceptance();
    for (let i = 0; i < 10; i++) failed.observe('lookup', 3, 2, 0);
    const longer = stopAfter(prompt, failed).stop;
    expect(longer?.n).toBe(5);
    expect(Array.from(longer!.history)).toEqual([127, 128, 129, 104]);
    const held = new FreeAcceptance();
    for (let i = 0; i < 10; i++) held.observe('lookup', 1, 2, 2);
    const { stop } = stopAfter(prompt, held);
    expect(stop?.n).toBe(2); // (the 1-2 bucket; the addon takes n-grams of 2 and more)
    expect(Array.from(stop!.history)).toEqual([104]);
  });
  it('makes its filter at the first stop, from the prompt and the output so far', () => {
    const cost = new FreeRoundCost();
    cost.observePlainRun(10, 10, false);
    for (const rows of [3, 9, 17]) cost.observeRound(rows, 1 + 0.3 * rows);
    const lookup = new ContextLookup();
    lookup.pushAll(prompt);
    const f = freeRounds({ sources: [lookup], cost, repeats: true });
    const state = loopState([104, 105]);
    const stop = repeatStop(state, f, 105);
    expect(stop?.n).toBe(3);
    expect(Array.from(stop!.history)).toEqual([104, 105]);
    const reference = new NgramFilter(256, [...prompt, 104, 105]);
    reference.setLength(3);
    expect(stop!.filter).toEqual(reference.bits);
    // no filter where runs may not end at repeats
    expect(repeatStop(state, freeRounds({ sources: [lookup], cost }), 105)).toBeNull();
  });
  it('none where no match pays (rounds far dearer than plain steps), or after a declined repeat', () => {
    const cost = new FreeRoundCost();
    cost.observePlainRun(10, 10, false);
    for (const rows of [3, 9, 17]) cost.observeRound(rows, 3 * rows);
    expect(stopAfter(prompt, new FreeAcceptance(), { cost }).stop).toBeNull();
    expect(stopAfter(prompt, new FreeAcceptance(), { repeatDeclined: true }).stop).toBeNull();
  });
});

describe('plainRunEnd (how long a plain run goes before the sources are looked at)', () => {
  /** Rounds of 1 + 0.3 ms a row (`perRow` 3: far dearer than 1 ms plain steps), `sources`, the output [104]. */
  const endOf = (sources: FreeRounds['sources'], perRow = 0.3) => {
    const cost = new FreeRoundCost();
    cost.observePlainRun(10, 10, false);
    for (const rows of [3, 9, 17]) cost.observeRound(rows, 1 + perRow * rows);
    for (const x of sources) if (x instanceof ContextLookup) x.pushAll(Array.from({ length: 30 }, (_, i) => 100 + i));
    const f = freeRounds({ sources, cost, repeats: true });
    const state = {
      session: { tokens: [104], hasStopStrings: false },
      ctx: { state: () => ({ contextSize: 256 }) },
      spec: null,
      policy: null,
    } as unknown as LoopState;
    return plainRunEnd(state, f, 104, 8);
  };
  it('with lookup alone, runs to their length and end at a repeat instead of every 8 steps', () => {
    const end = endOf([new ContextLookup()]);
    expect(end.cap).toBe(Infinity);
    expect(end.repeat?.n).toBe(3);
  });
  it('with a prediction, still every 8 steps (its re-alignment is not a repeat), and at a repeat', () => {
    const end = endOf([new PredictionDrafts([1, 2, 3]), new ContextLookup()]);
    expect(end.cap).toBe(8);
    expect(end.repeat?.n).toBe(3);
  });
  it('neither where no free draft could pay (stories260K)', () => {
    expect(endOf([new ContextLookup()], 3)).toEqual({ cap: Infinity, repeat: null });
  });
});

function popcount(b: number): number {
  let c = 0;
  for (; b; b &= b - 1) c++;
  return c;
}
