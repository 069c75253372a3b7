// Free drafts (lookup, prediction) and the plain greedy run, against independent references:
// the plain run against one-token decodes through decodeLayers, greedy output with every source and
// mix against plain output, sampling against the model's exact distribution (chi-square), and a
// chat's earlier turn as a lookup source.
import { describe, expect, it } from 'vitest';
import { PredictionDrafts } from '../lib/decoding/prediction.js';
import { ChatSession, PLAIN_CHAT_TEMPLATE } from '../lib/index.js';
import { EXACT, exactSampleDistribution, expectSamplesFollow, modelFixture, randomModel, SHAPES, STORIES } from './helpers.js';

describe('PredictionDrafts', () => {
  const P = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21];

  it('drafts the prediction while the output follows it', () => {
    const d = new PredictionDrafts(P);
    expect(d.draft(3)).toEqual([10, 11, 12]);
    d.pushAll([10, 11]);
    expect(d.draft(3)).toEqual([12, 13, 14]);
    expect(d.matchLength).toBe(2);
  });

  it('re-aligns after a replaced, an inserted and a deleted token', () => {
    const replaced = new PredictionDrafts(P);
    replaced.pushAll([10, 11, 99, 13, 14]); // 12 -> 99
    expect(replaced.draft(2)).toEqual([15, 16]);
    const inserted = new PredictionDrafts(P);
    inserted.pushAll([10, 11, 12, 98, 99, 13, 14]);
    expect(inserted.draft(2)).toEqual([15, 16]);
    const deleted = new PredictionDrafts(P);
    deleted.pushAll([10, 11, 12, 16, 17]); // 13-15 left out
    expect(deleted.draft(2)).toEqual([18, 19]);
  });

  it('drafts nothing while the output does not follow it, and never goes back to an earlier repeat', () => {
    const d = new PredictionDrafts([1, 2, 3, 4, 1, 2, 3, 5]);
    d.pushAll([7, 8]);
    expect(d.draft(4)).toEqual([]);
    expect(d.matchLength).toBe(0);
    const r = new PredictionDrafts([1, 2, 3, 4, 1, 2, 3, 5]);
    r.pushAll([1, 2, 3, 4, 9, 2, 3]); // after the mismatch, "2 3" is found after the agreed part
    expect(r.draft(1)).toEqual([5]);
  });
});

for (const [name, path] of [
  ['stories260K', () => STORIES],
  ['gqa-untied', () => randomModel(SHAPES['gqa-untied'])],
] as const) {
  describe(`plain and free drafts keep greedy output: ${name}`, () => {
    const f = modelFixture(path, { threads: 1, ...EXACT });

    it('the plain greedy run (several steps per addon call) equals one-token decodes', async () => {
      const prompt = f.model.tokenize('Once upon a time');
      const want: number[] = [];
      f.ctx.clear();
      let r = await f.ctx.decodeLayers({ tokens: prompt });
      for (let i = 0; i < 100; i++) {
        want.push(r.argmax[0]);
        r = await f.ctx.decodeLayers({ tokens: [r.argmax[0]] });
      }
      const eos = want.findIndex((t) => f.model.handle.isEog(t));
      const expected = eos >= 0 ? want.slice(0, eos) : want;
      f.ctx.clear();
      const got = await f.ctx.generate(prompt, { maxTokens: 100 }).result;
      expect(got.tokens).toEqual(expected);
      // the KV cache holds the prompt and every generated token but the last (as after plain steps)
      expect(f.ctx.state().nextPosition).toBe(prompt.length + got.tokens.length - (got.stopReason === 'eos' ? 0 : 1));
      // a stop token inside a run: the run ends there, and the cache is cut after it
      const stopAt = expected[7];
      const stopped = await f.ctx.generate(prompt, { maxTokens: 100, stopTokens: [stopAt] }).result;
      expect(stopped.tokens).toEqual(expected.slice(0, expected.indexOf(stopAt)));
      expect(f.ctx.state().nextPosition).toBe(prompt.length + stopped.tokens.length);
      // a stop string inside a run: the same text, and the next generation reuses a consistent cache
      const text = got.text;
      const stopString = text.slice(20, 26);
      const s = await f.ctx.generate(prompt, { maxTokens: 100, stop: [stopString] }).result;
      expect(s.stopReason).toBe('stopString');
      expect(s.text).toBe(text.slice(0, text.indexOf(stopString)));
      const again = await f.ctx.generate(prompt, { maxTokens: 100 }).result;
      expect(again.tokens).toEqual(expected);
    });

    it('prediction drafts, alone and continued by early exit, equal plain greedy', async () => {
      const prompt = 'Once upon a time, there was a little';
      const plain = await f.ctx.generate(prompt, { maxTokens: 64 }).result;
      // an edit: every 20th token of the real output changed
      const edited = plain.tokens.map((t, i) => (i % 20 === 7 ? (t + 1) % f.model.info.vocabularySize : t));
      let predicted = 0;
      for (const prediction of [plain.tokens, edited, f.model.tokenize(' The cat sat on the mat.', { addBos: false }), plain.text]) {
        for (const freeDraftChoice of ['eager', 'measured'] as const) {
          for (const selfSpeculative of [undefined, { exitLayer: 2, draftTokens: 2 }]) {
            const r = await f.ctx.generate(prompt, { maxTokens: 64, prediction, freeDraftChoice, selfSpeculative }).result;
            expect(r.tokens, `${freeDraftChoice} ${JSON.stringify(selfSpeculative)}`).toEqual(plain.tokens);
            predicted += r.speculative!.sources.prediction!.accepted;
          }
        }
      }
      expect(predicted).toBeGreaterThan(100);
    });

    it('a prediction continued by early exit grows past twice its first measured round', async () => {
      // a new context: nothing measured yet. The first free round goes alone and measures the cost;
      // the fused rounds after it raise how far rounds may grow (they measured no free round, and
      // the prediction's drafts stayed at 2 for the whole generation before)
      const ctx = await f.model.createContext({ threads: 1, ...EXACT });
      try {
        const prompt = 'Once upon a time, there was a little';
        const plain = await ctx.generate(prompt, { maxTokens: 128 }).result;
        ctx.clear();
        const r = await ctx.generate(prompt, { maxTokens: 128, prediction: plain.tokens, selfSpeculative: { exitLayer: 2, draftTokens: 2 } }).result;
        expect(r.tokens).toEqual(plain.tokens);
        expect(r.speculative!.sources.prediction!.draftedByPosition.length).toBeGreaterThan(5);
      } finally {
        ctx.dispose();
      }
    });

    it('per-source statistics add up', async () => {
      const prompt = 'the dog, the dog, the dog, the dog, the';
      const r = await f.ctx.generate(prompt, { maxTokens: 48, lookup: true, freeDraftChoice: 'eager', selfSpeculative: { exitLayer: 2, draftTokens: 2 } })
        .result;
      const { lookup, earlyExit } = r.speculative!.sources;
      for (const s of [lookup!, earlyExit!]) {
        expect(s.draftedByPosition.reduce((a, b) => a + b, 0)).toBe(s.drafted);
        expect(s.acceptedByPosition.reduce((a, b) => a + b, 0)).toBe(s.accepted);
        s.acceptedByPosition.forEach((a, j) => expect(a).toBeLessThanOrEqual(s.draftedByPosition[j]));
      }
      expect(lookup!.drafted).toBeGreaterThan(0);
      expect(r.speculative!.lookup!.drafted).toBe(lookup!.drafted);
    });
  });
}

describe('plain runs with free drafts on', () => {
  const f = modelFixture(() => STORIES, { threads: 1, ...EXACT });

  it('look at the sources early in every generation, also after generations that found nothing', async () => {
    const prompt = 'Once upon a time';
    f.ctx.clear();
    const plain = await f.ctx.generate(prompt, { maxTokens: 128 }).result;
    // (every draft taken: on stories260K a free round's row costs about a plain step, so the
    // measured choice would rightly decline them)
    const eager = { maxTokens: 128, freeDraftChoice: 'eager' } as const;
    // generations whose prediction never matches: their plain runs grow to the longest
    const never = Array.from({ length: 64 }, (_, i) => 3 + ((i * 37) % 400)).filter((t) => !plain.tokens.includes(t));
    for (let i = 0; i < 3; i++) {
      const r = await f.ctx.generate(prompt, { ...eager, prediction: never }).result;
      expect(r.speculative!.sources.prediction!.rounds).toBe(0);
    }
    // the output reaches this prediction after 5 tokens: a generation that kept the long runs of
    // the ones before it (up to 64 steps before its first look) drafted from it only after them
    const r = await f.ctx.generate(prompt, { ...eager, prediction: plain.tokens.slice(5) }).result;
    expect(r.tokens).toEqual(plain.tokens);
    const p = r.speculative!.sources.prediction!;
    // the tokens of prediction rounds (accepted drafts and each round's own): all but the first few
    // (runs of 2 and 8 steps before the first look) and the last 5, which the prediction lacks
    expect(p.accepted + p.rounds).toBeGreaterThanOrEqual(plain.tokens.length - 24);
  });
});

describe('free drafts keep the sampling distribution (chi-square)', () => {
  const f = modelFixture(() => STORIES, { threads: 1, ...EXACT });
  const text = 'the dog, the dog, the dog, the dog, the';

  it('prediction drafts: accepted with probability p(d), else resampled without d', async () => {
    const sampling = { temperature: 4, topK: 6 };
    const prompt = f.model.tokenize(text);
    const exact = await exactSampleDistribution(f.ctx, prompt, sampling, 2);
    // the prediction is the likeliest pair: its second token is drafted whenever the first matches
    const prediction = [...exact.entries()]
      .sort((a, b) => b[1] - a[1])[0][0]
      .split(',')
      .map(Number);
    let accepted = 0,
      drafted = 0;
    await expectSamplesFollow(exact, 1500, 2, async (seed) => {
      // maxTokens 3: the second token is a round's (the first comes from the prompt's decode)
      const r = await f.ctx.generate(prompt, { ...sampling, seed, maxTokens: 3, prediction, freeDraftChoice: 'eager' }).result;
      const s = r.speculative!.sources.prediction!;
      accepted += s.accepted;
      drafted += s.drafted;
      return r.tokens;
    });
    expect(accepted).toBeGreaterThan(100);
    expect(drafted - accepted).toBeGreaterThan(100);
  });

  it('a lookup draft and an early-exit draft in one round', async () => {
    const sampling = { temperature: 3, topK: 4 };
    const prompt = f.model.tokenize(text);
    const exact = await exactSampleDistribution(f.ctx, prompt, sampling, 3);
    let mixed = 0,
      lookupRejected = 0,
      lookupAccepted = 0;
    await expectSamplesFollow(exact, 2500, 3, async (seed) => {
      const r = await f.ctx.generate(prompt, {
        ...sampling,
        seed,
        maxTokens: 4,
        lookup: { maxTokens: 1 },
        freeDraftChoice: 'eager',
        selfSpeculative: { exitLayer: 3, draftTokens: 1 },
      }).result;
      const { lookup, earlyExit } = r.speculative!.sources;
      mixed += earlyExit!.draftedByPosition[1] ?? 0; // an early-exit draft after a lookup draft
      lookupAccepted += lookup!.accepted;
      lookupRejected += lookup!.drafted - lookup!.accepted;
      return r.tokens;
    });
    expect(mixed).toBeGreaterThan(300);
    expect(lookupAccepted).toBeGreaterThan(100);
    expect(lookupRejected).toBeGreaterThan(100);
  }, 120_000);
});

describe('a lookup draft that continues early-exit drafts', () => {
  const f = modelFixture(() => STORIES, { threads: 1, ...EXACT });
  // the prompt ends in a token that never occurred before, so a round starts with early exit; its
  // drafts lead back into the repeated text, where the lookup continues them
  const text = 'the dog, the dog, the dog, the dog, the big';

  it('keeps greedy output', async () => {
    const plain = await f.ctx.generate(text, { maxTokens: 40 }).result;
    let continued = 0;
    for (const [exitLayer, draftTokens] of [
      [2, 1],
      [3, 2],
      [4, 3],
    ]) {
      for (const freeDraftChoice of ['eager', 'continuation'] as const) {
        const r = await f.ctx.generate(text, { maxTokens: 40, lookup: true, freeDraftChoice, selfSpeculative: { exitLayer, draftTokens } }).result;
        expect(r.tokens, `E=${exitLayer} d=${draftTokens} ${freeDraftChoice}`).toEqual(plain.tokens);
        // lookup drafts after the first position follow early-exit drafts in 'continuation'
        if (freeDraftChoice === 'continuation') continued += r.speculative!.sources.lookup!.draftedByPosition.slice(draftTokens).reduce((a, b) => a + b, 0);
      }
    }
    expect(continued).toBeGreaterThan(0);
  });

  it('keeps the sampling distribution (chi-square)', async () => {
    // early-exit drafts (E = 4 of 5 layers) are sampled from the whole vocabulary: at T = 2 they
    // stay on the repeated text often enough for the lookup to continue them, while the full model's
    // probabilities are spread enough that a wrong point-mass rule shows (a point mass of 0.5 fails)
    const sampling = { temperature: 2, topK: 4 };
    // 'continuation': every round drafts by early exit first, and the lookup continues it
    const prompt = f.model.tokenize('the dog, the dog, the dog, the dog, the');
    const exact = await exactSampleDistribution(f.ctx, prompt, sampling, 3);
    let lookupAfterEarly = 0;
    await expectSamplesFollow(exact, 2500, 3, async (seed) => {
      const r = await f.ctx.generate(prompt, {
        ...sampling,
        seed,
        maxTokens: 4,
        lookup: { maxTokens: 1 },
        freeDraftChoice: 'continuation',
        selfSpeculative: { exitLayer: 4, draftTokens: 1 },
      }).result;
      lookupAfterEarly += r.speculative!.sources.lookup!.draftedByPosition[1] ?? 0; // a lookup draft after an early-exit draft
      return r.tokens;
    });
    expect(lookupAfterEarly).toBeGreaterThan(300);
  }, 120_000);
});

describe('lookup in a chat', () => {
  const f = modelFixture(() => STORIES, { threads: 1, ...EXACT, contextSize: 1024 });

  it('finds drafts in an earlier turn', async () => {
    const ask = 'Tell me a story about a dog.';
    // eager: every lookup draft is verified, so the counts do not depend on measured timings
    const options = { maxTokens: 80, lookup: true, freeDraftChoice: 'eager' } as const;
    // turn 1 tells a story; turn 2 asks the same, and greedy decoding tells much of it again
    const chat = new ChatSession(f.ctx, { template: PLAIN_CHAT_TEMPLATE });
    await chat.prompt(ask, { maxTokens: 80 }).result;
    const withHistory = await chat.prompt(ask, options).result;
    // the same turn 2 without lookup, and lookup without the earlier turn in the context
    const noLookup = await new ChatSession(f.ctx, { template: PLAIN_CHAT_TEMPLATE, history: chat.messages.slice(0, 2) }).prompt(ask, { maxTokens: 80 }).result;
    const fresh = await new ChatSession(f.ctx, { template: PLAIN_CHAT_TEMPLATE }).prompt(ask, options).result;
    expect(withHistory.tokens).toEqual(noLookup.tokens);
    const fromHistory = withHistory.speculative!.sources.lookup!.accepted;
    const alone = fresh.speculative!.sources.lookup!.accepted;
    // what the earlier turn adds: drafts accepted with it that the turn alone could not find
    expect(fromHistory).toBeGreaterThan(alone + 20);
  });

  it('keeps the lookup index from turn to turn, and builds a new one for a context that does not extend it', async () => {
    const options = { maxTokens: 40, lookup: true } as const;
    const chat = new ChatSession(f.ctx, { template: PLAIN_CHAT_TEMPLATE });
    const turn1 = await chat.prompt('Tell me a story about a dog.', options).result;
    const turn2 = await chat.prompt('Tell me a story about a cat.', options).result;
    // the same second turn in a new session: the sequence's index now holds turn 2 and its output,
    // which this prompt does not start with, so the index is built from the whole prompt again
    const again = new ChatSession(f.ctx, { template: PLAIN_CHAT_TEMPLATE, history: chat.messages.slice(0, 2) });
    const rebuilt = await again.prompt('Tell me a story about a cat.', options).result;
    expect(rebuilt.tokens).toEqual(turn2.tokens);
    const indexed = (r: typeof turn1) => r.speculative!.sources.lookup!.indexed!;
    // a fresh index holds the prompt and the output
    expect(indexed(turn1)).toBe(turn1.timings.promptTokens + turn1.tokens.length);
    expect(indexed(rebuilt)).toBe(rebuilt.timings.promptTokens + rebuilt.tokens.length);
    // turn 2 added to turn 1's index only what came after it: the two together are the rebuilt one
    expect(indexed(turn2)).toBeLessThan(turn2.timings.promptTokens);
    expect(indexed(turn1) + indexed(turn2)).toBe(indexed(rebuilt));
  });
});

describe('free draft options', () => {
  const f = modelFixture(() => STORIES, { threads: 1 });
  it('rejects bad options with clear errors and leaves the context usable', async () => {
    const gen = (o: object) => () => f.ctx.generate('Once', { maxTokens: 2, ...o } as never);
    expect(gen({ lookup: 'yes' })).toThrow(/lookup must be/);
    expect(gen({ lookup: { maxTokens: 0 } })).toThrow(/lookup.maxTokens/);
    expect(gen({ prediction: 5 })).toThrow(/prediction must be/);
    expect(gen({ prediction: [1, 1e9] })).toThrow(/prediction\[1\]/);
    expect(gen({ lookup: true, selfSpeculative: { exitLayer: 2, overlap: true } })).toThrow(/overlap cannot be combined/);
    expect(gen({ lookup: true, freeDraftChoice: 'always' })).toThrow(/freeDraftChoice/);
    await expect(f.ctx.generate('Once', { maxTokens: 4, lookup: true, prediction: 'upon a time' }).result).resolves.toBeDefined();
  });
});
