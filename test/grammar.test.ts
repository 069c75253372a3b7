// Grammar-constrained output (GBNF through llama.cpp's grammar sampler) and JSON-schema output (llama.cpp's
// json-schema-to-grammar): greedy output with every decoding mode equals a reference decoded one
// token at a time with the grammar's mask; sampled output follows the exact masked distribution
// (chi-square), plain and speculative; 100 seeded JSON samples parse and validate.
import { describe, expect, it } from 'vitest';
import { distribution, resolveSampling, type SamplingOptions } from '../lib/decoding/sampling.js';
import { type Context, jsonSchemaToGrammar } from '../lib/index.js';
import { native } from '../lib/native/binding.js';
import { argmax, EXACT, expectSamplesFollow, modelFixture, STORIES } from './helpers.js';

/** Lower-case words and spaces, ending with a full stop: most of the demo model's likely tokens pass, capitals and commas do not. */
const WORDS = 'root ::= [a-z ]+ "." [a-z ]*';

/** Greedy decoding under a grammar, one token at a time through decodeLayers, masking with a state advanced here. */
async function referenceGreedy(ctx: Context, prompt: number[], grammar: string, n: number): Promise<number[]> {
  const state = native().createGrammar(ctx.model.handle, grammar, 'root');
  try {
    ctx.clear();
    let r = await ctx.decodeLayers({ tokens: prompt, logits: true });
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const row = Float32Array.from(r.logits!);
      state.mask(row);
      const t = argmax(row);
      if (ctx.model.handle.isEog(t)) break;
      state.accept(t);
      out.push(t);
      r = await ctx.decodeLayers({ tokens: [t], logits: true });
    }
    return out;
  } finally {
    state.dispose();
  }
}

const SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 8 },
    age: { type: 'integer', minimum: 0, maximum: 99 },
    happy: { type: 'boolean' },
  },
  required: ['name', 'age', 'happy'],
  additionalProperties: false,
};

/** SCHEMA's rules, checked by hand. */
function validates(value: unknown): boolean {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const o = value as Record<string, unknown>;
  if (Object.keys(o).sort().join() !== 'age,happy,name') return false;
  return (
    typeof o.name === 'string' &&
    o.name.length >= 1 &&
    o.name.length <= 8 &&
    Number.isInteger(o.age) &&
    (o.age as number) >= 0 &&
    (o.age as number) <= 99 &&
    typeof o.happy === 'boolean'
  );
}

describe('grammar-constrained generation', () => {
  const f = modelFixture(() => STORIES, { threads: 1, contextSize: 512, ...EXACT });
  const modes = [
    {},
    { selfSpeculative: { exitLayer: 3, draftTokens: 3 } },
    { selfSpeculative: { exitLayer: 2, draftTokens: 4, adaptive: true } },
    { lookup: true, freeDraftChoice: 'eager' as const },
    { lookup: true, freeDraftChoice: 'eager' as const, selfSpeculative: { exitLayer: 3, draftTokens: 2 } },
  ];

  it('greedy output equals the reference with every decoding mode, follows the grammar, and differs from no grammar', async () => {
    for (const text of ['Once upon a time', 'the dog ran and the dog ran and the dog ran and the']) {
      const prompt = f.model.tokenize(text);
      const want = await referenceGreedy(f.ctx, prompt, WORDS, 60);
      const free = await f.ctx.generate(prompt, { maxTokens: 60 }).result;
      expect(free.tokens, 'the grammar changes this output').not.toEqual(want);
      for (const mode of modes) {
        const r = await f.ctx.generate(prompt, { maxTokens: 60, grammar: WORDS, ...mode }).result;
        expect(r.tokens, JSON.stringify(mode)).toEqual(want);
        expect(r.text).toMatch(/^[a-z ]+(\.[a-z ]*)?$/);
      }
    }
  });

  it('sampling under a grammar follows the exact masked distribution (chi-square), plain and speculative', async () => {
    const sampling: SamplingOptions = { temperature: 1.5, topK: 12 };
    const s = resolveSampling({ ...sampling, seed: 0 });
    const prompt = f.model.tokenize('Once upon a time');
    const masked = (row: Float32Array, state: ReturnType<ReturnType<typeof native>['createGrammar']>) => {
      const r = Float32Array.from(row);
      state.mask(r);
      return distribution(r, s);
    };
    const start = native().createGrammar(f.model.handle, WORDS, 'root');
    const exact = new Map<string, number>();
    try {
      f.ctx.clear();
      const p1 = masked((await f.ctx.decodeLayers({ tokens: prompt, logits: true })).logits!, start);
      for (let a = 0; a < p1.length; a++) {
        if (p1[a] === 0) continue;
        const after = start.fork();
        after.accept(a);
        f.ctx.clear();
        const p2 = masked((await f.ctx.decodeLayers({ tokens: [...prompt, a], logits: true })).logits!, after);
        after.dispose();
        for (let b = 0; b < p2.length; b++) if (p2[b] > 0) exact.set(`${a},${b}`, p1[a] * p2[b]);
      }
    } finally {
      start.dispose();
    }
    for (const mode of [{}, { selfSpeculative: { exitLayer: 2, draftTokens: 3 } }, { lookup: true, freeDraftChoice: 'eager' as const }]) {
      await expectSamplesFollow(
        exact,
        1200,
        2,
        async (seed) => (await f.ctx.generate(prompt, { ...sampling, ...mode, grammar: WORDS, seed, maxTokens: 3 }).result).tokens,
      );
    }
  }, 180_000);

  it('a JSON schema: greedy output is valid JSON, the same with every decoding mode and as the reference', async () => {
    const prompt = f.model.tokenize('Once upon a time');
    const want = await referenceGreedy(f.ctx, prompt, jsonSchemaToGrammar(SCHEMA), 200);
    expect(validates(JSON.parse(f.model.detokenize(want)))).toBe(true);
    for (const mode of modes) {
      const r = await f.ctx.generate(prompt, { maxTokens: 200, jsonSchema: SCHEMA, ...mode }).result;
      expect(r.tokens, JSON.stringify(mode)).toEqual(want);
    }
  });

  it('a JSON schema: 100 seeded samples, plain and self-speculative, all parse and validate', async () => {
    let speculative = 0;
    for (let seed = 1; seed <= 100; seed++) {
      const mode = seed % 2 === 0 ? { selfSpeculative: { exitLayer: 3, draftTokens: 3 } } : {};
      if (seed % 2 === 0) speculative++;
      const r = await f.ctx.generate('Once upon a time', { jsonSchema: SCHEMA, temperature: 1, seed, maxTokens: 200, ...mode }).result;
      expect(r.stopReason, `seed ${seed}: ${r.text}`).toBe('eos'); // the grammar let the model end only once complete
      const value = JSON.parse(r.text);
      expect(validates(value), `seed ${seed}: ${r.text}`).toBe(true);
    }
    expect(speculative).toBe(50);
  }, 240_000);

  it('jsonSchemaToGrammar is llama.cpp converter output; bad grammars and options are clear errors', () => {
    const gbnf = jsonSchemaToGrammar(SCHEMA);
    expect(gbnf).toMatch(/^root ::= /m);
    expect(gbnf).toContain('"\\"name\\""');
    expect(() => f.ctx.generate('Once', { grammar: 'root ::= (' })).toThrow(/grammar does not parse/);
    expect(() => f.ctx.generate('Once', { grammar: WORDS, jsonSchema: SCHEMA })).toThrow(/not both/);
    expect(() => f.ctx.generate('Once', { grammar: '' })).toThrow(/non-empty GBNF/);
    expect(() => f.ctx.generate('Once', { jsonSchema: '{"type": ' })).toThrow(RangeError);
    expect(() => f.ctx.generate('Once', { grammar: WORDS, selfSpeculative: { exitLayer: 2, overlap: true } })).toThrow(
      /overlap cannot be combined with grammar/,
    );
  });
});
