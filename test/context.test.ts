// Model and Context: loading, tokenizing, decoding and generating, checked against independent references
// (node-llama-cpp's greedy output on the same model; batch vs token-by-token decoding).
import { describe, expect, it } from 'vitest';
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { loadModel, quantizeModel, systemInfo, type Context } from '../lib/index.js';
import { NgramFilter } from '../lib/decoding/ngram-filter.js';
import { EXACT, F16_SHAPES, modelFixture, randomModel, randomPrompts, relErr, SHAPES, STORIES } from './helpers.js';

describe('stories260K', () => {
  const f = modelFixture(() => STORIES, { contextSize: 512, threads: 1 });

  it('reads the metadata', () => {
    expect(f.model.info).toMatchObject({
      architecture: 'llama',
      layerCount: 5,
      embeddingSize: 64,
      headCount: 8,
      headCountKv: 4,
      vocabularySize: 512,
      trainContextLength: 2048,
    });
    expect(f.model.info.specialTokens).toMatchObject({ bos: 1, eos: 2 });
  });

  it('tokenizes and detokenizes', () => {
    const t = f.model.tokenize('Once upon a time');
    expect(t[0]).toBe(1);
    expect(f.model.detokenize(t.slice(1)).trim()).toBe('Once upon a time');
  });

  it('greedy output equals node-llama-cpp 3.21.1 on the same model and prompt (100 tokens)', async () => {
    const ours = await f.ctx.generate('Once upon a time', { maxTokens: 100 }).result;
    const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
    const theirModel = await llama.loadModel({ modelPath: STORIES });
    const theirCtx = await theirModel.createContext({ contextSize: 512, threads: 1, sequences: 1 });
    const theirs: number[] = [];
    const prompt = [theirModel.tokens.bos!, ...theirModel.tokenize('Once upon a time')];
    expect(prompt).toEqual(f.model.tokenize('Once upon a time'));
    for await (const tok of theirCtx.getSequence().evaluate(prompt, { temperature: 0 })) {
      if (tok === theirModel.tokens.eos) break;
      theirs.push(tok);
      if (theirs.length >= 100) break;
    }
    await theirCtx.dispose();
    await theirModel.dispose();
    expect(ours.tokens.length).toBe(100);
    expect(ours.tokens).toEqual(theirs);
    expect(ours.text.startsWith(', there was a little girl named Lily. She loved to play outside in the park.')).toBe(true);
  });

  it('streams the same text as the final result', async () => {
    const gen = f.ctx.generate('Once upon a time', { maxTokens: 40 });
    let streamed = '';
    const tokens: number[] = [];
    for await (const c of gen) {
      streamed += c.text;
      tokens.push(...c.tokens);
    }
    const r = await gen.result;
    expect(streamed).toBe(r.text);
    expect(tokens).toEqual(r.tokens);
    expect(r.timings.generatedTokens).toBe(40);
    expect(r.timings.tokensPerSecond).toBeGreaterThan(0);
  });

  it('reuses the cached prompt prefix and still gives the same output', async () => {
    const a = await f.ctx.generate('Once upon a time', { maxTokens: 20 }).result;
    const b = await f.ctx.generate('Once upon a time', { maxTokens: 20 }).result;
    expect(b.timings.reusedPromptTokens).toBeGreaterThan(0);
    expect(b.tokens).toEqual(a.tokens);
  });

  it("a plain run (decodeRun) produces generate's tokens and times its first step apart", async () => {
    const want = (await f.ctx.generate('Once upon a time', { maxTokens: 9 }).result).tokens;
    f.ctx.clear();
    const h = f.ctx.handle;
    const first = await h.decode({ tokens: Int32Array.from(f.model.tokenize('Once upon a time')) });
    // the prompt's batch was a decode of another shape: the run's first step builds the one-token graph
    const r = await h.decodeRun!({ token: first.argmax[0], maxTokens: 8 });
    expect([first.argmax[0], ...r.tokens]).toEqual(want);
    expect(r.firstStepMs).toBeGreaterThan(0);
    expect(r.firstStepMs).toBeLessThan(r.nativeMs);
    f.ctx.clear();
  });

  it('a plain run ends after the first token whose n-gram the repeat filter marks, with the same hash as TypeScript', async () => {
    const prompt = Int32Array.from(f.model.tokenize('Once upon a time'));
    const h = f.ctx.handle;
    const run = async (repeat?: { filter: Uint8Array; n: number; history: Int32Array }) => {
      f.ctx.clear();
      const first = await h.decode({ tokens: prompt });
      const r = await h.decodeRun!({ token: first.argmax[0], maxTokens: 80, repeat });
      return { tokens: [first.argmax[0], ...r.tokens], repeat: r.repeat };
    };
    const plain = await run();
    expect(plain.repeat).toBe(false);
    const all = [...prompt, ...plain.tokens]; // the context, then what the run produced
    // a filter that marks one trigram of the reference output, produced 12 tokens into the run
    const at = prompt.length + 12; // index in `all` of the token that completes the trigram
    const filter = new NgramFilter(512, all.slice(at - 2, at + 1));
    filter.setLength(3);
    const history = Int32Array.from(all.slice(prompt.length - 1, prompt.length + 1)); // the 2 tokens before the run's first
    const stopped = await run({ filter: filter.bits, n: 3, history });
    expect(stopped.repeat).toBe(true);
    expect(stopped.tokens).toEqual(plain.tokens.slice(0, 13)); // through the marked trigram's last token, and no further
    // an empty filter changes nothing until the run repeats a trigram of its own (here 78 tokens in)
    const empty = await run({ filter: new Uint8Array(512), n: 3, history });
    const trigrams = new Set<string>();
    let repeatAt = -1;
    for (let i = prompt.length + 1; i < all.length && repeatAt < 0; i++) {
      const key = all.slice(i - 2, i + 1).join();
      if (trigrams.has(key)) repeatAt = i;
      trigrams.add(key);
    }
    expect(repeatAt).toBeGreaterThan(prompt.length + 13);
    expect(empty.repeat).toBe(true);
    expect(empty.tokens).toEqual(plain.tokens.slice(0, repeatAt - prompt.length + 1));
    f.ctx.clear();
    const first = await h.decode({ tokens: prompt });
    const bad = (repeat: unknown) => h.decodeRun!({ token: first.argmax[0], maxTokens: 4, repeat } as never);
    expect(() => bad({ filter: new Uint8Array(100), n: 3, history })).toThrow(/power of two/);
    expect(() => bad({ filter: filter.bits, n: 3, history: Int32Array.of(1) })).toThrow(/n - 1 tokens/);
    expect(() => bad({ filter: filter.bits, n: 1, history: new Int32Array(0) })).toThrow(/repeat\.n|n must/);
    expect(() => bad({ filter: [1, 2], n: 3, history })).toThrow(/Uint8Array/);
    expect(() => bad(5)).toThrow(/repeat must be an object/);
    f.ctx.clear();
  });

  it('stops at a stop string and at EOS', async () => {
    const r = await f.ctx.generate('Once upon a time', { maxTokens: 100, stop: ['Lily'] }).result;
    expect(r.stopReason).toBe('stopString');
    expect(r.text).toBe(', there was a little girl named ');
    const long = await f.ctx.generate('Once upon a time', { maxTokens: 400 }).result;
    expect(['eos', 'maxTokens']).toContain(long.stopReason);
  });

  it('decodes without flash attention by default where there is no local GPU (the RPC backend is none)', async () => {
    const localGpu = systemInfo().devices.some((d) => !/^(CPU|BLAS|RPC)/i.test(d.name));
    expect(systemInfo().gpuOffload).toBe(localGpu);
    if (localGpu) return;
    const logits = async (flashAttention?: boolean) => {
      const c = await f.model.createContext({ contextSize: 256, threads: 1, flashAttention });
      try {
        return (await c.decodeLayers({ tokens: f.model.tokenize('Once upon a time'), logits: true })).logits!;
      } finally {
        c.dispose();
      }
    };
    const [byDefault, without, withFlash] = [await logits(), await logits(false), await logits(true)];
    expect(byDefault).toEqual(without);
    expect(withFlash).not.toEqual(without); // the check can tell them apart (F16 rounding)
  });

  it('sampling is reproducible for a seed and differs across seeds', async () => {
    const opts = { maxTokens: 30, temperature: 1, topK: 40, topP: 0.95 };
    const a = await f.ctx.generate('Once upon a time', { ...opts, seed: 1 }).result;
    const b = await f.ctx.generate('Once upon a time', { ...opts, seed: 1 }).result;
    const c = await f.ctx.generate('Once upon a time', { ...opts, seed: 2 }).result;
    expect(b.tokens).toEqual(a.tokens);
    expect(c.tokens).not.toEqual(a.tokens);
  });
});

/** The logits of the last row, or of every row one after the other, from one batch or from one-token decodes. */
async function rowLogits(ctx: Context, tokens: number[], oneByOne: boolean, rows: 'last' | 'all' = 'last'): Promise<Float32Array> {
  ctx.clear();
  if (!oneByOne) return (await ctx.decodeLayers({ tokens, outputs: rows, logits: true })).logits!;
  const each: Float32Array[] = [];
  for (const t of tokens) each.push((await ctx.decodeLayers({ tokens: [t], logits: true })).logits!);
  if (rows === 'last') return each[each.length - 1];
  const out = new Float32Array(each.reduce((n, r) => n + r.length, 0));
  each.forEach((r, i) => out.set(r, i * r.length));
  return out;
}

// patches/0015: a batch of up to 65 rows (every verification) runs on ggml's own kernels, which
// compute a row alike whatever the batch, so a verification row is the one-token decode bit for bit
// (0017: whatever KV window each covers; 0018: also for Q8_0 rows that share a 2x2 kernel call;
// 0019: and for Q8_0 batches on llamafile's tinyBLAS tiles).
// llamafile's F32 kernels, which took batches of 2+ rows before, differ in the last bits, and quantized
// products round their activations to 8 bits, which carried that to a flipped greedy near-tie.
describe('a batch of up to 65 rows equals token-by-token decoding bit for bit', () => {
  const q8 = async (): Promise<string> => {
    const path = join(tmpdir(), 'layerskip-test-models', `q8-${basename(randomModel(SHAPES['mqa-untied']))}`);
    if (!existsSync(path)) await quantizeModel(randomModel(SHAPES['mqa-untied']), path, 'Q8_0');
    return path;
  };
  const cases: [string, () => Promise<string>][] = [
    ['stories260K (F32)', async () => STORIES],
    ['mqa-untied quantized to Q8_0', q8],
    ['gqa-f16 (F16)', async () => randomModel(F16_SHAPES['gqa-f16'])],
    // patches/0018: trained Q8_0 weights, whose products span 4-12 blocks of 32 (a 2x2 kernel that
    // summed them in another order than the one-row kernel fails this case and the one above)
    ['layerskip-brown-12L (Q8_0, trained)', async () => join(STORIES, '..', 'layerskip-brown-12L.Q8_0.gguf')],
  ];
  for (const [name, pathOf] of cases) {
    it(name, async () => {
      const model = await loadModel(await pathOf());
      try {
        const ctx = await model.createContext({ contextSize: 256, threads: 1, ...EXACT });
        for (const prompt of [...randomPrompts(6, model.info.vocabularySize, 21, 2, 40), randomPrompts(1, model.info.vocabularySize, 22, 65, 65)[0]]) {
          // every row: a verification reads each row's logits, not only the last
          const batch = await rowLogits(ctx, prompt, false, 'all');
          const single = await rowLogits(ctx, prompt, true, 'all');
          expect(batch.length).toBe(single.length);
          let worst = 0;
          for (let i = 0; i < batch.length; i++) worst = Math.max(worst, Math.abs(batch[i] - single[i]));
          expect(worst, `${prompt.length} rows`).toBe(0);
        }
      } finally {
        model.dispose();
      }
    });
  }
});

describe('batch decoding equals token-by-token decoding', () => {
  const cases: (readonly [string, string, number])[] = [
    ['stories260K', STORIES, 1e-4],
    ...Object.entries(SHAPES).map(([name, spec]) => [name, randomModel(spec), 1e-4] as const),
    // F16 weights: the batched and single-row kernels round activations to F16 differently, by a
    // margin that depends on the CPU's kernels: ~3e-4 with AVX2, 2.9e-3 with AVX-512 on a Xeon
    // (AMX, whose buffer type used to take F16 matrices there, is off in source builds)
    ...Object.entries(F16_SHAPES).map(([name, spec]) => [name, randomModel(spec), 5e-3] as const),
  ];
  for (const [name, path, tolerance] of cases) {
    it(name, async () => {
      const model = await loadModel(path);
      try {
        // F32 KV cache and no flash attention: llama.cpp's F16 paths alone differ by ~1e-4 between batch shapes
        const ctx = await model.createContext({ contextSize: 256, threads: 1, ...EXACT });
        for (const prompt of randomPrompts(8, model.info.vocabularySize, 7, 2, 40)) {
          const batch = await rowLogits(ctx, prompt, false);
          const single = await rowLogits(ctx, prompt, true);
          expect(relErr(single, batch)).toBeLessThan(tolerance);
        }
      } finally {
        model.dispose();
      }
    });
  }
});
