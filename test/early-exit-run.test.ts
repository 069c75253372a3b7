// Early-exit rounds in the addon's own greedy loop (decodeRun's `earlyExit`,
// lib/decoding/early-exit-run.ts): checked against plain greedy decoding of the same model, which
// every round must reproduce token for token, with the KV cache left as plain steps leave it.
import { describe, expect, it } from 'vitest';
import { fitDraftHead, type GenerateOptions } from '../lib/index.js';
import type { NativeRunOptions } from '../lib/native/contract.js';
import { always, EXACT, modelFixture, randomModel, SHAPES, spyRuns, STORIES } from './helpers.js';

for (const [name, path] of [
  ['stories260K', () => STORIES],
  ['gqa-untied', () => randomModel(SHAPES['gqa-untied'])],
] as const) {
  describe(`early-exit runs keep greedy output: ${name}`, () => {
    const f = modelFixture(path, { threads: 1, contextSize: 1024, ...EXACT });
    const prompt = () => Array.from(f.model.tokenize('Once upon a time'));

    /** decodeRun from `prompt` (its last token fed), after decoding the rest: tokens, result and the state after. */
    const run = async (options: Omit<NativeRunOptions, 'token'>) => {
      const h = f.ctx.handle;
      const p = prompt();
      f.ctx.clear();
      await h.decode({ tokens: Int32Array.from(p.slice(0, -1)) });
      const r = await h.decodeRun!({ token: p[p.length - 1], ...options });
      return { r, tokens: Array.from(r.tokens), state: h.state() };
    };

    it("produces the plain run's tokens and cache at every exit layer and draft length", async () => {
      const plain = await run({ maxTokens: 48 });
      const layers = f.model.info.layerCount;
      let accepted = 0;
      for (const layer of [1, layers - 1]) {
        for (const draftTokens of [1, 3, 8]) {
          const got = await run({ maxTokens: 48, earlyExit: { layer, draftTokens } });
          const what = `E = ${layer}, ${draftTokens} drafts`;
          expect(got.tokens, what).toEqual(plain.tokens);
          // positions hold the fed token and every produced token but the last, every layer of them
          expect(got.state.nextPosition, what).toBe(plain.state.nextPosition);
          expect(got.state.verifiedPosition, what).toBe(got.state.nextPosition);
          const { roundDrafts, roundAccepted, roundAt } = got.r;
          expect(roundDrafts!.length).toBeGreaterThan(0);
          let at = 0;
          roundDrafts!.forEach((d, i) => {
            expect(d).toBeGreaterThan(0);
            expect(d).toBeLessThanOrEqual(draftTokens);
            expect(roundAccepted![i]).toBeLessThanOrEqual(d);
            expect(roundAt![i]).toBe(at);
            at += roundAccepted![i] + 1;
          });
          const drafted = roundAccepted!.reduce((a, b) => a + b, 0);
          // every produced token is a round's accepted draft, a round's own token or a plain step's
          expect(drafted + roundDrafts!.length + got.r.plainSteps! + got.r.switchSteps!).toBe(got.tokens.length);
          if (layer === layers - 1) accepted += drafted;
        }
      }
      // one layer short of the full model, most drafts hold: the accepted ones were kept, not redone
      expect(accepted).toBeGreaterThan(40);
    });

    it('leaves a cache a plain run continues, and ends at a stop token and at its budgets', async () => {
      const earlyExit = { layer: 2, draftTokens: 4 };
      const whole = await run({ maxTokens: 60 });
      const got = await run({ maxTokens: 30, earlyExit });
      const rest = await f.ctx.handle.decodeRun!({ token: got.tokens[got.tokens.length - 1], maxTokens: 60 - got.tokens.length });
      expect([...got.tokens, ...rest.tokens]).toEqual(whole.tokens);
      const stopAt = whole.tokens[20];
      const stopped = await run({ maxTokens: 48, stopTokens: Int32Array.of(stopAt), earlyExit });
      const plainStopped = await run({ maxTokens: 48, stopTokens: Int32Array.of(stopAt) });
      expect(stopped.tokens).toEqual(plainStopped.tokens);
      expect(stopped.state.nextPosition).toBe(plainStopped.state.nextPosition);
      for (const maxTokens of [1, 2, 5, 17]) {
        const short = await run({ maxTokens, earlyExit: { ...earlyExit, draftTokens: 8 } });
        expect(short.tokens).toEqual(whole.tokens.slice(0, maxTokens));
        expect(short.state.nextPosition).toBe(whole.state.nextPosition - 60 + maxTokens);
      }
      // runTokens: the run ends at the first round that reaches it
      const part = await run({ maxTokens: 40, earlyExit: { ...earlyExit, runTokens: 10 } });
      expect(part.tokens).toEqual(whole.tokens.slice(0, part.tokens.length));
      expect(part.tokens.length).toBeGreaterThanOrEqual(10);
      const lastRound = part.r.roundAt![part.r.roundAt!.length - 1];
      expect(lastRound).toBeLessThan(10);
    });

    it('takes a free round where it beats the early-exit rate, an early-exit round elsewhere', async () => {
      // a prompt holding the model's own continuation of its start, then that start again
      const start = prompt();
      f.ctx.clear();
      const story = Array.from((await f.ctx.generate(start, { maxTokens: 60 }).result).tokens);
      const repeating = [...start, ...story, ...start.slice(1)];
      const h = f.ctx.handle;
      const from = async (options: Omit<NativeRunOptions, 'token'>) => {
        f.ctx.clear();
        await h.decode({ tokens: Int32Array.from(repeating.slice(0, -1)) });
        const r = await h.decodeRun!({ token: repeating[repeating.length - 1], ...options });
        return { r, tokens: Array.from(r.tokens), state: h.state() };
      };
      const plain = await from({ maxTokens: 48 });
      // lookup drafts whose estimates are 1, rounds that cost 1 + 0.1 a row (ms): 8 drafts, 9 tokens in 1.9 ms
      const policy = always(8);
      const lookup = { context: Int32Array.from(repeating), policy };
      const sources = async (rate: number) => {
        const got = await from({ maxTokens: 48, lookup, earlyExit: { layer: 2, draftTokens: 3, rate } });
        expect(got.tokens, `rate ${rate}`).toEqual(plain.tokens);
        expect(got.state.nextPosition).toBe(plain.state.nextPosition);
        expect(got.state.verifiedPosition).toBe(got.state.nextPosition);
        const { roundSource, roundMatch, roundAccepted, roundDrafts } = got.r;
        const drafted = roundAccepted!.reduce((a, b) => a + b, 0);
        expect(drafted + roundDrafts!.length + got.r.plainSteps! + got.r.switchSteps!).toBe(got.tokens.length);
        roundSource!.forEach((src, i) => expect(roundMatch![i] > 0).toBe(src === 0));
        return Array.from(roundSource!);
      };
      // the early-exit rounds measured faster than any free round: early exit only (its measured
      // rate then replaces the one given, so the choice may change later in the run)
      const fast = await sources(1000);
      expect(fast[0]).toBe(2);
      expect(fast.filter((x) => x === 2).length).toBeGreaterThan(3);
      // slower: the free rounds wherever the lookup has a match
      const slow = await sources(1e-6);
      expect(slow[0]).toBe(0);
      expect(slow.filter((x) => x === 0).length).toBeGreaterThan(2);
    });

    it('rejects bad options and pending drafts, and leaves the sequence as it was', async () => {
      const h = f.ctx.handle;
      f.ctx.clear();
      await h.decode({ tokens: Int32Array.from(prompt()) });
      const token = prompt()[0];
      await expect(async () => h.decodeRun!({ token, maxTokens: 4, earlyExit: {} as never })).rejects.toThrow(/earlyExit.layer is required/);
      const layers = f.model.info.layerCount;
      await expect(async () => h.decodeRun!({ token, maxTokens: 4, earlyExit: { layer: layers, draftTokens: 2 } })).rejects.toThrow(RangeError);
      await expect(async () => h.decodeRun!({ token, maxTokens: 4, earlyExit: { layer: 1, draftTokens: 0 } })).rejects.toThrow(RangeError);
      await expect(async () =>
        h.decodeRun!({
          token,
          maxTokens: 4,
          earlyExit: { layer: 1, draftTokens: 2 },
          repeat: { filter: new Uint8Array(8), n: 2, history: Int32Array.of(token) },
        }),
      ).rejects.toThrow(/earlyExit excludes repeat/);
      await h.draft({ token, layer: 1, maxTokens: 2 });
      await expect(async () => h.decodeRun!({ token, maxTokens: 4, earlyExit: { layer: 1, draftTokens: 2 } })).rejects.toThrow(/hold early-exit drafts/);
      expect(h.state().nextPosition).toBeGreaterThan(h.state().verifiedPosition);
    });
  });
}

describe('generate() with fixed-length early exit runs its rounds in the addon', () => {
  const f = modelFixture(() => STORIES, { threads: 1, contextSize: 1024, ...EXACT });

  /** decodeRun's options while `run` runs. */
  const recorded = async (run: () => Promise<void>): Promise<NativeRunOptions[]> => {
    const spy = spyRuns(f.ctx);
    try {
      await run();
    } finally {
      spy.restore();
    }
    return spy.seen;
  };

  it('equals plain greedy output and counts the rounds the in-turn loop counts', async () => {
    const prompt = 'Once upon a time';
    f.ctx.clear();
    const plain = await f.ctx.generate(prompt, { maxTokens: 120 }).result;
    for (const selfSpeculative of [
      { exitLayer: 4, draftTokens: 4 },
      { exitLayer: 2, draftTokens: 2, minDraftProbability: 0.5 },
    ]) {
      let r: Awaited<ReturnType<typeof f.ctx.generate>['result']> | null = null;
      const seen = await recorded(async () => {
        f.ctx.clear();
        r = await f.ctx.generate(prompt, { maxTokens: 120, selfSpeculative }).result;
      });
      expect(seen.length).toBeGreaterThan(0);
      expect(seen.every((o) => o.earlyExit?.layer === selfSpeculative.exitLayer && o.earlyExit.draftTokens === selfSpeculative.draftTokens)).toBe(true);
      const got = r!;
      expect(got.tokens).toEqual(plain.tokens);
      const s = got.speculative!;
      const ee = s.sources.earlyExit!;
      expect(ee.drafted).toBe(s.drafted);
      expect(ee.accepted).toBe(s.accepted);
      expect(s.accepted + s.corrections).toBe(got.tokens.length);
      expect(ee.draftedByPosition.reduce((a, b) => a + b, 0)).toBe(ee.drafted);
      expect(s.draftLengths.filter((d) => d > 0).length).toBe(ee.rounds);
      expect(ee.rounds).toBeGreaterThan(10);
      // the in-turn loop (the internal benchmark choice) drafts the same rounds and counts the same
      const inTurn = await recorded(async () => {
        f.ctx.clear();
        const t = await f.ctx.generate(prompt, { maxTokens: 120, selfSpeculative, freeDraftChoice: 'in-turn' } as GenerateOptions).result;
        expect(t.tokens).toEqual(plain.tokens);
        const ts = t.speculative!;
        expect([ts.rounds, ts.drafted, ts.accepted, ts.corrections]).toEqual([s.rounds, s.drafted, s.accepted, s.corrections]);
        expect(ts.draftLengths.filter((d) => d > 0)).toEqual(s.draftLengths.filter((d) => d > 0));
        expect(ts.sources.earlyExit!.acceptedByPosition).toEqual(ee.acceptedByPosition);
      });
      expect(inTurn.some((o) => o.earlyExit !== undefined)).toBe(false);
    }
    // adaptive drafting and a grammar keep the in-turn loop
    const adaptive = await recorded(async () => {
      f.ctx.clear();
      await f.ctx.generate(prompt, { maxTokens: 40, selfSpeculative: { exitLayer: 4, draftTokens: 4, adaptive: true } }).result;
    });
    expect(adaptive.some((o) => o.earlyExit !== undefined)).toBe(false);
  });

  it('with lookup: free and early-exit rounds in one run, each counted for its source', async () => {
    const start = 'Once upon a time';
    f.ctx.clear();
    const story = (await f.ctx.generate(start, { maxTokens: 60 }).result).text;
    const prompt = `${start}${story} ${start}`;
    f.ctx.clear();
    const plain = await f.ctx.generate(prompt, { maxTokens: 100 }).result;
    let r: Awaited<ReturnType<typeof f.ctx.generate>['result']> | null = null;
    const seen = await recorded(async () => {
      f.ctx.clear();
      r = await f.ctx.generate(prompt, { maxTokens: 100, lookup: true, selfSpeculative: { exitLayer: 3, draftTokens: 3 } }).result;
    });
    const got = r!;
    expect(got.tokens).toEqual(plain.tokens);
    expect(seen.some((o) => o.earlyExit !== undefined && o.lookup?.context !== undefined)).toBe(true);
    const s = got.speculative!;
    const { earlyExit: ee, lookup } = s.sources;
    // the prompt repeats the model's own story: lookup rounds drafted much of it
    expect(lookup!.accepted).toBeGreaterThan(10);
    expect(ee!.rounds).toBeGreaterThan(0);
    expect(s.drafted).toBe(ee!.drafted);
    expect(s.accepted).toBe(ee!.accepted);
    expect(s.accepted + lookup!.accepted + s.corrections).toBe(got.tokens.length);
    expect(s.draftLengths.filter((d) => d > 0).length).toBe(ee!.rounds + lookup!.rounds);
  });

  it('keeps stop strings, the token limit, a draft head and an abort', async () => {
    const prompt = 'Once upon a time';
    const selfSpeculative = { exitLayer: 3, draftTokens: 3 };
    f.ctx.clear();
    const plain = await f.ctx.generate(prompt, { maxTokens: 100 }).result;
    const stop = plain.text.slice(40, 46);
    f.ctx.clear();
    const stopped = await f.ctx.generate(prompt, { maxTokens: 100, stop: [stop], selfSpeculative }).result;
    expect(stopped.stopReason).toBe('stopString');
    expect(stopped.text).toBe(plain.text.slice(0, plain.text.indexOf(stop)));
    // the next generation reuses the prompt's cache: consistent after the run's cut
    const again = await f.ctx.generate(prompt, { maxTokens: 37, selfSpeculative }).result;
    expect(again.timings.reusedPromptTokens).toBeGreaterThan(0);
    expect(again.tokens).toEqual(plain.tokens.slice(0, 37));
    // a fitted head drafts in the addon's rounds as in draft()
    const head = await fitDraftHead(f.ctx, { exitLayer: 3, selfGenerate: { positions: 600 }, steps: 10 });
    const seen = await recorded(async () => {
      f.ctx.clear();
      const withHead = await f.ctx.generate(prompt, { maxTokens: 100, selfSpeculative: { ...selfSpeculative, draftHead: head } }).result;
      expect(withHead.tokens).toEqual(plain.tokens);
    });
    expect(seen.some((o) => o.earlyExit !== undefined)).toBe(true);
    // an abort between a run's rounds rejects the generation; the next one starts from a consistent cache
    const controller = new AbortController();
    f.ctx.clear();
    const g = f.ctx.generate(prompt, { maxTokens: 600, selfSpeculative, signal: controller.signal });
    setTimeout(() => controller.abort(), 2);
    await expect(g.result).rejects.toThrow(/abort/i);
    const after = await f.ctx.generate(prompt, { maxTokens: 100, selfSpeculative }).result;
    expect(after.tokens).toEqual(plain.tokens);
  });
});
