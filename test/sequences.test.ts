// Sequences: several generations on one context at once. The reference is each prompt generated
// alone on a fresh single-sequence context; concurrent sequences (batched by the scheduler) must
// give every sequence exactly that output, plain or self-speculative, whatever the others do.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BusyError, DisposedError, loadModel, type Model } from '../lib/index.js';
import { STORIES, untilFirstToken } from './helpers.js';

let model: Model;
beforeAll(async () => {
  model = await loadModel(STORIES);
});
afterAll(() => model?.dispose());

const PROMPTS = ['Once upon a time', 'Lily saw a big dog in the park', 'The sun was hot', 'Tom had a red ball. He'];
const LENGTHS = [48, 20, 64, 36];

async function alone(prompt: string, maxTokens: number): Promise<number[]> {
  const ctx = await model.createContext({ contextSize: 512, threads: 1 });
  try {
    return (await ctx.generate(prompt, { maxTokens }).result).tokens;
  } finally {
    ctx.dispose();
  }
}

describe('concurrent sequences', () => {
  it('4 sequences (plain and self-speculative, different lengths, one aborted) each equal their output alone', async () => {
    const reference = await Promise.all(PROMPTS.map((p, i) => alone(p, LENGTHS[i])));
    const ctx = await model.createContext({ contextSize: 2048, threads: 1, sequences: 4 });
    for (let round = 0; round < 2; round++) {
      const ac = new AbortController();
      const gens = PROMPTS.map((p, i) =>
        ctx.sequence(i).generate(p, {
          maxTokens: LENGTHS[i],
          selfSpeculative: (i + round) % 2 === 1 ? { exitLayer: 3, draftTokens: 3 } : undefined,
          signal: i === 2 ? ac.signal : undefined,
        }),
      );
      // sequence 2 is aborted half-way through its tokens
      let seen = 0;
      const aborted = (async () => {
        for await (const chunk of gens[2]) {
          seen += chunk.tokens.length;
          if (seen >= LENGTHS[2] / 2) ac.abort();
        }
      })().catch((e: unknown) => e);
      const results = await Promise.allSettled(gens.map((g) => g.result));
      expect(((await aborted) as Error).name).toBe('AbortError');
      expect(results[2].status).toBe('rejected');
      for (const i of [0, 1, 3]) {
        expect(results[i].status).toBe('fulfilled');
        expect((results[i] as PromiseFulfilledResult<{ tokens: number[] }>).value.tokens).toEqual(reference[i]);
      }
      // the aborted sequence works again, from its cached prefix
      expect((await ctx.sequence(2).generate(PROMPTS[2], { maxTokens: LENGTHS[2] }).result).tokens).toEqual(reference[2]);
    }
    ctx.dispose();
  });

  it('the scheduler batches: concurrent plain steps share decodeMany calls, drafts draftMany, verifications verifyMany', async () => {
    const ctx = await model.createContext({ contextSize: 1024, threads: 1, sequences: 3 });
    try {
      // count the batched calls and their sizes on the context's addon handle, which the scheduler calls
      const handle = (ctx as unknown as { handle: Record<string, (...a: unknown[]) => Promise<unknown>> }).handle;
      const sizes: Record<string, number[]> = { decodeMany: [], draftMany: [], verifyMany: [] };
      for (const name of Object.keys(sizes)) {
        const original = handle[name].bind(handle);
        // the class's methods are read-only: shadow them on the instance
        Object.defineProperty(handle, name, {
          configurable: true,
          value: (arg: unknown) => {
            sizes[name].push(Array.isArray(arg) ? arg.length : (arg as { entries: unknown[] }).entries.length);
            return original(arg);
          },
        });
      }
      const run = (spec?: { exitLayer: number; draftTokens: number }) =>
        Promise.all(PROMPTS.slice(0, 3).map((p, i) => ctx.sequence(i).generate(p, { maxTokens: 24, selfSpeculative: spec }).result));
      const plain = await run();
      expect(plain.map((r) => r.tokens.length)).toEqual([24, 24, 24]);
      // plain steps of three sequences go out together: most decodeMany calls carry several
      expect(sizes.decodeMany.filter((n) => n >= 2).length).toBeGreaterThan(10);
      await run({ exitLayer: 3, draftTokens: 2 });
      expect(sizes.draftMany.filter((n) => n >= 2).length).toBeGreaterThan(3);
      expect(sizes.verifyMany.filter((n) => n >= 2).length).toBeGreaterThan(3);
    } finally {
      ctx.dispose();
    }
  });

  it('sequences that fill their shared context end with stopReason contextFull and keep their text', async () => {
    const ctx = await model.createContext({ contextSize: 256, threads: 1, sequences: 2 });
    try {
      const cells = ctx.sequence(0).generate('x', { maxTokens: 1 }); // the context's real size (llama.cpp rounds it)
      await cells.result;
      ctx.clear();
      for (const spec of [undefined, { exitLayer: 3, draftTokens: 3 }]) {
        const gens = [0, 1].map((i) => ctx.sequence(i).generate(PROMPTS[i], { maxTokens: 1000, selfSpeculative: spec }));
        const results = await Promise.all(gens.map((g) => g.result));
        expect(results.map((r) => r.stopReason)).toContain('contextFull');
        for (const [i, r] of results.entries()) {
          expect(r.tokens.length, `sequence ${i}`).toBeGreaterThan(10);
          expect(r.text.length).toBeGreaterThan(0);
        }
        ctx.clear();
      }
    } finally {
      ctx.dispose();
    }
  });

  it('a sequence that finishes early leaves the others running; context.generate is sequence 0', async () => {
    const ctx = await model.createContext({ contextSize: 1024, threads: 1, sequences: 2 });
    const short = ctx.generate(PROMPTS[0], { maxTokens: 3 });
    const long = ctx.sequence(1).generate(PROMPTS[1], { maxTokens: 40 });
    expect((await short.result).tokens).toEqual(await alone(PROMPTS[0], 3));
    expect((await long.result).tokens).toEqual(await alone(PROMPTS[1], 40));
    expect(ctx.sequence(0).index).toBe(0);
    ctx.dispose();
  });

  it('bad input: index out of range, a second generation on a busy sequence, a disposed sequence, context-wide calls while sequences run', async () => {
    const ctx = await model.createContext({ contextSize: 1024, threads: 1, sequences: 2 });
    expect(() => ctx.sequence(2)).toThrow(/sequence index must be an integer in \[0, 1\], got 2/);
    expect(() => ctx.sequence(-1)).toThrow(RangeError);
    expect(() => ctx.sequence(0.5 as never)).toThrow(RangeError);
    await expect(model.createContext({ sequences: 0 })).rejects.toThrow(/sequences must be an integer in \[1, 64\]/);
    const a = ctx.sequence(0).generate(PROMPTS[0], { maxTokens: 30 });
    const b = ctx.getSequence(); // the free one
    expect(b.index).toBe(1);
    const c = b.generate(PROMPTS[1], { maxTokens: 30 });
    expect(() => ctx.sequence(0).generate('x')).toThrow(BusyError);
    expect(() => ctx.getSequence()).toThrow(/all 2 sequences are generating/);
    expect(() => ctx.clear()).toThrow(BusyError);
    await expect(ctx.decodeLayers({ tokens: [1] })).rejects.toThrow(BusyError);
    await Promise.all([a.result, c.result]);
    const seq = ctx.sequence(1);
    ctx.dispose();
    expect(() => seq.generate('x')).toThrow(DisposedError);
    expect(() => ctx.sequence(0)).toThrow(DisposedError);
  });

  it('dispose while 3 sequences generate: each rejects with DisposedError; the model goes on', async () => {
    const ctx = await model.createContext({ contextSize: 2048, threads: 1, sequences: 3 });
    const gens = [0, 1, 2].map((i) =>
      ctx.sequence(i).generate(PROMPTS[i], { maxTokens: 200, selfSpeculative: i === 1 ? { exitLayer: 3, draftTokens: 3 } : undefined }),
    );
    await untilFirstToken(gens[0]);
    ctx.dispose();
    for (const g of gens) await expect(g.result).rejects.toBeInstanceOf(DisposedError);
    expect(await alone(PROMPTS[0], 5)).toHaveLength(5);
  });
});
