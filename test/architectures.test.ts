// Layer ranges beyond LLaMA (patches 0012-0014): for every converted architecture, on a random model
// with GQA and a sliding window of 8 (prompts of 280 tokens, far past the window): early exit equals
// the model cut to E layers bit for bit; verification from cached layer-E states equals plain
// decoding, also after the 256-cell windowed cache has wrapped; greedy self-speculative output equals
// plain greedy output with and without a fitted draft head; speculative sampling keeps the full
// model's distribution. A windowed cache that lost a draft's window fails the verification.
// Refused architectures give a clear error and still decode plainly.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  architectureSupport,
  fitDraftHead,
  LAYER_RANGE_ARCHITECTURES,
  loadModel,
  UnsupportedArchitectureError,
  type Context,
  type Model,
} from '../lib/index.js';
import { getGgufMetadata, RANDOM_ARCHS, readGgufInfo, type RandomArch } from '../lib/gguf/index.js';
import { archModel, archSpec, slicedArchModel } from './arch-models.js';
import { EXACT, exactSampleDistribution, expectSamplesFollow, randomPrompts, relErr } from './helpers.js';

const CONTEXT = { contextSize: 1024, batchSize: 32, threads: 1, ...EXACT } as const;
// slidingWindowCache 'window' with batchSize 32 makes the sliding-window cache 256 cells
// (PAD(n_swa + n_ubatch, 256)) instead of the whole context, so a prompt of 280 tokens wraps it
const WINDOWED = { ...CONTEXT, slidingWindowCache: 'window' } as const;
const LONG = 280;
const TOKENS = 24;

/** Decodes `tokens` with all layers in batch-sized chunks (decodeLayers takes at most one batch). */
async function prefill(ctx: Context, tokens: number[]): Promise<void> {
  for (let i = 0; i < tokens.length; i += CONTEXT.batchSize) {
    await ctx.decodeLayers({ tokens: tokens.slice(i, i + CONTEXT.batchSize), outputs: 'none' });
  }
}

it('every converted architecture has a random-model writer, so every one is tested here', () => {
  for (const arch of LAYER_RANGE_ARCHITECTURES) expect(RANDOM_ARCHS).toContain(arch);
});

for (const arch of LAYER_RANGE_ARCHITECTURES as RandomArch[]) {
  describe(`layer ranges: ${arch}`, () => {
    const spec = archSpec(arch);
    let model: Model;
    let ctx: Context;
    let N: number;
    let V: number;
    let longPrompt: number[];
    beforeAll(async () => {
      model = await loadModel(archModel(spec));
      ctx = await model.createContext(CONTEXT);
      N = model.layerCount;
      V = model.info.vocabularySize;
      longPrompt = [1, ...randomPrompts(1, V, 97, LONG, LONG)[0]];
    });
    afterAll(() => model?.dispose());

    it('early exit at E equals the full decode of the model cut to E layers, bit for bit', async () => {
      const prompt = [1, ...randomPrompts(1, V, 5, 30, 30)[0]];
      for (let E = 1; E < N; E++) {
        const cut = await loadModel(slicedArchModel(spec, E));
        try {
          const cutCtx = await cut.createContext(CONTEXT);
          const want = await cutCtx.decodeLayers({ tokens: prompt, outputs: 'all', logits: true });
          ctx.clear();
          const got = await ctx.decodeLayers({ tokens: prompt, layers: [0, E], outputs: 'all', logits: true });
          expect(got.logits!.length).toBe(want.logits!.length);
          expect(Buffer.from(got.logits!.buffer).equals(Buffer.from(want.logits!.buffer)), `E=${E}`).toBe(true);
        } finally {
          cut.dispose();
        }
      }
    });

    it('verification from cached layer-E states equals plain decoding after the sliding-window cache wraps', async () => {
      const ref = await model.createContext(WINDOWED);
      const win = await model.createContext(WINDOWED);
      const drafts = randomPrompts(1, V, 98, 6, 6)[0];
      const probe = [7];
      await prefill(ref, longPrompt);
      const full = await ref.decodeLayers({ tokens: drafts, outputs: 'all', logits: true });
      const fullNext = await ref.decodeLayers({ tokens: probe, logits: true });
      for (let E = 1; E < N; E++) {
        win.clear();
        await prefill(win, longPrompt);
        for (const t of drafts) await win.decodeLayers({ tokens: [t], layers: [0, E], outputs: 'none' });
        const ver = await win.decodeLayers({ layers: [E, N], outputs: 'all', logits: true });
        expect(relErr(ver.logits!, full.logits!), `E=${E}`).toBeLessThan(1e-4);
        // the KV cache now behaves like one filled by plain decoding
        const next = await win.decodeLayers({ tokens: probe, logits: true });
        expect(relErr(next.logits!, fullNext.logits!), `E=${E} next`).toBeLessThan(1e-4);
      }
    });

    it('greedy self-speculative output equals plain greedy output (every E, draft lengths 1, 3, 6)', async () => {
      const prompts = [longPrompt, [1, ...randomPrompts(1, V, 99, 5, 5)[0]]];
      let drafted = 0;
      for (const prompt of prompts) {
        const plain = await ctx.generate(prompt, { maxTokens: TOKENS }).result;
        for (let E = 1; E < N; E++) {
          for (const d of [1, 3, 6]) {
            const r = await ctx.generate(prompt, { maxTokens: TOKENS, selfSpeculative: { exitLayer: E, draftTokens: d } }).result;
            expect(r.tokens, `E=${E} d=${d} prompt of ${prompt.length}`).toEqual(plain.tokens);
            drafted += r.speculative!.drafted;
          }
        }
      }
      expect(drafted).toBeGreaterThan(0);
    });

    it('a fitted draft head raises held-out agreement, and greedy output stays identical with it (every E)', async () => {
      const fitCtx = await model.createContext({ contextSize: 1024, threads: 1, ...EXACT });
      for (let E = 1; E < N; E++) {
        const head = await fitDraftHead(fitCtx, { exitLayer: E, selfGenerate: { positions: 1500 }, steps: 40 });
        const s = head.stats!;
        // E = 2 sits just below the damped late layers: a linear map from there has most to learn
        if (E === 2) expect(s.agreementAfter).toBeGreaterThan(s.agreementBefore);
        for (const prompt of [longPrompt, [1, 40, 41, 42]]) {
          const plain = await ctx.generate(prompt, { maxTokens: TOKENS }).result;
          for (const d of [1, 3, 6]) {
            const r = await ctx.generate(prompt, { maxTokens: TOKENS, selfSpeculative: { exitLayer: E, draftTokens: d, draftHead: head } }).result;
            expect(r.tokens, `E=${E} d=${d}`).toEqual(plain.tokens);
          }
        }
      }
    }, 180_000);

    it('speculative sampling keeps the full model distribution (chi-square)', async () => {
      const prompt = [1, 10, 11, 12];
      const sampling = { temperature: 1.5, topK: 6 };
      const exact = await exactSampleDistribution(ctx, prompt, sampling, 2);
      await expectSamplesFollow(exact, 500, 2, async (seed) => {
        const r = await ctx.generate(prompt, { ...sampling, seed, maxTokens: 3, selfSpeculative: { exitLayer: N - 2, draftTokens: 3 } }).result;
        expect(r.speculative!.drafted).toBeGreaterThan(0);
        return r.tokens;
      });
    }, 60_000);
  });
}

describe('a family tokenizer', () => {
  it('qwen2 with the real Qwen2 vocabulary (ggml-vocab-qwen2.gguf): text prompts, greedy self-speculative equals plain', async () => {
    const vocabFile = new URL('../deps/llama.cpp/models/ggml-vocab-qwen2.gguf', import.meta.url).pathname;
    const tokens = getGgufMetadata(readGgufInfo(vocabFile), 'tokenizer.ggml.tokens') as readonly string[];
    const spec = { ...archSpec('qwen2'), nEmbd: 32, nHead: 4, nHeadKv: 2, nFf: 64, nVocab: tokens.length, vocabFrom: vocabFile };
    const model = await loadModel(archModel(spec));
    try {
      expect(model.info.vocabularySize).toBe(tokens.length);
      const ctx = await model.createContext(CONTEXT);
      const prompt = 'The quick brown fox jumps over the lazy dog. 你好，世界！';
      expect(model.detokenize(model.tokenize(prompt, { addBos: false }))).toBe(prompt);
      const plain = await ctx.generate(prompt, { maxTokens: 16 }).result;
      for (const d of [1, 3]) {
        const r = await ctx.generate(prompt, { maxTokens: 16, selfSpeculative: { exitLayer: 2, draftTokens: d } }).result;
        expect(r.tokens).toEqual(plain.tokens);
      }
    } finally {
      model.dispose();
    }
  }, 60_000);
});

describe("a windowed sliding-window cache that no longer holds a draft's window", () => {
  it('fails the verification (never a wrong answer) and leaves the context usable', async () => {
    // 10 prompt tokens and 252 drafts fill the 256-cell cache past its start: it then holds
    // positions [6, 261], so position 10 is there but its window [3, 10] is not
    const model = await loadModel(archModel(archSpec('gemma3')));
    try {
      const ctx = await model.createContext(WINDOWED);
      expect(() => ctx.generate([1, 2, 3], { selfSpeculative: { exitLayer: 2 } })).toThrow(/slidingWindowCache: 'full'/);
      const prompt = [1, ...randomPrompts(1, model.info.vocabularySize, 96, 9, 9)[0]];
      await ctx.decodeLayers({ tokens: prompt, outputs: 'none' });
      for (let i = 0; i < 252; i++) await ctx.decodeLayers({ tokens: [5 + (i % 50)], layers: [0, 2], outputs: 'none' });
      await expect(ctx.decodeLayers({ layers: [2, model.layerCount], count: 1, logits: true })).rejects.toThrow(/no longer holds the window of position 10/);
      ctx.clear();
      const ref = await model.createContext(WINDOWED);
      const want = await ref.decodeLayers({ tokens: prompt, logits: true });
      const got = await ctx.decodeLayers({ tokens: prompt, logits: true });
      expect(relErr(got.logits!, want.logits!)).toBeLessThan(1e-6);
    } finally {
      model.dispose();
    }
  });
});

describe('refused architectures', () => {
  it('a hybrid model (lfm2) refuses layer ranges by name and reason, and still decodes plainly', async () => {
    const model = await loadModel(archModel(archSpec('lfm2')));
    try {
      const ctx = await model.createContext(CONTEXT);
      const plain = await ctx.generate([1, 5, 6, 7], { maxTokens: 8 }).result;
      expect(plain.tokens.length).toBe(8);
      // options are checked when generate() is called, as every other option is
      const speculative = () => ctx.generate([1, 5, 6, 7], { maxTokens: 8, selfSpeculative: { exitLayer: 1 } });
      expect(speculative).toThrow(UnsupportedArchitectureError);
      expect(speculative).toThrow(/selfSpeculative: .*lfm2 is a recurrent or hybrid model/);
      await expect(ctx.decodeLayers({ tokens: [1, 5], layers: [0, 1] })).rejects.toThrow(/decodeLayers: layer-range decoding is not available.*lfm2/);
      // the refusal lost nothing: plain decoding goes on
      const again = await ctx.generate([1, 5, 6, 7], { maxTokens: 8 }).result;
      expect(again.tokens).toEqual(plain.tokens);
    } finally {
      model.dispose();
    }
  });
});

describe("the README's architecture table", () => {
  it('says for each named architecture what architectureSupport says', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## Architectures'), readme.indexOf('## Concurrent sequences'));
    const rows = section.split('\n').filter((l) => l.startsWith('| `') && /\| (yes|no) \|/.test(l));
    const seen = new Set<string>();
    for (const row of rows) {
      const cells = row
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim());
      const flags = cells.slice(2).map((c) => c === 'yes');
      for (const [, arch] of cells[0].matchAll(/`([^`*]+)`/g)) {
        const s = architectureSupport(arch);
        expect(flags, arch).toEqual([s.plain, s.earlyExit, s.selfSpeculative, s.draftHead, s.training]);
        seen.add(arch);
      }
    }
    for (const arch of LAYER_RANGE_ARCHITECTURES) expect(seen).toContain(arch);
  });
});
