// The adaptive draft policy against simulated costs: it falls back to plain steps when drafting
// cannot pay (and probes ever more rarely), and drafts long when acceptance is high and drafts are cheap.
import { describe, expect, it } from 'vitest';
import { DraftPolicy } from '../lib/decoding/draft-policy.js';

/** Simulates generation: returns the expected time per token relative to plain decoding (1.0). */
function simulate(
  acceptance: number,
  draftCost: number,
  verifyCost: (k: number) => number,
  tokens = 2000,
  policy = new DraftPolicy(8, 0.25),
  /** What a plain step at simulated time t is measured at (it costs 1): a busy machine's pause. */
  measuredFullStep = (_t: number) => 1,
): { relTime: number; meanDraft: number } {
  policy.startGeneration();
  let produced = 0;
  let time = 0;
  let rounds = 0;
  let drafted = 0;
  // a deterministic acceptance pattern with the given rate
  let acc = 0;
  while (produced < tokens) {
    const d = policy.next();
    rounds++;
    if (d === 0) {
      policy.observeFullStep(measuredFullStep(time));
      time += 1;
      produced += 1;
      continue;
    }
    drafted += d;
    let n = 0;
    for (let j = 0; j < d; j++) {
      acc += acceptance;
      if (acc >= 1) {
        acc -= 1;
        n++;
      } else break;
    }
    const cost = (d + 1) * draftCost + verifyCost(d + 1);
    policy.observeDraftStep(draftCost);
    policy.observeVerify(d + 1, verifyCost(d + 1));
    policy.observeRound(d, n);
    time += cost;
    produced += n + 1;
  }
  return { relTime: time / produced, meanDraft: drafted / rounds };
}

describe('DraftPolicy', () => {
  it('falls back to plain decoding when early exit never agrees (>= 0.95x plain speed)', () => {
    const r = simulate(0, 0.35, (k) => 0.75 * (1 + 0.4 * (k - 1)));
    expect(1 / r.relTime).toBeGreaterThan(0.95);
  });
  it('falls back when verification batches are expensive (CPU, compute bound)', () => {
    const r = simulate(0.7, 0.36, (k) => 0.75 * k * 0.85);
    expect(1 / r.relTime).toBeGreaterThan(0.95);
  });
  it('probes rarely when a draft step costs a full step, even though drafts are accepted (tiny models)', () => {
    // drafting loses at any acceptance here, so a probe that succeeds must not bring probes back
    const r = simulate(0.6, 1.2, (k) => 1 + 0.3 * (k - 1));
    expect(1 / r.relTime).toBeGreaterThan(0.98);
  });
  it('spaces probes by their measured cost, so a short generation loses little to them', () => {
    // a probe here costs 3.7 full steps: every 16-128 steps that is 3% of 256 tokens
    const r = simulate(0.6, 1.2, (k) => 1 + 0.3 * (k - 1), 256);
    expect(1 / r.relTime).toBeGreaterThan(0.975);
  });
  it('probes at the longest interval where drafting cannot pay, across generations that keep the policy', () => {
    // a sequence keeps its policy between generations (generation-memory.ts): 8 generations of 256
    // tokens with one policy. A multi-row decode here pays two graph builds (there and back), as on
    // stories260K. Probes only re-measure costs, so one per 512 steps is enough: 0.993x plain,
    // where doubling the interval gives 0.988x and a fresh policy per generation 0.986x
    const policy = new DraftPolicy(8, 0.25);
    let time = 0;
    for (let g = 0; g < 8; g++) time += simulate(0.6, 1.2, (k) => 3 + 0.3 * (k - 1), 256, policy).relTime;
    expect(8 / time).toBeGreaterThan(0.99);
  });
  it('says whether plain steps win without counting a step, and counts the steps of runs it was not asked for', () => {
    // a policy settled into plain steps (early exit never agrees): steps until its next probe
    const settled = () => {
      const policy = new DraftPolicy(8, 0.25);
      simulate(0, 0.35, (k) => 0.75 * (1 + 0.4 * (k - 1)), 300, policy);
      return policy;
    };
    const stepsToProbe = (policy: DraftPolicy, ask: boolean) => {
      for (let n = 1; ; n++) {
        if (ask) expect(policy.plainWins()).toBe(true);
        if (policy.next() > 0) return n;
      }
    };
    const plain = stepsToProbe(settled(), false);
    expect(plain).toBeGreaterThan(3);
    expect(stepsToProbe(settled(), true)).toBe(plain);
    const counted = settled();
    counted.countPlain(2);
    expect(stepsToProbe(counted, false)).toBe(plain - 2);
    // while drafting wins, plain steps do not
    const drafting = new DraftPolicy(8, 0.25);
    simulate(0.9, 0.1, (k) => 0.3 + 0.05 * k, 300, drafting);
    expect(drafting.plainWins()).toBe(false);
  });
  it('does not keep drafting after a slow spell measured the full step', () => {
    // a draft step costs 1.2 full steps: drafting loses at any acceptance. After the first probe
    // measured a draft step, plain steps are measured 10x slow for a while (a busy machine), so
    // drafting looks like it wins, and while drafting no plain step measures the full step again:
    // without the policy's refresh this runs at 0.44x plain for good, and with refreshes that join
    // the stale measurements instead of replacing them at 0.56x
    const slowSpell = (t: number) => (t >= 20 && t < 40 ? 10 : 1);
    const r = simulate(0.6, 1.2, (k) => 1 + 0.3 * (k - 1), 2000, new DraftPolicy(8, 0.25), slowSpell);
    expect(1 / r.relTime).toBeGreaterThan(0.95);
  });
  it('takes the lower of two full-step measurements: the slow one is the outlier', () => {
    const policy = new DraftPolicy(8, 0.25);
    policy.observeDraftStep(1.2);
    policy.observeVerify(2, 1.3);
    policy.observeFullStep(10);
    policy.observeFullStep(1);
    expect(policy.next()).toBe(0);
  });
  it('drafts long when acceptance is high and verification is cheap (memory bound)', () => {
    const r = simulate(0.9, 0.3, (k) => 0.75 * (1 + 0.05 * (k - 1)));
    expect(r.meanDraft).toBeGreaterThan(3); // rounds include the plain steps before the first probe
    expect(1 / r.relTime).toBeGreaterThan(1.5);
  });
});
