// Lookup rounds in the addon's own greedy loop (decodeRun's `lookup`, lib/decoding/lookup-run.ts):
// checked against plain greedy decoding of the same model, which every round must reproduce token
// for token, with the KV cache left as plain steps leave it.
import { describe, expect, it, vi } from 'vitest';
import { DraftPolicy } from '../lib/decoding/draft-policy.js';
import { bestFreeLength, FreeAcceptance, FreeRoundCost } from '../lib/decoding/draft-sources.js';
import { GenerationMemory } from '../lib/decoding/generation-memory.js';
import { PredictionDrafts } from '../lib/decoding/prediction.js';
import type { NativeRunOptions } from '../lib/native/contract.js';
import { always, EXACT, modelFixture, randomModel, SHAPES, spyRuns, STORIES } from './helpers.js';

for (const [name, path] of [
  ['stories260K', () => STORIES],
  ['gqa-untied', () => randomModel(SHAPES['gqa-untied'])],
] as const) {
  describe(`lookup runs keep greedy output: ${name}`, () => {
    const f = modelFixture(path, { threads: 1, contextSize: 1024, ...EXACT });

    /** A prompt that holds the model's own continuation of its start, then that start again: the output repeats it. */
    const repeating = async () => {
      const start = f.model.tokenize('Once upon a time');
      f.ctx.clear();
      const story = (await f.ctx.generate(start, { maxTokens: 60 }).result).tokens;
      return [...start, ...story, ...start.slice(1)];
    };

    /** An adaptive policy (4 drafts) that measured these times, and rounds of 4 drafts with `accepted` accepted, eight times. */
    const measuredPolicy = (m: { fullMs: number; draftMs: number; verifyMs: number; accepted: number }) => {
      const p = new DraftPolicy(4, 1 / f.model.layerCount);
      for (let i = 0; i < 8; i++) {
        p.observeFullStep(m.fullMs);
        p.observeDraftStep(m.draftMs);
        p.observeVerify(5, m.verifyMs);
        p.observeRound(4, m.accepted);
      }
      return p;
    };

    /** decodeRun from `prompt` (its last token fed), after decoding the rest: tokens, result and the next position. */
    const run = async (prompt: number[], options: Omit<NativeRunOptions, 'token'>) => {
      const h = f.ctx.handle;
      f.ctx.clear();
      await h.decode({ tokens: Int32Array.from(prompt.slice(0, -1)) });
      const r = await h.decodeRun!({ token: prompt[prompt.length - 1], ...options });
      return { r, tokens: Array.from(r.tokens), next: h.state().nextPosition };
    };

    it("produces the plain run's tokens and cache, whatever the draft lengths", async () => {
      const prompt = await repeating();
      const plain = await run(prompt, { maxTokens: 48 });
      let accepted = 0;
      for (const n of [1, 3, 8, 16, 64]) {
        const got = await run(prompt, { maxTokens: 48, lookup: { context: Int32Array.from(prompt), policy: always(n) } });
        expect(got.tokens, `${n} drafts`).toEqual(plain.tokens);
        // positions hold the fed token and every produced token but the last, as after plain steps
        expect(got.next).toBe(plain.next);
        const { roundDrafts, roundAccepted, roundMatch } = got.r;
        roundDrafts!.forEach((d, i) => {
          expect(d).toBeGreaterThan(0);
          expect(d).toBeLessThanOrEqual(n);
          expect(roundAccepted![i]).toBeLessThanOrEqual(d);
          expect(roundMatch![i]).toBeGreaterThan(0);
        });
        const drafted = roundAccepted!.reduce((a, b) => a + b, 0);
        // every produced token is a round's accepted draft, a round's own token or a plain step's
        expect(drafted + roundDrafts!.length + got.r.plainSteps! + got.r.switchSteps!).toBe(got.tokens.length);
        accepted += drafted;
      }
      // the prompt repeats its own continuation: lookup rounds found it (not only plain steps)
      if (name === 'stories260K') expect(accepted).toBeGreaterThan(50);
      // the cache is consistent: a plain run from where the lookup run ended continues the reference
      const whole = await run(prompt, { maxTokens: 60 });
      const got = await run(prompt, { maxTokens: 30, lookup: { context: Int32Array.from(prompt), policy: always(8) } });
      const rest = await f.ctx.handle.decodeRun!({ token: got.tokens[got.tokens.length - 1], maxTokens: 30 });
      expect([...got.tokens, ...rest.tokens]).toEqual(whole.tokens);
    });

    /**
     * A lookup run from a repeating prompt with `cost`: each round's choice must be the TypeScript
     * choice (bestFreeLength) from the acceptance counted before it, with the costs read at the
     * position the round decodes at. Returns the rounds' draft counts.
     */
    const replayChoices = async (cost: FreeRoundCost) => {
      const prompt = await repeating();
      const acceptance = new FreeAcceptance();
      const maxTokens = 48;
      const policy = { ...acceptance.addonState('lookup'), ...cost.addonState(), maxDrafts: 16 };
      const got = await run(prompt, { maxTokens, lookup: { context: Int32Array.from(prompt), policy } });
      const { roundMatch, roundDrafts, roundAt, observed } = got.r;
      expect(roundDrafts!.length).toBeGreaterThan(2);
      // the counts in the addon's order: each round's choice from what was counted before it
      let round = 0;
      for (let i = 0; i < observed!.length; i += 5) {
        const [kind, source, match, drafted, accepted] = observed!.slice(i, i + 5);
        expect(source).toBe(0); // the context lookup
        if (kind === 0) {
          const max = Math.min(16, maxTokens - roundAt![round] - 1);
          cost.position = prompt.length - 1 + roundAt![round]; // (the fed token's position, then the run's)
          const best = bestFreeLength(acceptance.estimates('lookup', match, max), max, cost);
          expect(best.rate).toBeGreaterThan(cost.plainRate());
          expect([match, drafted], `round ${round}`).toEqual([roundMatch![round], best.length]);
          expect(roundDrafts![round]).toBe(drafted);
          round++;
        } else {
          expect(accepted).toBeGreaterThanOrEqual(drafted - 1); // a declined draft, followed up to its first difference
        }
        acceptance.observe('lookup', match, drafted, accepted);
        if (kind === 0) acceptance.age();
      }
      expect(round).toBe(roundDrafts!.length);
      return Array.from(roundDrafts!);
    };
    /** The costs of the 12-layer copy model (ms): a 0.3 ms step, rounds of 0.25 + 0.12 a row; `slope` more a step and a row per position. */
    const copyModelCosts = (slope: number) => {
      const cost = new FreeRoundCost();
      for (const p of [0, 100, 200]) cost.observePlainRun(10, 10 * (0.3 + slope * p), false, undefined, p);
      for (const rows of [3, 9, 17]) cost.observeRound(rows, 0.25 + 0.12 * rows, 0);
      return cost;
    };

    it('chooses each round as the TypeScript choice does, from the acceptance it has counted so far', async () => {
      await replayChoices(copyModelCosts(0));
    });

    it('reads the costs at the position each round decodes at, as the TypeScript choice does', async () => {
      // 0.002 ms a position: at the rounds' positions (60-110) a row costs 0.24-0.34 ms against a step
      // of 0.42-0.52, so the rounds are shorter than where rows cost 0.12 ms against a 0.3 ms step
      const sloped = copyModelCosts(0.002);
      expect(sloped.addonState().stepSlope).toBeCloseTo(0.002, 9);
      const flat = await replayChoices(copyModelCosts(0));
      const drafts = await replayChoices(sloped);
      expect(Math.max(...drafts)).toBeLessThan(Math.max(...flat));
    });

    it('costs a round by its size where that was measured (roundCosts), else by the line', async () => {
      const prompt = await repeating();
      // costs where a long round pays: a 0.3 ms step, rounds of 0.25 + 0.12 ms a row
      const cost = new FreeRoundCost();
      cost.observePlainRun(10, 3, false);
      for (const rows of [3, 9, 17]) cost.observeRound(rows, 0.25 + 0.12 * rows);
      const policy = { ...new FreeAcceptance().addonState('lookup'), ...cost.addonState(), maxDrafts: 16 };
      const lengths = async (roundCosts: Float64Array) => {
        const got = await run(prompt, { maxTokens: 48, lookup: { context: Int32Array.from(prompt), policy: { ...policy, roundCosts } } });
        return { drafts: Array.from(got.r.roundDrafts!), tokens: got.tokens };
      };
      const line = await lengths(new Float64Array(66));
      expect(Math.max(...line.drafts)).toBeGreaterThan(1);
      // 2-row rounds measured nearly free: one draft a round
      const cheap = new Float64Array(66);
      cheap[2] = 0.01;
      const short = await lengths(cheap);
      expect(short.drafts.length).toBeGreaterThan(2);
      expect(Math.max(...short.drafts)).toBe(1);
      expect(short.tokens).toEqual(line.tokens);
      await expect(lengths(new Float64Array(65))).rejects.toThrow(/roundCosts must be a Float64Array of 66/);
      await expect(lengths(new Float64Array(66).fill(-1))).rejects.toThrow(/roundCosts must be finite and non-negative/);
    });

    it('lets rounds grow to 2r - 1 drafts after a round of r rows, as the measured costs allow', async () => {
      const prompt = await repeating();
      const plain = await run(prompt, { maxTokens: 60 });
      const got = await run(prompt, { maxTokens: 60, lookup: { context: Int32Array.from(prompt), policy: { ...always(16), limit: 2 } } });
      expect(got.tokens).toEqual(plain.tokens);
      let limit = 2;
      for (const d of got.r.roundDrafts!) {
        expect(d).toBeLessThanOrEqual(limit);
        limit = Math.max(limit, 2 * (d + 1) - 1);
      }
      // (they grew: the prompt repeats, so whole rounds are accepted and the next may be longer)
      expect(Math.max(...got.r.roundDrafts!)).toBeGreaterThan(5);
    });

    it('ends at a stop token inside accepted drafts, at its token budget and after maxRounds rounds', async () => {
      const prompt = await repeating();
      const look = (n: number) => ({ context: Int32Array.from(prompt), policy: always(n) });
      const plain = await run(prompt, { maxTokens: 48 });
      const stopAt = plain.tokens[20];
      const stopTokens = Int32Array.of(stopAt);
      const stopped = await run(prompt, { maxTokens: 48, stopTokens, lookup: look(16) });
      const plainStopped = await run(prompt, { maxTokens: 48, stopTokens });
      expect(stopped.tokens).toEqual(plainStopped.tokens);
      expect(stopped.tokens[stopped.tokens.length - 1]).toBe(stopAt);
      expect(stopped.next).toBe(plainStopped.next);
      for (const maxTokens of [1, 2, 5, 17]) {
        const got = await run(prompt, { maxTokens, lookup: look(16) });
        expect(got.tokens).toEqual(plain.tokens.slice(0, maxTokens));
        expect(got.next).toBe(prompt.length + maxTokens - 1);
      }
      const one = await run(prompt, { maxTokens: 48, lookup: { ...look(4), maxRounds: 1 } });
      expect(one.tokens).toEqual(plain.tokens);
      expect(one.r.roundDrafts!.length).toBeLessThanOrEqual(1);
      // a probe: the first round's drafts whatever the policy (one that never takes any)
      const never = { ...always(4), plainMs: 1e-6 };
      const probed = await run(prompt, { maxTokens: 48, lookup: { context: Int32Array.from(prompt), policy: never, force: 2, maxRounds: 1 } });
      expect(probed.tokens).toEqual(plain.tokens);
      expect(Array.from(probed.r.roundDrafts!)).toEqual([2]);
      const none = await run(prompt, { maxTokens: 48, lookup: { context: Int32Array.from(prompt), policy: never } });
      expect(none.r.roundDrafts!.length).toBe(0);
    });

    it('rejects bad lookup options with clear errors and leaves the context usable', async () => {
      const prompt = await repeating();
      const h = f.ctx.handle;
      f.ctx.clear();
      await h.decode({ tokens: Int32Array.from(prompt.slice(0, -1)) });
      const token = prompt[prompt.length - 1];
      const context = Int32Array.from(prompt);
      const policy = always(4);
      const bad = (lookup: unknown, extra: object = {}) => h.decodeRun!({ token, maxTokens: 4, lookup, ...extra } as never);
      expect(() => bad({ context, policy: { ...policy, counts: new Float64Array(9) } })).toThrow(/counts must be a Float64Array of 10/);
      expect(() => bad({ context, policy: { ...policy, counts: new Float64Array(10).fill(-1) } })).toThrow(/non-negative/);
      expect(() => bad({ context, policy: { ...policy, priors: Float64Array.of(1, 1, 1, 1, 2) } })).toThrow(/priors/);
      expect(() => bad({ context, policy: { ...policy, maxDrafts: 65 } })).toThrow(/maxDrafts/);
      expect(() => bad({ context, policy: { ...policy, plainMs: Number.NaN } })).toThrow(/plainMs/);
      expect(() => bad({ context })).toThrow(/policy must be an object/);
      expect(() => bad({ context: context.slice(0, -1), policy })).toThrow(/end with token/);
      expect(() => bad({ context: Int32Array.of(1 << 20, token), policy })).toThrow(/vocabulary/);
      expect(() => bad({ context: [...context], policy })).toThrow(/Int32Array/);
      expect(() => bad({ context, policy, maxRounds: -1 })).toThrow(RangeError);
      expect(() => bad({ context, policy, force: 65 })).toThrow(RangeError);
      expect(() => bad(7)).toThrow(/lookup must be an object/);
      expect(() => bad({})).toThrow(/a context, a prediction or both/);
      const prediction = { ...new PredictionDrafts(prompt).addonState(), policy };
      expect(() => bad({ prediction: 3 })).toThrow(/prediction must be an object/);
      expect(() => bad({ prediction: { ...prediction, tokens: [1, 2] } })).toThrow(/prediction.tokens must be an Int32Array/);
      expect(() => bad({ prediction: { ...prediction, cursor: prompt.length + 1 } })).toThrow(RangeError);
      expect(() => bad({ prediction: { ...prediction, run: undefined } })).toThrow(/prediction.run is required/);
      expect(() => bad({ prediction: { ...prediction, recent: new Int32Array(9) } })).toThrow(/more than 8/);
      expect(() => bad({ prediction: { ...prediction, tokens: Int32Array.of(1 << 20) } })).toThrow(/vocabulary/);
      expect(() => bad({ prediction: { ...prediction, policy: { ...policy, decay: 2 } } })).toThrow(/prediction.policy.decay/);
      expect(() => bad({ context, policy, runTokens: -1 })).toThrow(RangeError);
      expect(() => bad({ context, policy }, { repeat: { filter: new Uint8Array(8), n: 3, history: Int32Array.of(1, 2) } })).toThrow(/exclude/);
      const r = await h.decodeRun!({ token, maxTokens: 4, lookup: { context, policy } });
      expect(r.tokens.length).toBe(4);
    });

    /** A prediction of `tokens` with every `every`-th token replaced (an edit), the way edit workflows predict. */
    const edited = (tokens: number[], every: number) => tokens.map((t, i) => (i % every === every - 1 ? (t + 7) % 256 : t));

    it("follows a prediction as PredictionDrafts does, keeping the plain run's tokens and cache", async () => {
      const start = f.model.tokenize('Once upon a time');
      const plain = await run(start, { maxTokens: 48 });
      for (const [what, prediction] of [
        ['exact', plain.tokens],
        ['edited every 7th token', edited(plain.tokens, 7)],
        ['shifted by two tokens', plain.tokens.slice(2)],
        ['unrelated', Array.from({ length: 40 }, (_, i) => (i * 37) % 200)],
      ] as const) {
        const source = new PredictionDrafts(prediction);
        const got = await run(start, { maxTokens: 48, lookup: { prediction: { ...source.addonState(), policy: always(8) } } });
        expect(got.tokens, what).toEqual(plain.tokens);
        expect(got.next, what).toBe(plain.next);
        const { roundSource, roundMatch, roundDrafts, roundAccepted, roundAt } = got.r;
        // each round where the TypeScript source stood at the same output: the same match, and drafts
        // the output followed as far as the round accepted them
        let round = 0;
        for (let at = 0; at <= got.tokens.length && round < roundAt!.length; at++) {
          if (roundAt![round] === at) {
            expect(roundSource![round], what).toBe(1);
            expect(roundMatch![round], `${what}: round ${round}`).toBe(source.matchLength);
            const drafts = source.draft(roundDrafts![round]);
            expect(drafts.length).toBe(roundDrafts![round]);
            let followed = 0;
            while (followed < drafts.length && drafts[followed] === got.tokens[at + followed]) followed++;
            expect(roundAccepted![round], `${what}: round ${round}`).toBe(followed);
            round++;
          }
          if (at < got.tokens.length) source.push(got.tokens[at]);
        }
        expect(round, what).toBe(roundAt!.length);
        if (what === 'exact') expect(roundAccepted!.reduce((a, b) => a + b, 0)).toBeGreaterThan(30);
        if (what === 'edited every 7th token') expect(roundDrafts!.length).toBeGreaterThan(3); // re-aligned after edits
      }
    });

    it('weighs a prediction against the context lookup, each by its own counts, and ends runs after runTokens', async () => {
      const prompt = await repeating();
      const plain = await run(prompt, { maxTokens: 48 });
      // the prediction is right for its first 10 tokens only; the context keeps repeating the story
      const prediction = [...plain.tokens.slice(0, 10), ...edited(plain.tokens.slice(10), 2)];
      const state = new PredictionDrafts(prediction).addonState();
      const got = await run(prompt, {
        maxTokens: 48,
        lookup: { context: Int32Array.from(prompt), policy: always(8), prediction: { ...state, policy: always(8) } },
      });
      expect(got.tokens).toEqual(plain.tokens);
      const sources = new Set(got.r.roundSource);
      expect(sources).toEqual(new Set([0, 1]));
      // the policies count their own source: a prediction round's entry names source 1
      const o = got.r.observed!;
      for (let i = 0; i < o.length; i += 5) if (o[i] === 0) expect([0, 1]).toContain(o[i + 1]);
      const counted = Array.from({ length: o.length / 5 }, (_, i) => o[5 * i + 1]).filter((_, i) => o[5 * i] === 0);
      expect(counted).toEqual(Array.from(got.r.roundSource!));
      // a run of 5 tokens may finish its round past them, not past maxTokens
      for (const runTokens of [1, 5, 13]) {
        const short = await run(prompt, { maxTokens: 48, lookup: { context: Int32Array.from(prompt), policy: always(16), runTokens } });
        expect(short.tokens).toEqual(plain.tokens.slice(0, short.tokens.length));
        expect(short.tokens.length).toBeGreaterThanOrEqual(runTokens);
        const last = short.r.roundAt!.length - 1;
        // it ended at its first step or round past runTokens
        const before =
          last >= 0 && short.r.roundAt![last] + short.r.roundAccepted![last] + 1 === short.tokens.length ? short.r.roundAt![last] : short.tokens.length - 1;
        expect(before).toBeLessThan(runTokens);
      }
    });

    it('generate({ prediction }) runs in the addon, with or without lookup, and equals plain greedy output', async () => {
      const prompt = await repeating();
      f.ctx.clear();
      const plain = await f.ctx.generate(prompt, { maxTokens: 80 }).result;
      const { seen, restore } = spyRuns(f.ctx);
      try {
        for (const prediction of [plain.tokens, edited(plain.tokens, 9), plain.text]) {
          for (const lookup of [false, true]) {
            seen.length = 0;
            f.ctx.clear();
            const r = await f.ctx.generate(prompt, { maxTokens: 80, prediction, lookup }).result;
            expect(r.tokens).toEqual(plain.tokens);
            expect(seen.some((o) => o.lookup?.prediction !== undefined)).toBe(true);
            const p = r.speculative!.sources.prediction!;
            expect(p.acceptedByPosition.reduce((a, b) => a + b, 0)).toBe(p.accepted);
            if (prediction === plain.tokens) expect(p.accepted).toBeGreaterThan(40);
          }
        }
        const stop = plain.text.slice(30, 36);
        const stopped = await f.ctx.generate(prompt, { maxTokens: 80, prediction: plain.tokens, stop: [stop] }).result;
        expect(stopped.text).toBe(plain.text.slice(0, plain.text.indexOf(stop)));
        // early exit: its rounds run in the addon too, at a fixed length (early-exit-run.test.ts) or,
        // adaptive, at the length its policy chose before the call (its probes in the in-turn loop)
        for (const selfSpeculative of [
          { exitLayer: 1, draftTokens: 3, adaptive: true },
          { exitLayer: 1, draftTokens: 3 },
        ]) {
          seen.length = 0;
          f.ctx.clear();
          const r = await f.ctx.generate(prompt, { maxTokens: 80, prediction: edited(plain.tokens, 9), lookup: true, selfSpeculative }).result;
          expect(r.tokens).toEqual(plain.tokens);
          expect(seen.some((o) => o.lookup?.prediction !== undefined)).toBe(true);
          // (adaptive: where its policy takes plain steps, its runs offer no early exit)
          if (selfSpeculative.adaptive !== true) expect(seen.some((o) => o.earlyExit !== undefined)).toBe(true);
        }
      } finally {
        restore();
      }
    });

    it("takes adaptive drafting's free rounds in the addon's runs, not one call each", async () => {
      const prompt = await repeating();
      f.ctx.clear();
      const plain = await f.ctx.generate(prompt, { maxTokens: 120 }).result;
      // free rounds the addon's runs took; the generation's others ran in the TypeScript loop
      const h = f.ctx.handle;
      const original = h.decodeRun!;
      let inRuns = 0;
      h.decodeRun = async (o) => {
        const r = await original.call(h, o);
        inRuns += (r.roundSource ?? []).filter((s) => s !== 2).length; // (2: an early-exit round)
        return r;
      };
      try {
        // a prediction equal to the output: a free draft beats every other step. Free rounds taken
        // in place of the policy's early-exit round or its probe left the policy where it was, and
        // every later round ran in the TypeScript loop, a call and a hand-off each
        const selfSpeculative = { exitLayer: 1, draftTokens: 3, adaptive: true };
        let freeRounds = 0;
        for (let g = 0; g < 4; g++) {
          inRuns = 0;
          f.ctx.clear();
          const r = await f.ctx.generate(prompt, { maxTokens: 120, prediction: plain.tokens, selfSpeculative }).result;
          expect(r.tokens).toEqual(plain.tokens);
          const free = r.speculative!.sources.prediction!;
          expect(free.rounds - inRuns, `generation ${g}`).toBe(0);
          freeRounds += free.rounds;
        }
        expect(freeRounds).toBeGreaterThan(0);
        // a policy whose measurements say drafting wins (cheap drafts, every one accepted; what the
        // policy decides from real timings varies with the machine): its early-exit rounds run in
        // the addon's runs too, at the length it chose, and keep the output
        const drafting = measuredPolicy({ fullMs: 1, draftMs: 0.05, verifyMs: 0.3, accepted: 4 });
        expect(drafting.plainWins()).toBe(false);
        const policyOf = vi.spyOn(GenerationMemory.prototype, 'policy').mockReturnValue(drafting);
        const lengths: number[] = [];
        h.decodeRun = (o) => {
          if (o.earlyExit) lengths.push(o.earlyExit.draftTokens);
          return original.call(h, o);
        };
        try {
          f.ctx.clear();
          const r = await f.ctx.generate(prompt, { maxTokens: 120, lookup: true, selfSpeculative: { exitLayer: 1, draftTokens: 4, adaptive: true } }).result;
          expect(r.tokens).toEqual(plain.tokens);
          expect(lengths[0]).toBe(4);
          expect(r.speculative!.sources.earlyExit!.rounds).toBeGreaterThan(0);
        } finally {
          policyOf.mockRestore();
        }
      } finally {
        h.decodeRun = original;
      }
    });

    it("gives adaptive drafting the full step's time of the plain steps in the addon's runs", async () => {
      // a policy whose measurements say plain steps win: with lookup, its plain steps run in the
      // addon's runs, and each run's plain steps must reach it as a full step's time, as the in-turn
      // loop's plain runs do (else it measured one only at its refreshes, and a stale one set against
      // a probe's times took it into drafting: BENCHMARKS.md section 16, "Stop 48")
      const plainWins = measuredPolicy({ fullMs: 0.1, draftMs: 0.1, verifyMs: 0.5, accepted: 0 });
      expect(plainWins.plainWins()).toBe(true);
      const observed = vi.spyOn(plainWins, 'observeFullStep');
      const policyOf = vi.spyOn(GenerationMemory.prototype, 'policy').mockReturnValue(plainWins);
      const h = f.ctx.handle;
      const original = h.decodeRun!;
      // per run with plain steps, their time a step (a run with rounds reports its plain steps apart)
      const expected: number[] = [];
      h.decodeRun = async (o) => {
        const r = await original.call(h, o);
        if (!o.lookup && !o.earlyExit) expected.push(r.nativeMs / r.tokens.length);
        else if ((r.plainSteps ?? 0) > 0) expected.push(r.plainMs! / r.plainSteps!);
        return r;
      };
      try {
        f.ctx.clear();
        const plain = await f.ctx.generate('Once upon a time', { maxTokens: 120 }).result;
        observed.mockClear();
        expected.length = 0;
        f.ctx.clear();
        const r = await f.ctx.generate('Once upon a time', { maxTokens: 120, lookup: true, selfSpeculative: { exitLayer: 1, draftTokens: 4, adaptive: true } })
          .result;
        expect(r.tokens).toEqual(plain.tokens);
        expect(expected.length).toBeGreaterThan(0);
        const got = observed.mock.calls.map(([ms]) => ms);
        expect(got).toHaveLength(expected.length);
        got.forEach((ms, i) => expect(ms).toBeCloseTo(expected[i], 9));
      } finally {
        h.decodeRun = original;
        policyOf.mockRestore();
      }
    });

    it('generate({ lookup: true }) runs in the addon and equals plain greedy output, stops included', async () => {
      const prompt = await repeating();
      f.ctx.clear();
      const plain = await f.ctx.generate(prompt, { maxTokens: 80 }).result;
      for (let i = 0; i < 3; i++) {
        f.ctx.clear();
        const r = await f.ctx.generate(prompt, { maxTokens: 80, lookup: true }).result;
        expect(r.tokens).toEqual(plain.tokens);
        const s = r.speculative!.sources.lookup!;
        expect(s.draftedByPosition.reduce((a, b) => a + b, 0)).toBe(s.drafted);
        expect(s.acceptedByPosition.reduce((a, b) => a + b, 0)).toBe(s.accepted);
        expect(s.indexed).toBe(prompt.length + r.tokens.length);
      }
      // a stop string inside a run: the same text, and the next generation reuses a consistent cache
      const stop = plain.text.slice(30, 36);
      const s = await f.ctx.generate(prompt, { maxTokens: 80, lookup: true, stop: [stop] }).result;
      expect(s.stopReason).toBe('stopString');
      expect(s.text).toBe(plain.text.slice(0, plain.text.indexOf(stop)));
      const again = await f.ctx.generate(prompt, { maxTokens: 80, lookup: true }).result;
      expect(again.timings.reusedPromptTokens).toBeGreaterThan(0);
      expect(again.tokens).toEqual(plain.tokens);
      // an abort between a run's steps
      const controller = new AbortController();
      f.ctx.clear();
      const g = f.ctx.generate(prompt, { maxTokens: 400, lookup: true, signal: controller.signal });
      controller.abort();
      await expect(g.result).rejects.toThrow(/abort/i);
      const after = await f.ctx.generate(prompt, { maxTokens: 80, lookup: true }).result;
      expect(after.tokens).toEqual(plain.tokens);
    });
  });
}
