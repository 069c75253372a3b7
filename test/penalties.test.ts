// Repetition, presence and frequency penalties and min-p, against a reference written here (llama.cpp's
// rule, applied to one-token decodes through decodeLayers): greedy output with every decoding mode,
// and sampled output against the exact distribution (chi-square), with early-exit and lookup drafts.
import { describe, expect, it } from 'vitest';
import { distribution, resolveSampling, type SamplingOptions } from '../lib/decoding/sampling.js';
import type { Context } from '../lib/index.js';
import { argmax, EXACT, expectSamplesFollow, modelFixture, STORIES } from './helpers.js';

const PENALTIES = { repeatPenalty: 1.4, presencePenalty: 0.3, frequencyPenalty: 0.2, penaltyLastN: 24 };

/** llama.cpp's penalties (llama_sampler_penalties), written out independently of lib/decoding/sampling.ts. */
function penalize(logits: Float32Array, history: readonly number[], o: typeof PENALTIES): Float32Array {
  const out = Float32Array.from(logits);
  const window = history.slice(-o.penaltyLastN);
  const seen = new Set(window);
  for (const t of seen) {
    const count = window.filter((x) => x === t).length;
    out[t] = out[t] > 0 ? out[t] / o.repeatPenalty : out[t] * o.repeatPenalty;
    out[t] -= count * o.frequencyPenalty + o.presencePenalty;
  }
  return out;
}

/** min-p: tokens below minP times the most likely one's probability dropped, the rest renormalized. */
function withMinP(p: Float64Array, minP: number): Float64Array {
  const floor = minP * Math.max(...p);
  const kept = p.map((x) => (x >= floor ? x : 0));
  const total = kept.reduce((a, b) => a + b, 0);
  return kept.map((x) => x / total);
}

/** Greedy decoding with penalties, one token at a time through decodeLayers. */
async function referenceGreedy(ctx: Context, prompt: number[], n: number, isEog: (t: number) => boolean): Promise<number[]> {
  ctx.clear();
  let r = await ctx.decodeLayers({ tokens: prompt, logits: true });
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = argmax(penalize(r.logits!, [...prompt, ...out], PENALTIES));
    if (isEog(t)) break;
    out.push(t);
    r = await ctx.decodeLayers({ tokens: [t], logits: true });
  }
  return out;
}

describe('penalties', () => {
  const f = modelFixture(() => STORIES, { threads: 1, ...EXACT });

  it('greedy output equals the reference, plain and with early-exit and lookup drafts, and differs from no penalties', async () => {
    for (const text of ['Once upon a time', 'the dog, the dog, the dog, the dog, the']) {
      const prompt = f.model.tokenize(text);
      const want = await referenceGreedy(f.ctx, prompt, 60, (t) => f.model.handle.isEog(t));
      const none = await f.ctx.generate(prompt, { maxTokens: 60 }).result;
      expect(none.tokens, 'the penalties change this output').not.toEqual(want);
      const modes = [
        {},
        { selfSpeculative: { exitLayer: 3, draftTokens: 3 } },
        { selfSpeculative: { exitLayer: 2, draftTokens: 2, adaptive: true } },
        { lookup: true, freeDraftChoice: 'eager' as const },
        { lookup: true, freeDraftChoice: 'eager' as const, selfSpeculative: { exitLayer: 3, draftTokens: 2 } },
      ];
      for (const mode of modes) {
        const r = await f.ctx.generate(prompt, { maxTokens: 60, ...PENALTIES, ...mode }).result;
        expect(r.tokens, JSON.stringify(mode)).toEqual(want);
      }
    }
  });

  it('sampling with penalties and min-p follows the exact distribution (chi-square), plain and speculative', async () => {
    const sampling: SamplingOptions = { temperature: 1.5, topK: 8, minP: 0.2, ...PENALTIES };
    // lib's temperature, top-k and top-p; the penalties and min-p are applied here, independently
    const s = resolveSampling({ ...sampling, minP: 0, repeatPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, seed: 0 });
    const dist = (row: Float32Array, history: readonly number[]) => withMinP(distribution(penalize(row, history, PENALTIES), s), sampling.minP!);
    const prompt = f.model.tokenize('the dog, the dog, the dog, the dog, the');
    // the exact distribution of the first two tokens: each row penalized for what came before it
    const exact = new Map<string, number>();
    f.ctx.clear();
    const p1 = dist((await f.ctx.decodeLayers({ tokens: prompt, logits: true })).logits!, prompt);
    for (let a = 0; a < p1.length; a++) {
      if (p1[a] === 0) continue;
      f.ctx.clear();
      const row = (await f.ctx.decodeLayers({ tokens: [...prompt, a], logits: true })).logits!;
      const p2 = dist(row, [...prompt, a]);
      for (let b = 0; b < p2.length; b++) if (p2[b] > 0) exact.set(`${a},${b}`, p1[a] * p2[b]);
    }
    for (const mode of [{}, { selfSpeculative: { exitLayer: 3, draftTokens: 2 } }, { lookup: true, freeDraftChoice: 'eager' as const }]) {
      await expectSamplesFollow(exact, 1200, 2, async (seed) => (await f.ctx.generate(prompt, { ...sampling, ...mode, seed, maxTokens: 3 }).result).tokens);
    }
  }, 120_000);

  it('rejects bad values and overlap with penalties', () => {
    const gen = (o: object) => () => f.ctx.generate('Once', { maxTokens: 2, ...o });
    expect(gen({ repeatPenalty: 0 })).toThrow(/repeatPenalty/);
    expect(gen({ minP: 2 })).toThrow(/minP/);
    expect(gen({ penaltyLastN: -1 })).toThrow(/penaltyLastN/);
    expect(gen({ repeatPenalty: 1.2, selfSpeculative: { exitLayer: 2, overlap: true } })).toThrow(/overlap cannot be combined with repetition/);
  });
});
