// Overlapped (pipelined) self-speculative decoding: the next round is drafted in a second,
// draft-only context while this round is verified. It must stay lossless: greedy output equals
// plain greedy output (every exit layer, several draft lengths, stop strings, token and context
// limits), and sampling keeps the full model's distribution (chi-square over the first 4 tokens,
// where the 4th comes from a chain drafted ahead). The addon's pieces are checked against their
// references: a split decode against a full decode, a draft's layer-E states against a layer-range
// decode's.
import { describe, expect, it } from 'vitest';
import { DraftHead, loadModel, type Context } from '../lib/index.js';
import { SamplerRng } from '../lib/decoding/sampling.js';
import type { NativeContext } from '../lib/native/binding.js';
import { EXACT, exactSampleDistribution, expectSamplesFollow, modelFixture, randomModel, randomPrompts, SHAPES, STORIES, untilFirstToken } from './helpers.js';

const MODELS: [string, () => string][] = [
  ['stories260K', () => STORIES],
  ['gqa-untied', () => randomModel(SHAPES['gqa-untied'])],
];
const handle = (ctx: Context) => (ctx as unknown as { handle: NativeContext }).handle;

for (const [name, path] of MODELS) {
  describe(`overlapped greedy is plain greedy: ${name}`, () => {
    const f = modelFixture(path, { contextSize: 512, threads: 1, ...EXACT });

    it('every exit layer, draft lengths 1..5, seeded prompts', async () => {
      const prompts = randomPrompts(3, f.model.info.vocabularySize, 77, 1, 8).map((p) => [1, ...p]);
      let pipelined = 0;
      for (const prompt of prompts) {
        const plain = await f.ctx.generate(prompt, { maxTokens: 48 }).result;
        for (let E = 1; E < f.model.layerCount; E++) {
          for (let d = 1; d <= 5; d++) {
            const r = await f.ctx.generate(prompt, { maxTokens: 48, selfSpeculative: { exitLayer: E, draftTokens: d, overlap: true } }).result;
            expect(r.tokens, `E=${E} d=${d}`).toEqual(plain.tokens);
            expect(r.stopReason).toBe(plain.stopReason);
            const s = r.speculative!;
            expect(s.accepted + s.corrections).toBe(r.tokens.length);
            expect(Math.max(...s.draftLengths)).toBeLessThanOrEqual(d + 1);
            pipelined += s.pipelinedRounds!;
          }
        }
      }
      expect(pipelined).toBeGreaterThan(0); // chains drafted ahead were used, not only drafted
    });

    it('token limits 1..4, a small context and a prompt that fills it', async () => {
      const prompt = [1, 20, 21, 22];
      for (const maxTokens of [1, 2, 3, 4]) {
        const plain = await f.ctx.generate(prompt, { maxTokens }).result;
        const r = await f.ctx.generate(prompt, { maxTokens, selfSpeculative: { exitLayer: 2, draftTokens: 3, overlap: true } }).result;
        expect(r.tokens).toEqual(plain.tokens);
      }
      const small = await f.model.createContext({ contextSize: 24, threads: 1, ...EXACT });
      for (const p of [prompt, Array.from({ length: 22 }, (_, i) => 30 + i)]) {
        const plain = await small.generate(p, { maxTokens: 100 }).result;
        const r = await small.generate(p, { maxTokens: 100, selfSpeculative: { exitLayer: 2, draftTokens: 4, overlap: true } }).result;
        expect(r.tokens).toEqual(plain.tokens);
        expect(r.stopReason).toBe(plain.stopReason);
      }
      small.dispose();
    });
  });
}

describe('overlapped generation on stories260K', () => {
  const f = modelFixture(() => STORIES, { contextSize: 512, threads: 1 });

  it('text, stop strings and a cache that holds the prompt only afterwards', async () => {
    const plain = await f.ctx.generate('Once upon a time', { maxTokens: 150 }).result;
    const r = await f.ctx.generate('Once upon a time', { maxTokens: 150, selfSpeculative: { exitLayer: 3, draftTokens: 4, overlap: true } }).result;
    expect(r.text).toBe(plain.text);
    // the generated positions held layers [E, N) only: they must not be reused as a prefix
    const prompt = f.model.tokenize('Once upon a time');
    expect(f.ctx.state().nextPosition).toBe(prompt.length);
    const continued = [...prompt, ...r.tokens.slice(0, 40)];
    const again = await f.ctx.generate(continued, { maxTokens: 30 }).result;
    expect(again.timings.reusedPromptTokens).toBeLessThanOrEqual(prompt.length);
    const fresh = await f.model.createContext({ contextSize: 512, threads: 1 });
    expect(again.tokens).toEqual((await fresh.generate(continued, { maxTokens: 30 }).result).tokens);
    fresh.dispose();
    const stop = ['Lily', 'park.'];
    const plainStop = await f.ctx.generate('Once upon a time', { maxTokens: 200, stop }).result;
    const specStop = await f.ctx.generate('Once upon a time', { maxTokens: 200, stop, selfSpeculative: { exitLayer: 4, draftTokens: 6, overlap: true } })
      .result;
    expect(specStop.text).toBe(plainStop.text);
    expect(specStop.stopReason).toBe('stopString');
  });

  it('an abort or a dispose mid-generation rejects it; the context goes on (or is gone)', async () => {
    const expected = (await f.ctx.generate('Once upon a time', { maxTokens: 20 }).result).tokens;
    const ac = new AbortController();
    const gen = f.ctx.generate('Once upon a time', { maxTokens: 400, signal: ac.signal, selfSpeculative: { exitLayer: 3, draftTokens: 3, overlap: true } });
    await untilFirstToken(gen);
    ac.abort();
    await expect(gen.result).rejects.toMatchObject({ name: 'AbortError' });
    expect((await f.ctx.generate('Once upon a time', { maxTokens: 20, selfSpeculative: { exitLayer: 3, overlap: true } }).result).tokens).toEqual(expected);

    // aborts that land in the prompt, while the drafter reads it too, or in the first rounds
    const long = f.model.tokenize('Once upon a time, there was a little girl named Lily. '.repeat(12));
    for (const delay of [0, 1, 2, 4]) {
      const stop = new AbortController();
      const g = f.ctx.generate(long, { maxTokens: 300, signal: stop.signal, selfSpeculative: { exitLayer: 3, draftTokens: 3, overlap: true } });
      setTimeout(() => stop.abort(), delay);
      await expect(g.result).rejects.toMatchObject({ name: 'AbortError' });
      const again = await f.ctx.generate('Once upon a time', { maxTokens: 20, selfSpeculative: { exitLayer: 3, overlap: true } }).result;
      expect(again.tokens).toEqual(expected);
    }

    const other = await f.model.createContext({ contextSize: 512, threads: 1 });
    const doomed = other.generate('Once upon a time', { maxTokens: 400, selfSpeculative: { exitLayer: 3, draftTokens: 3, overlap: true } });
    await untilFirstToken(doomed);
    other.dispose();
    await expect(doomed.result).rejects.toMatchObject({ code: 'ERR_DISPOSED' });
  });

  it('a draft head drafts in the drafter context; output stays plain', async () => {
    const prompt = 'Once upon a time';
    const plain = await f.ctx.generate(prompt, { maxTokens: 60 }).result;
    const D = f.model.info.embeddingSize;
    const rng = new SamplerRng(5);
    const adapter = new Float32Array(D * D);
    for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) adapter[i * D + j] = (i === j ? 1 : 0) + (rng.next() - 0.5) * 0.2;
    const tokenIds = Int32Array.from(new Set([...plain.tokens, ...Array.from({ length: 100 }, (_, i) => 200 + i)])).sort();
    const draftHead = new DraftHead({
      exitLayer: 3,
      embeddingSize: D,
      vocabularySize: f.model.info.vocabularySize,
      baseModel: f.model.identity,
      adapter,
      bias: null,
      tokenIds,
      stats: null,
    });
    const bare = await f.ctx.generate(prompt, { maxTokens: 60, selfSpeculative: { exitLayer: 3, draftTokens: 2, overlap: true } }).result;
    const headed = await f.ctx.generate(prompt, { maxTokens: 60, selfSpeculative: { exitLayer: 3, draftTokens: 2, overlap: true, draftHead } }).result;
    expect(bare.tokens).toEqual(plain.tokens);
    expect(headed.tokens).toEqual(plain.tokens);
    // the head changed the drafts (it is installed where the drafts are made)
    expect([headed.speculative!.drafted, headed.speculative!.accepted]).not.toEqual([bare.speculative!.drafted, bare.speculative!.accepted]);
  });

  it('bad overlap options are clear errors', async () => {
    expect(() => f.ctx.generate('Once', { selfSpeculative: { exitLayer: 3, overlap: 'yes' as never } })).toThrow(TypeError);
    expect(() => f.ctx.generate('Once', { selfSpeculative: { exitLayer: 3, overlap: true, adaptive: true } })).toThrow(/overlap and adaptive/);
    expect(() => f.ctx.generate('Once', { selfSpeculative: { exitLayer: 3, overlap: true, verification: 'full' } })).toThrow(/verification 'full'/);
    const multi = await f.model.createContext({ contextSize: 256, threads: 1, sequences: 2 });
    expect(() => multi.generate('Once', { selfSpeculative: { exitLayer: 3, overlap: true } })).toThrow(/one sequence/);
    multi.dispose();
    // the default drafts and verifies in turn
    const r = await f.ctx.generate('Once', { maxTokens: 8, selfSpeculative: { exitLayer: 3 } }).result;
    expect(r.speculative!.pipelinedRounds).toBeUndefined();
  });
});

describe('the addon pieces an overlapped generation uses', () => {
  it('a split decode (layers [E, N) from layer-E states at new positions) equals a full decode', async () => {
    const model = await loadModel(randomModel(SHAPES['mqa-untied']));
    const a = await model.createContext({ contextSize: 128, threads: 1, ...EXACT });
    const b = await model.createContext({ contextSize: 128, threads: 1, ...EXACT });
    const N = model.layerCount;
    const tokens = [1, 40, 41, 42, 43, 44];
    const full = await a.decodeLayers({ tokens, outputs: 'all', logits: true });
    for (const E of [1, 3]) {
      a.clear();
      b.clear();
      // layer-E states of the first 4 tokens, then of the last 2 (two split decodes in a row)
      const h1 = (await a.decodeLayers({ tokens: tokens.slice(0, 4), layers: [0, E], outputs: 'none', returnHidden: true })).hidden!;
      const h2 = (await a.decodeLayers({ tokens: tokens.slice(4), layers: [0, E], outputs: 'none', returnHidden: true })).hidden!;
      const s1 = await b.decodeLayers({ hidden: h1, layers: [E, N], outputs: 'all', logits: true });
      const s2 = await b.decodeLayers({ hidden: h2, layers: [E, N], outputs: 'all', logits: true });
      expect([...s1.argmax, ...s2.argmax]).toEqual([...full.argmax]);
      const logits = Float32Array.from([...s1.logits!, ...s2.logits!]);
      let maxDiff = 0;
      for (let i = 0; i < logits.length; i++) maxDiff = Math.max(maxDiff, Math.abs(logits[i] - full.logits![i]));
      expect(maxDiff).toBeLessThan(1e-4);
      expect(b.state()).toMatchObject({ nextPosition: 6, verifiedPosition: 6 });
      // a split decode must continue the sequence
      await expect(b.decodeLayers({ hidden: h2, layers: [E, N], position: 3 })).rejects.toThrow(/must start at position 6/);
      // the split positions have no KV below layer E: nothing may run those layers over them
      await expect(b.decodeLayers({ tokens: [45] })).rejects.toMatchObject({ code: 'ERR_SPLIT_DECODED', message: /removeFrom\(0\)/ });
      await expect(b.decodeLayers({ tokens: [45], layers: [0, E] })).rejects.toMatchObject({ code: 'ERR_SPLIT_DECODED' });
      if (E > 1) await expect(b.decodeLayers({ hidden: h2, layers: [E - 1, N] })).rejects.toMatchObject({ code: 'ERR_SPLIT_DECODED' });
      // generate() rewinds to the cached prefix its prompt shares (none here) and decodes the rest
      a.clear();
      const reference = (await a.generate([1, 40], { maxTokens: 3 }).result).tokens;
      expect((await b.generate([1, 40], { maxTokens: 3 }).result).tokens).toEqual(reference);
    }
    b.clear();
    await b.decodeLayers({ hidden: (await a.decodeLayers({ tokens: [1, 40], layers: [0, 1], outputs: 'none', returnHidden: true })).hidden!, layers: [1, N] });
    b.removeFrom(1); // keeps position 0, which is split-decoded too
    await expect(b.decodeLayers({ tokens: [41] })).rejects.toMatchObject({ code: 'ERR_SPLIT_DECODED' });
    b.removeFrom(0);
    expect((await b.decodeLayers({ tokens: [1, 40] })).argmax.length).toBe(1); // usable again
    model.dispose();
  });

  it("a draft's returned layer-E states are the layer-range decode's; markVerified drops pending drafts", async () => {
    const model = await loadModel(STORIES);
    const a = await model.createContext({ contextSize: 128, threads: 1, ...EXACT });
    const b = await model.createContext({ contextSize: 128, threads: 1, ...EXACT });
    const prompt = model.tokenize('Once upon a time');
    await a.decodeLayers({ tokens: prompt });
    await b.decodeLayers({ tokens: prompt });
    const d = await handle(a).draft({ token: 300, layer: 3, maxTokens: 4, returnHidden: true });
    expect(d.lastDecoded).toBe(false);
    expect(d.hidden!.length).toBe(d.tokens.length * model.info.embeddingSize);
    // one token per decode, as the draft loop decodes them (a batch rounds differently)
    const feed = [300, ...Array.from(d.tokens).slice(0, -1)];
    const ref = [];
    for (const t of feed) ref.push(await b.decodeLayers({ tokens: [t], layers: [0, 3], outputs: 'all', returnHidden: true }));
    expect(ref.map((r) => r.argmax[0])).toEqual(Array.from(d.tokens));
    expect(d.hidden!).toEqual(Float32Array.from(ref.flatMap((r) => Array.from(r.hidden!))));
    const n = prompt.length;
    expect(a.state()).toMatchObject({ nextPosition: n + 4, verifiedPosition: n, draftLayer: 3 });
    handle(a).markVerified(n + 2);
    expect(a.state()).toMatchObject({ nextPosition: n + 4, verifiedPosition: n + 2, draftLayer: 3 });
    handle(a).markVerified(n + 99); // clamped to the drafts
    expect(a.state()).toMatchObject({ nextPosition: n + 4, verifiedPosition: n + 4, draftLayer: 0 });
    expect(() => handle(a).markVerified(-1)).toThrow(/non-negative integer/);
    model.dispose();
  });
});

describe('overlapped speculative sampling keeps the full model distribution', () => {
  it('the first four sampled tokens follow the plain sampling distribution (chi-square)', async () => {
    const model = await loadModel(STORIES);
    const ctx = await model.createContext({ threads: 1, ...EXACT });
    const prompt = 'Once upon a time';
    const sampling = { temperature: 1.5, topK: 3 };
    const exact = await exactSampleDistribution(ctx, model.tokenize(prompt), sampling, 4);
    // maxTokens 5 and draftTokens 1: round 1 drafts 2 tokens, and while they are verified the
    // drafter drafts round 2 from the second, which the 4th token comes from when both are accepted
    let pipelined = 0;
    await expectSamplesFollow(exact, 1000, 4, async (seed) => {
      const r = await ctx.generate(prompt, { ...sampling, seed, maxTokens: 5, selfSpeculative: { exitLayer: 3, draftTokens: 1, overlap: true } }).result;
      pipelined += r.speculative!.pipelinedRounds!;
      return r.tokens;
    });
    expect(pipelined).toBeGreaterThan(20); // about 5% of the runs: both drafts accepted
    model.dispose();
  }, 120_000);
});
