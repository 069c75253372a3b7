// Fitted draft heads: calibration raises held-out early-exit agreement on stories260K;
// greedy self-speculative output stays the plain output with a fitted head, a deliberately bad head
// (random adapter) and a tiny draft vocabulary that misses the next token; speculative sampling
// stays exact with a head and a restricted vocabulary; bad heads are clear errors.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DraftHead, fitDraftHead, loadModel, type Context, type Model } from '../lib/index.js';
import { SamplerRng } from '../lib/decoding/sampling.js';
import { EXACT, exactSampleDistribution, expectSamplesFollow, modelFixture, randomModel, randomPrompts, SHAPES, STORIES } from './helpers.js';

function randomHead(model: Model, exitLayer: number, seed: number, tokenIds: number[] | null): DraftHead {
  const D = model.info.embeddingSize;
  const rng = new SamplerRng(seed);
  return new DraftHead({
    exitLayer,
    embeddingSize: D,
    vocabularySize: model.info.vocabularySize,
    baseModel: model.identity,
    adapter: Float32Array.from({ length: D * D }, () => (rng.next() - 0.5) * 2),
    bias: Float32Array.from({ length: D }, () => rng.next() - 0.5),
    tokenIds: tokenIds ? Int32Array.from(tokenIds) : null,
    stats: null,
  });
}

describe('calibration on stories260K (self-generated text)', () => {
  let model: Model;
  let ctx: Context;
  let head: DraftHead;
  const file = join(tmpdir(), `layerskip-head-${process.pid}.gguf`);
  beforeAll(async () => {
    model = await loadModel(STORIES);
    ctx = await model.createContext({ threads: 1, contextSize: 512, ...EXACT });
  });
  afterAll(() => {
    model?.dispose();
    rmSync(file, { force: true });
  });

  it('raises held-out agreement at E = 3 over the closed form and the plain exit', async () => {
    const phases = new Set<string>();
    head = await fitDraftHead(ctx, { exitLayer: 3, selfGenerate: { positions: 8000 }, steps: 200, onProgress: (p) => phases.add(p.phase) });
    const s = head.stats!;
    expect([...phases]).toEqual(['generate', 'collect', 'ridge', 'refine']);
    expect(s.heldOutPositions).toBeGreaterThan(1000);
    expect(s.agreementBefore).toBeGreaterThan(0.1);
    expect(s.agreementRidge).toBeGreaterThan(s.agreementBefore + 0.08);
    expect(s.agreementAfter).toBeGreaterThan(s.agreementRidge + 0.05);
  }, 120_000);

  it('keeps the ridge adapter when the refinement agrees less held out', async () => {
    // a learning rate of 1 wrecks the adapter in a few AdamW steps
    const h = await fitDraftHead(ctx, { exitLayer: 3, selfGenerate: { positions: 2000 }, steps: 20, learningRate: 1 });
    const s = h.stats!;
    expect(s.agreementRefined!).toBeLessThan(s.agreementRidge);
    expect(s.refinementKept).toBe(false);
    expect(s.agreementAfter).toBe(s.agreementRidge);
    // the head holds the ridge adapter: refitting without refinement gives the same one
    const ridge = await fitDraftHead(ctx, { exitLayer: 3, selfGenerate: { positions: 2000 }, steps: 0 });
    expect(h.adapter).toEqual(ridge.adapter);
    expect(h.bias).toEqual(ridge.bias);
  }, 120_000);

  it('round-trips through its file and raises the acceptance of generation', async () => {
    head.save(file);
    const loaded = DraftHead.load(file);
    expect(loaded.adapter).toEqual(head.adapter);
    expect(loaded.bias).toEqual(head.bias);
    expect(loaded.stats).toEqual(head.stats);
    expect(loaded.baseModel).toBe(model.identity);
    const prompts = ['Once upon a time', 'The little dog', 'Lily wanted to'];
    let plainAcc = 0;
    let headAcc = 0;
    for (const p of prompts) {
      const plain = await ctx.generate(p, { maxTokens: 100 }).result;
      const a = await ctx.generate(p, { maxTokens: 100, selfSpeculative: { exitLayer: 3, draftTokens: 3 } }).result;
      const b = await ctx.generate(p, { maxTokens: 100, selfSpeculative: { exitLayer: 3, draftTokens: 3, draftHead: file } }).result;
      expect(a.tokens).toEqual(plain.tokens);
      expect(b.tokens).toEqual(plain.tokens);
      plainAcc += a.speculative!.acceptanceRate;
      headAcc += b.speculative!.acceptanceRate;
    }
    expect(headAcc).toBeGreaterThan(plainAcc * 1.5);
  });
});

const MODELS: [string, () => string][] = [
  ['stories260K', () => STORIES],
  ['gqa-untied', () => randomModel(SHAPES['gqa-untied'])],
  ['mha-tied', () => randomModel(SHAPES['mha-tied'])],
];
for (const [name, path] of MODELS) {
  describe(`lossless greedy with draft heads: ${name}`, () => {
    const f = modelFixture(path, { contextSize: 512, threads: 1, ...EXACT });

    it('a random adapter, a tiny vocabulary that misses the next token, and a vocabulary-only head: every E, d = 1, 3, 6', async () => {
      const N = f.model.layerCount;
      const V = f.model.info.vocabularySize;
      const prompts = randomPrompts(3, V, 99, 1, 8).map((p) => [1, ...p]);
      for (const prompt of prompts) {
        const plain = await f.ctx.generate(prompt, { maxTokens: 30 }).result;
        // three tokens that the plain output never produces (so every draft from them is wrong)
        const unused = [...Array(V).keys()].filter((t) => !plain.tokens.includes(t) && t > 2).slice(0, 3);
        for (let E = 1; E < N; E++) {
          const heads = [
            randomHead(f.model, E, E, null),
            randomHead(f.model, E, E + 100, unused),
            new DraftHead({
              exitLayer: E,
              embeddingSize: f.model.info.embeddingSize,
              vocabularySize: V,
              baseModel: f.model.identity,
              adapter: null,
              bias: null,
              tokenIds: Int32Array.from([...plain.tokens.slice(0, 4), 2].filter((t, i, a) => a.indexOf(t) === i)),
              stats: null,
            }),
          ];
          for (const [hi, draftHead] of heads.entries()) {
            for (const d of [1, 3, 6]) {
              const r = await f.ctx.generate(prompt, { maxTokens: 30, selfSpeculative: { exitLayer: E, draftTokens: d, draftHead } }).result;
              expect(r.tokens, `E=${E} head ${hi} d=${d}`).toEqual(plain.tokens);
              expect(r.speculative!.accepted + r.speculative!.corrections).toBe(r.tokens.length);
            }
          }
        }
      }
      // the heads really change the early exit: with the tiny vocabulary no draft can be right
      const E = N - 1;
      const prompt = prompts[0];
      const plain = await f.ctx.generate(prompt, { maxTokens: 30 }).result;
      const unused = [...Array(V).keys()].filter((t) => !plain.tokens.includes(t) && t > 2).slice(0, 3);
      const r = await f.ctx.generate(prompt, { maxTokens: 30, selfSpeculative: { exitLayer: E, draftTokens: 3, draftHead: randomHead(f.model, E, 5, unused) } })
        .result;
      expect(r.speculative!.accepted).toBe(0);
      await f.ctx.useDraftHead(randomHead(f.model, E, 5, unused));
      f.ctx.clear();
      const drafts = await f.ctx.decodeLayers({ tokens: prompt, layers: [0, E], outputs: 'all' });
      for (const t of drafts.argmax) expect(unused).toContain(t);
      await f.ctx.useDraftHead(null);
    }, 180_000);
  });
}

describe('speculative sampling with a draft head and a restricted vocabulary', () => {
  it('the first two sampled tokens follow the plain sampling distribution (chi-square)', async () => {
    const model = await loadModel(STORIES);
    const ctx = await model.createContext({ threads: 1, ...EXACT });
    const prompt = 'Once upon a time';
    const sampling = { temperature: 1.5, topK: 8 };
    const exact = await exactSampleDistribution(ctx, model.tokenize(prompt), sampling, 2);
    const likely = new Set([...exact.keys()].map((k) => Number(k.split(',')[0]))); // the possible first tokens
    // a vocabulary holding half the likely first tokens and 100 others; an identity-ish adapter
    const D = model.info.embeddingSize;
    const rng = new SamplerRng(3);
    const ids = [...[...likely].filter((_, i) => i % 2 === 0), ...Array.from({ length: 100 }, (_, i) => 200 + i)];
    const adapter = new Float32Array(D * D);
    for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) adapter[i * D + j] = (i === j ? 1 : 0) + (rng.next() - 0.5) * 0.1;
    const draftHead = new DraftHead({
      exitLayer: 3,
      embeddingSize: D,
      vocabularySize: model.info.vocabularySize,
      baseModel: model.identity,
      adapter,
      bias: null,
      tokenIds: Int32Array.from(new Set(ids)).sort(),
      stats: null,
    });
    await expectSamplesFollow(exact, 600, 2, async (seed) => {
      // 3 tokens: the first comes from the prompt's decode, the second is drafted and verified
      const r = await ctx.generate(prompt, { ...sampling, seed, maxTokens: 3, selfSpeculative: { exitLayer: 3, draftTokens: 3, draftHead } }).result;
      expect(r.speculative!.drafted).toBeGreaterThan(0);
      return r.tokens;
    });
    model.dispose();
  }, 120_000);
});

describe('bad draft heads are clear errors and leave the context usable', () => {
  let model: Model;
  let ctx: Context;
  let good: DraftHead;
  const file = join(tmpdir(), `layerskip-bad-head-${process.pid}.gguf`);
  beforeAll(async () => {
    model = await loadModel(STORIES);
    ctx = await model.createContext({ threads: 1 });
    good = randomHead(model, 3, 1, null);
  });
  afterAll(() => {
    model?.dispose();
    rmSync(file, { force: true });
  });
  const usable = async () => {
    const r = await ctx.generate('Once', { maxTokens: 3, selfSpeculative: { exitLayer: 3 } }).result;
    expect(r.tokens.length).toBe(3);
  };

  it('a head for another model, exit layer or vocabulary size', async () => {
    const other = new DraftHead({ ...good, baseModel: 'another-model' });
    expect(() => ctx.generate('Once', { selfSpeculative: { exitLayer: 3, draftHead: other } })).toThrow(/another model/);
    expect(() => ctx.generate('Once', { selfSpeculative: { exitLayer: 2, draftHead: good } })).toThrow(/exit layer 3, not 2/);
    const vocab = new DraftHead({ ...good, vocabularySize: 1000 });
    expect(() => ctx.generate('Once', { selfSpeculative: { exitLayer: 3, draftHead: vocab } })).toThrow(/1000 tokens/);
    const shape = await loadModel(randomModel(SHAPES['mha-tied']));
    const foreign = randomHead(shape, 3, 2, null);
    shape.dispose();
    await expect(ctx.useDraftHead(foreign)).rejects.toThrow(/embedding size/);
    await usable();
  });

  it('a truncated or foreign file', async () => {
    good.save(file);
    const bytes = readFileSync(file);
    writeFileSync(file, bytes.subarray(0, bytes.length - 100));
    expect(() => ctx.generate('Once', { selfSpeculative: { exitLayer: 3, draftHead: file } })).toThrow(/draft head/);
    expect(() => ctx.generate('Once', { selfSpeculative: { exitLayer: 3, draftHead: STORIES } })).toThrow(/not a layerskip draft head/);
    expect(() => ctx.generate('Once', { selfSpeculative: { exitLayer: 3, draftHead: '/nonexistent/head.gguf' } })).toThrow(/draft head/);
    expect(existsSync(file)).toBe(true);
    await usable();
  });

  it('bad calibration options, and an aborted calibration, leave the context as it was', async () => {
    await expect(fitDraftHead(ctx, { exitLayer: 0 })).rejects.toThrow(/exitLayer/);
    await expect(fitDraftHead(ctx, { exitLayer: 5 })).rejects.toThrow(/exitLayer/);
    await expect(fitDraftHead(ctx, { exitLayer: 2, text: '' })).rejects.toThrow(/text/);
    await expect(fitDraftHead(ctx, { exitLayer: 2, vocabulary: { coverage: 2 } })).rejects.toThrow(/coverage/);
    await ctx.useDraftHead(good);
    const ac = new AbortController();
    const fit = fitDraftHead(ctx, {
      exitLayer: 3,
      selfGenerate: { positions: 3000 },
      signal: ac.signal,
      onProgress: (p) => p.phase === 'collect' && p.done === 3 && ac.abort(),
    });
    await expect(fit).rejects.toThrow(/abort/i);
    expect(ctx.draftHead).toBe(good);
    expect(ctx.state().nextPosition).toBe(0);
    await ctx.useDraftHead(null);
    await usable();
  });

  it('an empty vocabulary, token ids out of range or repeated, a wrong adapter size', async () => {
    const parts = { ...good };
    expect(() => new DraftHead({ ...parts, tokenIds: new Int32Array(0) })).toThrow(/empty/);
    expect(() => new DraftHead({ ...parts, tokenIds: Int32Array.of(1, 512) })).toThrow(/outside the vocabulary/);
    expect(() => new DraftHead({ ...parts, tokenIds: Int32Array.of(-1) })).toThrow(/outside the vocabulary/);
    expect(() => new DraftHead({ ...parts, tokenIds: Int32Array.of(4, 4) })).toThrow(/twice/);
    expect(() => new DraftHead({ ...parts, adapter: new Float32Array(10) })).toThrow(/adapter/);
    expect(() => new DraftHead({ ...parts, bias: Float32Array.of(NaN, ...new Float32Array(63)) })).toThrow(/non-finite/);
    // the addon checks too, whatever reaches it
    const h = (ctx as unknown as { handle: { setDraftHead(o: object): Promise<void> } }).handle;
    expect(() => h.setDraftHead({ tokenIds: new Int32Array(0) })).toThrow(/empty/);
    expect(() => h.setDraftHead({ tokenIds: Int32Array.of(9999), rows: new Uint8Array(256), rowType: 0 })).toThrow(/outside the vocabulary/);
    expect(() => h.setDraftHead({ tokenIds: Int32Array.of(5), rows: new Uint8Array(7), rowType: 0 })).toThrow(/bytes/);
    await expect(h.setDraftHead({ tokenIds: Int32Array.of(5), rows: new Uint8Array(128), rowType: 1 })).rejects.toThrow(/output weight/);
    await usable();
  });
});
