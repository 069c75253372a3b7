// Context lookup drafts (decoding/context-lookup.ts) and their rounds in self-speculative decoding:
// the index against a brute-force search, greedy output against plain decoding, and sampling
// against the exact distribution of the full model.
import { describe, expect, it } from 'vitest';
import { ContextLookup } from '../lib/decoding/context-lookup.js';
import { EXACT, exactSampleDistribution, expectSamplesFollow, modelFixture, randomModel, randomPrompts, SHAPES, STORIES } from './helpers.js';

/**
 * What a draft must be, by brute force: the continuation after the newest earlier occurrence of the
 * longest suffix that occurred earlier, extended with the match's period past the end.
 */
function bruteForce(tokens: number[], max: number): { draft: number[]; length: number } {
  const end = tokens.length - 1;
  for (let n = end; n >= 1; n--) {
    const suffix = tokens.slice(end + 1 - n).join(',');
    for (let m = end - 1; m >= n - 1; m--) {
      if (tokens.slice(m + 1 - n, m + 1).join(',') !== suffix) continue;
      const seq = [...tokens];
      const out: number[] = [];
      for (let i = 0; i < max; i++) {
        const t = seq[m + 1 + i];
        out.push(t);
        seq.push(t);
      }
      return { draft: out, length: n };
    }
  }
  return { draft: [], length: 0 };
}

describe('ContextLookup', () => {
  it('drafts what followed the newest earlier occurrence of the longest repeated suffix, extending a loop past the end', () => {
    let s = 7;
    for (let trial = 0; trial < 200; trial++) {
      const lookup = new ContextLookup();
      const tokens: number[] = [];
      const alphabet = 2 + (trial % 5);
      for (let i = 0; i < 60; i++) {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        const t = (s >>> 8) % alphabet;
        tokens.push(t);
        lookup.push(t);
        const max = 1 + (i % 7);
        const want = bruteForce(tokens, max);
        expect(lookup.draft(max), `tokens ${tokens.join(' ')}`).toEqual(want.draft);
        expect(lookup.matchLength).toBe(want.length);
      }
    }
  });

  it('peek: the draft after tokens not yet added, as if they were (by brute force on the longer sequence)', () => {
    let s = 11;
    const rand = (n: number) => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return (s >>> 8) % n;
    };
    for (let trial = 0; trial < 300; trial++) {
      const alphabet = 2 + (trial % 5);
      const tokens = Array.from({ length: 5 + rand(40) }, () => rand(alphabet));
      const extra = Array.from({ length: 1 + rand(4) }, () => rand(alphabet));
      const lookup = new ContextLookup();
      lookup.pushAll(tokens);
      const max = 1 + rand(6);
      // brute force: the longest suffix of tokens + extra that occurs inside `tokens`, newest occurrence
      const all = [...tokens, ...extra];
      let want: { draft: number[]; length: number } = { draft: [], length: 0 };
      for (let n = all.length; n >= 1 && want.length === 0; n--) {
        const suffix = all.slice(all.length - n).join(',');
        for (let m = tokens.length - 1; m >= n - 1; m--) {
          if (all.slice(m + 1 - n, m + 1).join(',') !== suffix) continue;
          const seq = [...all];
          const out: number[] = [];
          for (let i = 0; i < max; i++) {
            out.push(seq[m + 1 + i]);
            seq.push(seq[m + 1 + i]);
          }
          want = { draft: out, length: n };
          break;
        }
      }
      const got = lookup.peek(extra, max);
      expect(got.tokens, `tokens ${tokens.join(' ')} + ${extra.join(' ')}`).toEqual(want.draft);
      expect(got.matchLength).toBe(want.length);
      expect(lookup.length).toBe(tokens.length); // nothing was added
    }
  });

  it('is empty for a suffix that never occurred, and repeats a one-token loop', () => {
    const lookup = new ContextLookup();
    lookup.pushAll([1, 2, 3, 4]);
    expect(lookup.draft(4)).toEqual([]);
    lookup.pushAll([5, 5, 5]);
    expect(lookup.draft(4)).toEqual([5, 5, 5, 5]);
  });

  it('extends to a context that starts with its tokens, as an index built from that context', () => {
    const kept = new ContextLookup();
    kept.pushAll([1, 2, 3, 1, 2]);
    expect(kept.isPrefixOf([1, 2, 3, 1, 2])).toBe(true);
    expect(kept.isPrefixOf([1, 2, 3, 1, 2, 3, 4])).toBe(true);
    expect(kept.isPrefixOf([1, 2, 3, 1])).toBe(false); // shorter
    expect(kept.isPrefixOf([1, 2, 9, 1, 2, 3])).toBe(false); // differs inside
    const context = [1, 2, 3, 1, 2, 3, 4, 1, 2, 3];
    kept.pushAll(context.slice(kept.length));
    const fresh = new ContextLookup();
    fresh.pushAll(context);
    expect([kept.matchLength, kept.draft(6)]).toEqual([fresh.matchLength, fresh.draft(6)]);
    expect(kept.draft(6)).toEqual([4, 1, 2, 3, 4, 1]);
  });
});

// a prompt that repeats itself, so that lookup rounds start at once
const REPEATING = 'Once upon a time, there was a little dog. Once upon a time, there was a little';

for (const [name, path] of [
  ['stories260K', () => STORIES],
  ['gqa-untied', () => randomModel(SHAPES['gqa-untied'])],
] as const) {
  describe(`lookup rounds keep greedy output: ${name}`, () => {
    const f = modelFixture(path, { threads: 1, ...EXACT });
    it('equals plain greedy for several exit layers, draft and lookup lengths', async () => {
      let lookupRounds = 0;
      const prompts = [REPEATING, ...randomPrompts(3, f.model.info.vocabularySize, 5, 4, 12).map((p) => f.model.detokenize([...p, ...p, ...p]))];
      for (const prompt of prompts) {
        const plain = await f.ctx.generate(prompt, { maxTokens: 48 }).result;
        for (const [exitLayer, draftTokens, lookupTokens] of [
          [1, 1, 1],
          [2, 3, 8],
          [3, 2, 16],
        ]) {
          // eager: every lookup draft is taken whole and continued by early exit (both sources in a round)
          for (const freeDraftChoice of ['eager', 'measured'] as const) {
            const r = await f.ctx.generate(prompt, { maxTokens: 48, freeDraftChoice, selfSpeculative: { exitLayer, draftTokens, lookup: true, lookupTokens } })
              .result;
            expect(r.tokens, `E=${exitLayer} d=${draftTokens} lookup ${lookupTokens} ${freeDraftChoice}`).toEqual(plain.tokens);
            lookupRounds += r.speculative!.lookup!.rounds;
          }
        }
        // lookup without early exit: free rounds and plain steps
        for (const freeDraftChoice of ['eager', 'measured'] as const) {
          const r = await f.ctx.generate(prompt, { maxTokens: 48, freeDraftChoice, lookup: { maxTokens: 12 } }).result;
          expect(r.tokens, `lookup alone, ${freeDraftChoice}`).toEqual(plain.tokens);
          expect(r.speculative!.exitLayer).toBeNull();
        }
      }
      expect(lookupRounds).toBeGreaterThan(10);
    });
  });
}

describe('lookup rounds keep the sampling distribution', () => {
  const f = modelFixture(() => STORIES, { threads: 1, ...EXACT });
  it('the first tokens follow the full model exactly (chi-square), lookup drafts accepted and rejected', async () => {
    // the likely first tokens ("dog") continue the loop, so the second token is mostly a lookup draft.
    // 'eager' takes every lookup draft: the measured choice learns across the 1,500 generations on
    // this context (generation-memory.ts) that at temperature 4 lookup rounds rarely pay, and would
    // stop taking them
    const text = 'the dog, the dog, the dog, the dog, the';
    const sampling = { temperature: 4, topK: 6 };
    const prompt = f.model.tokenize(text);
    const exact = await exactSampleDistribution(f.ctx, prompt, sampling, 2);
    let rejected = 0,
      accepted = 0;
    await expectSamplesFollow(exact, 1500, 2, async (seed) => {
      const r = await f.ctx.generate(text, {
        ...sampling,
        seed,
        maxTokens: 3,
        freeDraftChoice: 'eager',
        selfSpeculative: { exitLayer: 3, draftTokens: 2, lookup: true, lookupTokens: 2 },
      }).result;
      const lk = r.speculative!.lookup!;
      accepted += lk.accepted;
      rejected += lk.drafted - lk.accepted;
      return r.tokens;
    });
    // both branches of the accept rule ran
    expect(accepted).toBeGreaterThan(150);
    expect(rejected).toBeGreaterThan(60);
  });

  it('rejects bad lookup options', async () => {
    const gen = (o: object) => () => f.ctx.generate('Once', { maxTokens: 2, selfSpeculative: { exitLayer: 2, ...o } as never });
    expect(gen({ lookup: 'yes' })).toThrow(/selfSpeculative.lookup/);
    expect(gen({ lookup: true, lookupTokens: 0 })).toThrow(/lookupTokens/);
    expect(gen({ lookup: true, overlap: true })).toThrow(/lookup and overlap/);
    // the context is still usable
    await expect(f.ctx.generate('Once', { maxTokens: 2, selfSpeculative: { exitLayer: 2, lookup: true } }).result).resolves.toBeDefined();
  });
});
