// The layer-range patch (0002, 0003). Early exit at E = N equals a full decode; drafting with layers
// [0, E) then verifying with [E, N) from the cached hidden states gives the full decode's logits
// and the same KV cache; rollback is exact; alternating ranges never reuse the wrong graph.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Context, type Model } from '../lib/index.js';
import { sliceModel } from '../lib/gguf/index.js';
import { cachedModel, EXACT, modelFixture, randomModel, randomPrompts, relErr, SHAPES, STORIES } from './helpers.js';

const MODELS: [string, () => string][] = [
  ['stories260K', () => STORIES],
  ...Object.entries(SHAPES).map(([name, spec]) => [name, () => randomModel(spec)] as [string, () => string]),
];
const PROMPTS = 50;

for (const [name, path] of MODELS) {
  describe(name, () => {
    let model: Model;
    let ref: Context; // plain full decoding
    let ctx: Context; // layer-range decoding
    let N: number;
    beforeAll(async () => {
      model = await loadModel(path());
      N = model.layerCount;
      ref = await model.createContext({ contextSize: 128, threads: 1, ...EXACT });
      ctx = await model.createContext({ contextSize: 128, threads: 1, ...EXACT });
    });
    afterAll(() => model?.dispose());

    it('early exit at E equals the full decode of the model cut to its first E layers (every E)', async () => {
      // an independent reference: sliceModel writes the first E blocks with the same embeddings,
      // final norm and LM head, and plain llama.cpp decodes that file
      const prompts = randomPrompts(5, model.info.vocabularySize, 3);
      for (let E = 1; E < N; E++) {
        const cut = cachedModel(`slice-${name}-E${E}`, [E], (tmp) => sliceModel(path(), tmp, E));
        const sliced = await loadModel(cut);
        try {
          const sctx = await sliced.createContext({ contextSize: 128, threads: 1, ...EXACT });
          for (const prompt of prompts) {
            ctx.clear();
            const want = await sctx.decodeLayers({ tokens: prompt, outputs: 'all', logits: true });
            sctx.clear();
            const exit = await ctx.decodeLayers({ tokens: prompt, layers: [0, E], outputs: 'all', logits: true });
            expect(relErr(exit.logits!, want.logits!), `E=${E}`).toBeLessThan(1e-5);
          }
        } finally {
          sliced.dispose();
        }
      }
      // and [0, N) is the full decode
      for (const prompt of prompts) {
        ref.clear();
        ctx.clear();
        const full = await ref.decodeLayers({ tokens: prompt, outputs: 'all', logits: true });
        const all = await ctx.decodeLayers({ tokens: prompt, layers: [0, N], outputs: 'all', logits: true });
        expect(relErr(all.logits!, full.logits!)).toBeLessThan(1e-5);
      }
    });

    it(`draft [0,E) token by token, verify [E,N) from cached hidden states: same logits and KV (every E, ${PROMPTS} prompts)`, async () => {
      const nVocab = model.info.vocabularySize;
      const prompts = randomPrompts(PROMPTS, nVocab, 1000 + N, 1, 12);
      const nextTokens = randomPrompts(PROMPTS, nVocab, 2000 + N, 1, 1).map((p) => p[0]);
      let worst = 0;
      let worstNext = 0;
      for (let i = 0; i < prompts.length; i++) {
        const prompt = prompts[i];
        ref.clear();
        const full = await ref.decodeLayers({ tokens: prompt, outputs: 'all', logits: true });
        const fullNext = await ref.decodeLayers({ tokens: [nextTokens[i]], logits: true });
        for (let E = 1; E < N; E++) {
          ctx.clear();
          for (const t of prompt) await ctx.decodeLayers({ tokens: [t], layers: [0, E], outputs: 'none' });
          expect(ctx.state()).toMatchObject({ nextPosition: prompt.length, verifiedPosition: 0, draftLayer: E });
          const ver = await ctx.decodeLayers({ layers: [E, N], outputs: 'all', logits: true });
          expect(ctx.state()).toMatchObject({ nextPosition: prompt.length, verifiedPosition: prompt.length, draftLayer: 0 });
          worst = Math.max(worst, relErr(ver.logits!, full.logits!));
          // the KV cache now behaves like one filled by plain decoding
          const next = await ctx.decodeLayers({ tokens: [nextTokens[i]], logits: true });
          worstNext = Math.max(worstNext, relErr(next.logits!, fullNext.logits!));
        }
      }
      expect(worst).toBeLessThan(1e-4);
      expect(worstNext).toBeLessThan(1e-4);
    });

    it('after removing rejected drafts, decoding continues as if they were never drafted', async () => {
      const nVocab = model.info.vocabularySize;
      const prompts = randomPrompts(12, nVocab, 77, 2, 8);
      const drafts = randomPrompts(12, nVocab, 78, 2, 6);
      for (let i = 0; i < prompts.length; i++) {
        const E = 1 + (i % (N - 1));
        const keep = i % (drafts[i].length + 1); // how many drafts survive
        ctx.clear();
        await ctx.decodeLayers({ tokens: prompts[i] });
        for (const t of drafts[i]) await ctx.decodeLayers({ tokens: [t], layers: [0, E], outputs: 'none' });
        const p = prompts[i].length;
        // verify some of the drafts (as after a partial acceptance), then roll back the rest
        if (keep > 0) await ctx.decodeLayers({ layers: [E, N], count: keep });
        ctx.removeFrom(p + keep);
        const probe = 3 + ((i * 7) % (nVocab - 3));
        const after = await ctx.decodeLayers({ tokens: [probe], logits: true });
        ref.clear();
        const fresh = await ref.decodeLayers({ tokens: [...prompts[i], ...drafts[i].slice(0, keep), probe], logits: true });
        expect(relErr(after.logits!, fresh.logits!)).toBeLessThan(1e-4);
      }
    });

    it('alternating layer ranges never reuse a graph built for another range', async () => {
      const E = Math.max(1, N >> 1);
      const [prompt] = randomPrompts(1, model.info.vocabularySize, 5, 6, 6);
      // reference early-exit logits from a context that only drafts
      ctx.clear();
      const exitOnly: Float32Array[] = [];
      for (const t of prompt) exitOnly.push((await ctx.decodeLayers({ tokens: [t], layers: [0, E], logits: true })).logits!);
      ref.clear();
      const fullOnly: Float32Array[] = [];
      for (const t of prompt) fullOnly.push((await ref.decodeLayers({ tokens: [t], logits: true })).logits!);
      // one context that alternates: draft, verify, full, draft, ... with one-token batches
      ctx.clear();
      for (let i = 0; i < prompt.length; i++) {
        if (i % 2 === 0) {
          const d = await ctx.decodeLayers({ tokens: [prompt[i]], layers: [0, E], logits: true });
          expect(relErr(d.logits!, exitOnly[i])).toBeLessThan(1e-5);
          const v = await ctx.decodeLayers({ layers: [E, N], logits: true });
          expect(relErr(v.logits!, fullOnly[i])).toBeLessThan(1e-4);
        } else {
          const f = await ctx.decodeLayers({ tokens: [prompt[i]], logits: true });
          expect(relErr(f.logits!, fullOnly[i])).toBeLessThan(1e-4);
        }
      }
      // and early exit really differs from the full model here (so the checks above can fail)
      expect(relErr(exitOnly[0], fullOnly[0])).toBeGreaterThan(1e-3);
    });

    it('verifies explicit hidden states returned by a draft', async () => {
      const E = 1;
      const [prompt] = randomPrompts(1, model.info.vocabularySize, 9, 5, 5);
      ref.clear();
      const full = await ref.decodeLayers({ tokens: prompt, outputs: 'all', logits: true });
      ctx.clear();
      const d = await ctx.decodeLayers({ tokens: prompt, layers: [0, E], outputs: 'none', returnHidden: true });
      expect(d.hidden!.length).toBe(prompt.length * model.info.embeddingSize);
      const v = await ctx.decodeLayers({ layers: [E, N], hidden: d.hidden, outputs: 'all', logits: true });
      expect(relErr(v.logits!, full.logits!)).toBeLessThan(1e-4);
    });
  });
}

describe('layer-range errors leave the context usable', () => {
  const f = modelFixture(() => STORIES, { contextSize: 64, threads: 1 });

  async function stillWorks() {
    f.ctx.clear();
    const r = await f.ctx.decodeLayers({ tokens: [1, 400, 500] });
    expect(r.argmax.length).toBe(1);
  }

  it.each([
    ['a range past the last layer', { tokens: [1], layers: [0, 6] }, /layer range/],
    ['a negative start', { tokens: [1], layers: [-1, 3] }, /layer range/],
    ['start >= end', { tokens: [1], layers: [3, 3] }, /layer range/],
    ['a middle range', { hidden: new Float32Array(64), layers: [1, 3] }, /start at 0|end at the last/],
    ['tokens for a verify range', { tokens: [1], layers: [2, 5] }, /hidden states, not tokens/],
  ] as const)('%s', async (_name, opts, msg) => {
    f.ctx.clear();
    await expect(f.ctx.decodeLayers(opts as never)).rejects.toThrow(msg);
    await stillWorks();
  });

  it('a verify call without drafts at that layer', async () => {
    f.ctx.clear();
    await f.ctx.decodeLayers({ tokens: [1, 2, 3] });
    await expect(f.ctx.decodeLayers({ layers: [2, 5] })).rejects.toThrow(/no early-exit drafts/);
    await f.ctx.decodeLayers({ tokens: [7], layers: [0, 3] });
    await expect(f.ctx.decodeLayers({ layers: [2, 5] })).rejects.toThrow(/exit at layer 3/);
    await stillWorks();
  });

  it('hidden states of the wrong width or count', async () => {
    f.ctx.clear();
    await f.ctx.decodeLayers({ tokens: [1, 2], layers: [0, 2] });
    await expect(f.ctx.decodeLayers({ layers: [2, 5], hidden: new Float32Array(63) })).rejects.toThrow(/multiple of the embedding size/);
    await expect(f.ctx.decodeLayers({ layers: [2, 5], hidden: new Float32Array(64 * 3) })).rejects.toThrow(/no early-layer KV/);
    await expect(f.ctx.decodeLayers({ layers: [2, 5], count: 3 })).rejects.toThrow(/count/);
    await stillWorks();
  });

  it('a verify call that skips positions, and a full decode over pending drafts', async () => {
    f.ctx.clear();
    await f.ctx.decodeLayers({ tokens: [1, 2, 3], layers: [0, 2] });
    await expect(f.ctx.decodeLayers({ layers: [2, 5], position: 1 })).rejects.toThrow(/must start at position 0/);
    await expect(f.ctx.decodeLayers({ tokens: [4] })).rejects.toThrow(/hold early-exit drafts/);
    await expect(f.ctx.decodeLayers({ tokens: [4], layers: [0, 3] })).rejects.toThrow(/exit layer 2/);
    await f.ctx.decodeLayers({ layers: [2, 5], count: 1 });
    expect(f.ctx.state()).toMatchObject({ verifiedPosition: 1, nextPosition: 3 });
    await stillWorks();
  });
});
