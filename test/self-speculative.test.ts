// Self-speculative decoding is lossless. Greedy output equals plain greedy output token
// for token (every exit layer, draft lengths 1..8, seeded prompts); speculative sampling keeps the
// full model's distribution (chi-square test); statistics add up; bad options are clear errors.
// The full sweep (100 prompts x 200 tokens) is scripts/lossless-sweep.mjs; this file runs a subset.
import { describe, expect, it } from 'vitest';
import { loadModel } from '../lib/index.js';
import { EXACT, exactSampleDistribution, expectSamplesFollow, modelFixture, randomModel, randomPrompts, SHAPES, STORIES } from './helpers.js';

const MODELS: [string, () => string][] = [
  ['stories260K', () => STORIES],
  ...Object.entries(SHAPES).map(([name, spec]) => [name, () => randomModel(spec)] as [string, () => string]),
];
const PROMPTS = Number(process.env.LAYERSKIP_SWEEP_PROMPTS ?? 6);
const TOKENS = Number(process.env.LAYERSKIP_SWEEP_TOKENS ?? 40);
const FULL_SWEEP = PROMPTS >= 50; // npm run test:lossless-sweep: every (E, d) for every prompt
const SWEEP_TIMEOUT = FULL_SWEEP ? 4 * 3600_000 : 120_000;

for (const [name, path] of MODELS) {
  describe(`lossless greedy: ${name}`, () => {
    const f = modelFixture(path, { contextSize: 512, threads: 1, ...EXACT });

    it(
      `identical tokens for every exit layer and draft lengths 1..8 (${PROMPTS} prompts x ${TOKENS} tokens)`,
      async () => {
        const N = f.model.layerCount;
        const prompts = randomPrompts(PROMPTS, f.model.info.vocabularySize, 4242, 1, 10).map((p) => [1, ...p]);
        let drafted = 0;
        let accepted = 0;
        for (const [pi, prompt] of prompts.entries()) {
          const plain = await f.ctx.generate(prompt, { maxTokens: TOKENS }).result;
          for (let E = 1; E < N; E++) {
            for (let d = 1; d <= 8; d++) {
              if ((pi + E + d) % 2 === 1 && !FULL_SWEEP) continue; // the default run covers half the grid per prompt
              const spec = await f.ctx.generate(prompt, { maxTokens: TOKENS, selfSpeculative: { exitLayer: E, draftTokens: d } }).result;
              expect(spec.tokens, `E=${E} d=${d} prompt ${pi}`).toEqual(plain.tokens);
              expect(spec.stopReason).toBe(plain.stopReason);
              const s = spec.speculative!;
              expect(s.accepted + s.corrections).toBe(spec.tokens.length);
              expect(s.acceptanceRate).toBeCloseTo(s.drafted ? s.accepted / s.drafted : 0, 12);
              expect(Math.max(...s.draftLengths)).toBeLessThanOrEqual(d);
              drafted += s.drafted;
              accepted += s.accepted;
            }
          }
        }
        expect(drafted).toBeGreaterThan(0);
        // on the real model some drafts must be accepted, or the test would not exercise acceptance
        if (name === 'stories260K') expect(accepted).toBeGreaterThan(0);
        if (FULL_SWEEP)
          console.log(`[sweep] ${name}: ${prompts.length} prompts x ${TOKENS} tokens, every E and d: identical; drafted ${drafted}, accepted ${accepted}`);
      },
      SWEEP_TIMEOUT,
    );

    it('full re-run verification gives the same tokens and the same statistics', async () => {
      const N = f.model.layerCount;
      const E = N - 1;
      const prompt = [1, 5, 9, 100];
      const cached = await f.ctx.generate(prompt, { maxTokens: TOKENS, selfSpeculative: { exitLayer: E, draftTokens: 4 } }).result;
      const full = await f.ctx.generate(prompt, { maxTokens: TOKENS, selfSpeculative: { exitLayer: E, draftTokens: 4, verification: 'full' } }).result;
      expect(full.tokens).toEqual(cached.tokens);
      expect(full.speculative!.accepted).toBe(cached.speculative!.accepted);
      expect(full.speculative!.drafted).toBe(cached.speculative!.drafted);
    });

    it('adaptive drafting gives the same tokens', async () => {
      const prompt = [1, 42, 43];
      const plain = await f.ctx.generate(prompt, { maxTokens: TOKENS }).result;
      for (let E = 1; E < f.model.layerCount; E++) {
        const r = await f.ctx.generate(prompt, { maxTokens: TOKENS, selfSpeculative: { exitLayer: E, draftTokens: 8, adaptive: true } }).result;
        expect(r.tokens).toEqual(plain.tokens);
        expect(r.speculative!.accepted + r.speculative!.corrections).toBe(r.tokens.length);
      }
    });
  });
}

describe('stories260K with default context settings', () => {
  it('greedy self-speculative text equals plain greedy text', async () => {
    const model = await loadModel(STORIES);
    const ctx = await model.createContext({ threads: 1 });
    const plain = await ctx.generate('Once upon a time', { maxTokens: 200 }).result;
    for (const E of [2, 3, 4]) {
      const r = await ctx.generate('Once upon a time', { maxTokens: 200, selfSpeculative: { exitLayer: E, draftTokens: 6 } }).result;
      expect(r.text).toBe(plain.text);
    }
    // stop strings end drafting and generation at the same place
    const stop = ['Lily', 'park.'];
    const plainStop = await ctx.generate('Once upon a time', { maxTokens: 200, stop }).result;
    const specStop = await ctx.generate('Once upon a time', { maxTokens: 200, stop, selfSpeculative: { exitLayer: 4, draftTokens: 8 } }).result;
    expect(specStop.text).toBe(plainStop.text);
    expect(specStop.stopReason).toBe('stopString');
    model.dispose();
  });
});

describe('speculative sampling keeps the full model distribution', () => {
  it('the first two sampled tokens follow the plain sampling distribution (chi-square)', async () => {
    const model = await loadModel(STORIES);
    const ctx = await model.createContext({ threads: 1, ...EXACT });
    const prompt = 'Once upon a time';
    const sampling = { temperature: 1.5, topK: 8 };
    const exact = await exactSampleDistribution(ctx, model.tokenize(prompt), sampling, 2);
    await expectSamplesFollow(exact, 600, 2, async (seed) => {
      // 3 tokens: the first comes from the prompt's decode, the second is drafted and verified (with
      // maxTokens 2 no round had room to draft, and the test did not exercise the accept rule)
      const r = await ctx.generate(prompt, { ...sampling, seed, maxTokens: 3, selfSpeculative: { exitLayer: 3, draftTokens: 3 } }).result;
      expect(r.speculative!.drafted).toBeGreaterThan(0);
      return r.tokens;
    });
    model.dispose();
  });
});

describe('bad self-speculative options', () => {
  const f = modelFixture(() => STORIES, { threads: 1 });
  it.each([
    [{ exitLayer: 0 }, /exitLayer/],
    [{ exitLayer: 5 }, /exitLayer/],
    [{ exitLayer: 99 }, /exitLayer/],
    [{ exitLayer: 2.5 }, /exitLayer/],
    [{ exitLayer: 2, draftTokens: 0 }, /draftTokens/],
    [{ exitLayer: 2, draftTokens: 1e6 }, /draftTokens/],
    [{ exitLayer: 2, verification: 'maybe' }, /verification/],
  ])('%j', async (opts, msg) => {
    expect(() => f.ctx.generate('Once', { selfSpeculative: opts as never })).toThrow(msg);
    const r = await f.ctx.generate('Once', { maxTokens: 3 }).result;
    expect(r.tokens.length).toBe(3);
  });
});

describe('the KV cache after self-speculative generation', () => {
  it('continuing from the generated text reuses the cache and matches a fresh context', async () => {
    const model = await loadModel(STORIES);
    const ctx = await model.createContext({ threads: 1, contextSize: 512 });
    const fresh = await model.createContext({ threads: 1, contextSize: 512 });
    for (const spec of [
      { exitLayer: 4, draftTokens: 4 },
      { exitLayer: 3, draftTokens: 8, adaptive: true },
    ]) {
      ctx.clear();
      const prompt = model.tokenize('Once upon a time');
      const first = await ctx.generate(prompt, { maxTokens: 60, selfSpeculative: spec }).result;
      const continued = [...prompt, ...first.tokens];
      const again = await ctx.generate(continued, { maxTokens: 30, selfSpeculative: spec }).result;
      expect(again.timings.reusedPromptTokens).toBeGreaterThan(prompt.length);
      fresh.clear();
      const reference = await fresh.generate(continued, { maxTokens: 30 }).result;
      expect(again.tokens).toEqual(reference.tokens);
    }
    model.dispose();
  });
});
