// draftVerify: a round's early-exit drafts and their verification in one addon call. Checked
// against the two calls it replaces (draft, then a cached verification) on a second context, and
// checked to be what a single-sequence generation uses.
import { describe, expect, it, vi } from 'vitest';
import type { GenerateOptions } from '../lib/index.js';
import { EXACT, modelFixture, randomModel, SHAPES, STORIES } from './helpers.js';

/** Options with the internal choice 'in-turn': every round in the TypeScript loop. */
const inTurn = (o: GenerateOptions): GenerateOptions => ({ ...o, freeDraftChoice: 'in-turn' }) as GenerateOptions;

const CASES: [string, () => string, number][] = [
  ['stories260K', () => STORIES, 4],
  ['gqa-untied', () => randomModel(SHAPES['gqa-untied']), 5],
];

describe.each(CASES)('draftVerify on %s', (_name, path, E) => {
  const a = modelFixture(path, { ...EXACT, threads: 1, contextSize: 256 });
  const b = modelFixture(path, { ...EXACT, threads: 1, contextSize: 256 });
  const prompt = Int32Array.from([1, 50, 60, 70, 80, 90, 100]);

  /** Both contexts after the same prompt. */
  async function fresh(): Promise<void> {
    for (const f of [a, b]) {
      f.ctx.clear();
      await f.ctx.handle.decode({ tokens: prompt });
    }
  }

  it.each([
    ['drafts with a bonus row', { maxTokens: 4, finish: true }],
    ['drafts without a bonus row', { maxTokens: 3, finish: false }],
    ['a prefix that early exit continues', { maxTokens: 2, finish: true, prefix: Int32Array.of(33, 44, 55) }],
  ])('%s: the same drafts and rows as draft() then a cached verification', async (_label, extra) => {
    await fresh();
    const options = { token: 120, layer: E, ...extra };
    const one = await a.ctx.handle.draftVerify!({ ...options, logits: true });
    const draft = await b.ctx.handle.draft(options);
    const pending = b.ctx.handle.state().nextPosition - prompt.length;
    const verification = await b.ctx.handle.decode({ layers: [E, a.model.info.layerCount], count: pending, outputs: 'all', logits: true });
    expect(Array.from(one.draft.tokens)).toEqual(Array.from(draft.tokens));
    expect(one.draft.lastDecoded).toBe(draft.lastDecoded);
    expect(one.verification.argmax.length).toBe(pending);
    expect(Array.from(one.verification.argmax)).toEqual(Array.from(verification.argmax));
    expect(Array.from(one.verification.logits!)).toEqual(Array.from(verification.logits!));
    // every drafted position now holds all layers: a full decode may follow
    expect(a.ctx.handle.state()).toEqual(b.ctx.handle.state());
    await expect(a.ctx.handle.decode({ tokens: Int32Array.of(7) })).resolves.toBeDefined();
  });

  it('more rows than the batch size: a RangeError, and the context stays usable', async () => {
    await fresh();
    const { batchSize } = a.ctx.handle.state();
    expect(() => a.ctx.handle.draftVerify!({ token: 120, layer: E, maxTokens: batchSize, finish: true })).toThrow(RangeError);
    const before = a.ctx.handle.state().nextPosition;
    await a.ctx.handle.draftVerify!({ token: 120, layer: E, maxTokens: 2, finish: true });
    expect(a.ctx.handle.state().nextPosition).toBeGreaterThan(before);
  });

  // (the in-turn loop, through the internal choice 'in-turn': fixed-length rounds otherwise run in
  // the addon's loop, early-exit-run.test.ts)
  it('a self-speculative generation drafts and verifies in one call per round, with the plain output', async () => {
    a.ctx.clear();
    const plain = await a.ctx.generate(Array.from(prompt), { maxTokens: 40 }).result;
    a.ctx.clear();
    const draftVerify = vi.spyOn(a.ctx.handle, 'draftVerify');
    const draft = vi.spyOn(a.ctx.handle, 'draft');
    const decode = vi.spyOn(a.ctx.handle, 'decode');
    try {
      const spec = await a.ctx.generate(Array.from(prompt), inTurn({ maxTokens: 40, selfSpeculative: { exitLayer: E, draftTokens: 2 } })).result;
      expect(spec.tokens).toEqual(plain.tokens);
      expect(draftVerify).toHaveBeenCalledTimes(spec.speculative!.sources.earlyExit!.rounds);
      expect(spec.speculative!.sources.earlyExit!.rounds).toBeGreaterThan(5);
      expect(draft).not.toHaveBeenCalled();
      expect(decode).toHaveBeenCalledTimes(1); // the prompt
      // the same rounds as drafting and verifying in two calls (the addon without draftVerify)
      vi.restoreAllMocks();
      const handle = a.ctx.handle as { draftVerify?: unknown };
      const saved = handle.draftVerify;
      handle.draftVerify = undefined;
      a.ctx.clear();
      const twoCalls = await a.ctx.generate(Array.from(prompt), inTurn({ maxTokens: 40, selfSpeculative: { exitLayer: E, draftTokens: 2 } })).result;
      handle.draftVerify = saved;
      expect(twoCalls.tokens).toEqual(spec.tokens);
      const counts = (r: typeof spec) => {
        const { rounds, drafted, accepted, draftLengths } = r.speculative!;
        return { rounds, drafted, accepted, draftLengths };
      };
      expect(counts(spec)).toEqual(counts(twoCalls));
    } finally {
      vi.restoreAllMocks();
    }
  });
});
