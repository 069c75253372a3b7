// createModel(): a fresh F32 LLaMA with a copied tokenizer loads, tokenizes like its tokenizer's
// model, decodes, has the from-scratch init statistics, is deterministic, and rejects bad specs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { GgmlType, readGgufInfo, readTensorBytes, readTensorF32, writeGguf, type GgufFileInfo } from '../lib/gguf/index.js';
import { createModel, loadModel, type CreateModelResult, type CreateModelSpec, type Model } from '../lib/index.js';
import { STORIES } from './helpers.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerskip-create-model-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** 2 layers, d 64, 4 heads (MHA), ff 128, tied output, seed 0 (defaults). */
const BASE: CreateModelSpec = { layers: 2, embeddingSize: 64, heads: 4, feedForwardSize: 128, tokenizer: STORIES };
/** 3 layers, GQA (6 heads, 2 KV heads), untied output, non-default hyperparameters. */
const GQA: CreateModelSpec = {
  layers: 3,
  embeddingSize: 96,
  heads: 6,
  headsKv: 2,
  feedForwardSize: 160,
  tokenizer: STORIES,
  contextLength: 256,
  tiedOutput: false,
  seed: 7,
  ropeFreqBase: 500000,
  rmsEps: 1e-6,
  name: 'scratch-gqa',
};
const VOCAB = 512; // stories260K's token count

const TEXTS = ['Once upon a time', 'The dog saw a big red ball.', 'zq xv 42 !? ünïcode 日本', '  two  spaces\nand a newline', ''];

function std(a: Float32Array): { mean: number; std: number } {
  let s = 0;
  for (const x of a) s += x;
  const mean = s / a.length;
  let ss = 0;
  for (const x of a) ss += (x - mean) ** 2;
  return { mean, std: Math.sqrt(ss / a.length) };
}

function tensor(info: GgufFileInfo, name: string): Float32Array {
  const t = info.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`no tensor ${name}`);
  return readTensorF32(info.path, t);
}

function expectedParameters(s: CreateModelSpec): number {
  const d = s.embeddingSize;
  const dKv = (d / s.heads) * (s.headsKv ?? s.heads);
  const perLayer = 2 * d + 2 * d * d + 2 * d * dKv + 3 * d * s.feedForwardSize;
  return VOCAB * d * (s.tiedOutput === false ? 2 : 1) + d + s.layers * perLayer;
}

describe('a created model', () => {
  let base: CreateModelResult;
  let gqa: CreateModelResult;
  let stories: Model;
  beforeAll(async () => {
    base = await createModel(path.join(dir, 'base.gguf'), BASE);
    gqa = await createModel(path.join(dir, 'gqa.gguf'), GQA);
    stories = await loadModel(STORIES);
  });
  afterAll(() => stories?.dispose());

  it('reports its path, parameter count and file size', () => {
    expect(base.path).toBe(path.join(dir, 'base.gguf'));
    expect(base.parameters).toBe(expectedParameters(BASE));
    expect(base.bytes).toBe(fs.statSync(base.path).size);
    expect(gqa.parameters).toBe(expectedParameters(GQA));
    expect(gqa.bytes).toBe(fs.statSync(gqa.path).size);
    expect(fs.readdirSync(dir).sort()).toEqual(['base.gguf', 'gqa.gguf']); // no temporary files left
  });

  it('has llama.cpp LLaMA tensor names and shapes, all F32, and the spec in its metadata', () => {
    const info = readGgufInfo(gqa.path);
    const expected: [string, number[]][] = [['token_embd.weight', [96, VOCAB]]];
    for (let i = 0; i < 3; i++) {
      expected.push(
        [`blk.${i}.attn_norm.weight`, [96]],
        [`blk.${i}.attn_q.weight`, [96, 96]],
        [`blk.${i}.attn_k.weight`, [96, 32]],
        [`blk.${i}.attn_v.weight`, [96, 32]],
        [`blk.${i}.attn_output.weight`, [96, 96]],
        [`blk.${i}.ffn_norm.weight`, [96]],
        [`blk.${i}.ffn_gate.weight`, [96, 160]],
        [`blk.${i}.ffn_up.weight`, [96, 160]],
        [`blk.${i}.ffn_down.weight`, [160, 96]],
      );
    }
    expected.push(['output_norm.weight', [96]], ['output.weight', [96, VOCAB]]);
    expect(info.tensors.map((t) => [t.name, t.shape])).toEqual(expected);
    expect(info.tensors.every((t) => t.type === GgmlType.F32)).toBe(true);
    expect(readGgufInfo(base.path).tensors.some((t) => t.name === 'output.weight')).toBe(false); // tied by default

    const meta = (k: string) => info.metadata.get(k)?.value;
    expect(meta('general.architecture')).toBe('llama');
    expect(meta('general.name')).toBe('scratch-gqa');
    expect(meta('general.file_type')).toBe(0);
    expect(meta('llama.block_count')).toBe(3);
    expect(meta('llama.embedding_length')).toBe(96);
    expect(meta('llama.feed_forward_length')).toBe(160);
    expect(meta('llama.attention.head_count')).toBe(6);
    expect(meta('llama.attention.head_count_kv')).toBe(2);
    expect(meta('llama.rope.dimension_count')).toBe(16);
    expect(meta('llama.rope.freq_base')).toBe(500000);
    expect(meta('llama.attention.layer_norm_rms_epsilon')).toBe(Math.fround(1e-6));
    expect(meta('llama.context_length')).toBe(256);
    expect(meta('llama.vocab_size')).toBe(VOCAB);
    const baseInfo = readGgufInfo(base.path);
    expect(baseInfo.metadata.get('llama.context_length')?.value).toBe(2048);
    expect(baseInfo.metadata.get('llama.rope.freq_base')?.value).toBe(10000);
    expect(baseInfo.metadata.get('llama.attention.layer_norm_rms_epsilon')?.value).toBe(Math.fround(1e-5));
  });

  it('copies every tokenizer.* key of the tokenizer file verbatim', () => {
    const src = readGgufInfo(STORIES);
    const tokenizerKeys = (i: GgufFileInfo) => [...i.metadata].filter(([k]) => k.startsWith('tokenizer.'));
    expect(tokenizerKeys(src).length).toBeGreaterThan(5);
    expect(tokenizerKeys(readGgufInfo(base.path))).toEqual(tokenizerKeys(src));
    expect(tokenizerKeys(readGgufInfo(gqa.path))).toEqual(tokenizerKeys(src));
  });

  it('loads with loadModel, its info matching the spec', async () => {
    for (const [res, spec] of [
      [base, BASE],
      [gqa, GQA],
    ] as const) {
      const model = await loadModel(res.path);
      try {
        expect(model.info).toMatchObject({
          architecture: 'llama',
          layerCount: spec.layers,
          embeddingSize: spec.embeddingSize,
          headCount: spec.heads,
          headCountKv: spec.headsKv ?? spec.heads,
          vocabularySize: VOCAB,
          trainContextLength: spec.contextLength ?? 2048,
          parameterCount: res.parameters,
        });
        expect(model.info.specialTokens).toEqual(stories.info.specialTokens);
      } finally {
        model.dispose();
      }
    }
    const model = await loadModel(gqa.path);
    expect(model.info.name).toBe('scratch-gqa');
    model.dispose();
  });

  it('tokenizes and detokenizes exactly as stories260K', async () => {
    const model = await loadModel(base.path);
    try {
      for (const text of TEXTS) {
        for (const options of [{}, { addBos: false }, { special: true }]) {
          const ids = model.tokenize(text, options);
          expect(ids, JSON.stringify(text)).toEqual(stories.tokenize(text, options));
          expect(model.detokenize(ids)).toBe(stories.detokenize(ids));
        }
      }
      expect(model.tokenize('Once upon a time').length).toBeGreaterThan(2);
    } finally {
      model.dispose();
    }
  });

  it('decodes: a short greedy generate runs', async () => {
    for (const res of [base, gqa]) {
      const model = await loadModel(res.path);
      try {
        const ctx = await model.createContext({ contextSize: 128, threads: 1 });
        const r = await ctx.generate('Once upon a time', { maxTokens: 6 }).result;
        expect(['maxTokens', 'eos']).toContain(r.stopReason);
        if (r.stopReason === 'maxTokens') expect(r.tokens.length).toBe(6);
        for (const t of r.tokens) expect(t >= 0 && t < VOCAB).toBe(true);
        // greedy (temperature 0 is the default): the same prompt gives the same tokens again
        ctx.clear();
        expect((await ctx.generate('Once upon a time', { maxTokens: 6 }).result).tokens).toEqual(r.tokens);
      } finally {
        model.dispose();
      }
    }
  });

  it('has the from-scratch init: matrices N(0, 0.02^2), residual projections 0.02/sqrt(2L), norms exactly 1', () => {
    for (const [res, spec] of [
      [base, BASE],
      [gqa, GQA],
    ] as const) {
      const info = readGgufInfo(res.path);
      const residualStd = 0.02 / Math.sqrt(2 * spec.layers);
      for (const t of info.tensors) {
        const data = tensor(info, t.name);
        if (t.shape.length === 1) {
          expect(
            data.every((x) => x === 1),
            t.name,
          ).toBe(true);
          continue;
        }
        const target = /attn_output|ffn_down/.test(t.name) ? residualStd : 0.02;
        const s = std(data);
        expect(Math.abs(s.std / target - 1), `${t.name} std ${s.std} vs ${target}`).toBeLessThan(0.05);
        expect(Math.abs(s.mean), t.name).toBeLessThan(target * 0.05);
      }
      // the two checks of the brief, named
      expect(std(tensor(info, 'blk.0.attn_q.weight')).std).toBeCloseTo(0.02, 3);
      expect(Math.abs(std(tensor(info, 'blk.1.ffn_down.weight')).std / residualStd - 1)).toBeLessThan(0.05);
      // each tensor has its own draws
      expect(tensor(info, 'blk.0.attn_q.weight')).not.toEqual(tensor(info, 'blk.1.attn_q.weight'));
    }
  });

  it('initStd scales every matrix: N(0, s^2), residual projections s/sqrt(2L)', async () => {
    const s = 1 / Math.sqrt(BASE.embeddingSize);
    const res = await createModel(path.join(dir, 'init-std.gguf'), { ...BASE, initStd: s });
    const info = readGgufInfo(res.path);
    expect(Math.abs(std(tensor(info, 'blk.0.attn_q.weight')).std / s - 1)).toBeLessThan(0.05);
    expect(Math.abs(std(tensor(info, 'token_embd.weight')).std / s - 1)).toBeLessThan(0.05);
    expect(Math.abs(std(tensor(info, 'blk.1.ffn_down.weight')).std / (s / Math.sqrt(2 * BASE.layers)) - 1)).toBeLessThan(0.05);
  });
});

describe('determinism', () => {
  it('the same seed gives identical bytes, another seed other weights', async () => {
    const a = await createModel(path.join(dir, 'det-a.gguf'), { ...BASE, seed: 5, name: 'det' });
    const b = await createModel(path.join(dir, 'det-b.gguf'), { ...BASE, seed: 5, name: 'det' });
    const c = await createModel(path.join(dir, 'det-c.gguf'), { ...BASE, seed: 6, name: 'det' });
    expect(fs.readFileSync(a.path).equals(fs.readFileSync(b.path))).toBe(true);
    expect(c.bytes).toBe(a.bytes);
    const ia = readGgufInfo(a.path);
    const ic = readGgufInfo(c.path);
    expect(ic.tensors.map((t) => t.name)).toEqual(ia.tensors.map((t) => t.name));
    for (let i = 0; i < ia.tensors.length; i++) {
      const same = readTensorBytes(a.path, ia.tensors[i]).equals(readTensorBytes(c.path, ic.tensors[i]));
      expect(same, ia.tensors[i].name).toBe(ia.tensors[i].shape.length === 1); // only the norms (all 1) agree
    }
    // the default seed is 0
    const d0 = await createModel(path.join(dir, 'det-0.gguf'), { ...BASE, name: 'det' });
    const d0b = await createModel(path.join(dir, 'det-0b.gguf'), { ...BASE, seed: 0, name: 'det' });
    expect(fs.readFileSync(d0.path).equals(fs.readFileSync(d0b.path))).toBe(true);
  });

  it('overwrites an existing file', async () => {
    const p = path.join(dir, 'over.gguf');
    fs.writeFileSync(p, 'old');
    const r = await createModel(p, BASE);
    expect(fs.statSync(p).size).toBe(r.bytes);
  });
});

describe('validation', () => {
  // a file name per test, so that one test's wrongly written file cannot fail the next
  let n = 0;
  let current = '';
  beforeEach(() => {
    current = path.join(dir, `invalid-${n++}.gguf`);
  });
  const out = () => current;

  const cases: [string, unknown, typeof Error, RegExp][] = [
    ['layers 0', { ...BASE, layers: 0 }, RangeError, /spec\.layers must be a positive integer/],
    ['layers 1.5', { ...BASE, layers: 1.5 }, RangeError, /spec\.layers/],
    ['layers "2"', { ...BASE, layers: '2' }, TypeError, /spec\.layers/],
    ['embeddingSize missing', { ...BASE, embeddingSize: undefined }, TypeError, /spec\.embeddingSize/],
    ['heads -4', { ...BASE, heads: -4 }, RangeError, /spec\.heads must be a positive integer/],
    ['headsKv 0', { ...BASE, headsKv: 0 }, RangeError, /spec\.headsKv/],
    ['feedForwardSize NaN', { ...BASE, feedForwardSize: NaN }, RangeError, /spec\.feedForwardSize/],
    ['contextLength 0', { ...BASE, contextLength: 0 }, RangeError, /spec\.contextLength/],
    ['embeddingSize not divisible by heads', { ...BASE, embeddingSize: 66 }, RangeError, /spec\.embeddingSize \(66\) must be divisible by spec\.heads \(4\)/],
    ['heads not divisible by headsKv', { ...BASE, headsKv: 3 }, RangeError, /spec\.heads \(4\) must be divisible by spec\.headsKv \(3\)/],
    ['odd head dim', { ...BASE, embeddingSize: 12 }, RangeError, /head dimension .* = 3 must be even/],
    ['tiedOutput "yes"', { ...BASE, tiedOutput: 'yes' }, TypeError, /spec\.tiedOutput must be a boolean/],
    ['seed 1.5', { ...BASE, seed: 1.5 }, RangeError, /spec\.seed must be a safe integer/],
    ['seed 2^60', { ...BASE, seed: 2 ** 60 }, RangeError, /spec\.seed/],
    ['seed "1"', { ...BASE, seed: '1' }, TypeError, /spec\.seed/],
    ['ropeFreqBase 0', { ...BASE, ropeFreqBase: 0 }, RangeError, /spec\.ropeFreqBase/],
    ['rmsEps Infinity', { ...BASE, rmsEps: Infinity }, RangeError, /spec\.rmsEps/],
    ['initStd 0', { ...BASE, initStd: 0 }, RangeError, /spec\.initStd/],
    ['initStd "0.1"', { ...BASE, initStd: '0.1' }, TypeError, /spec\.initStd/],
    ['name 5', { ...BASE, name: 5 }, TypeError, /spec\.name must be a string/],
    ['tokenizer missing', { ...BASE, tokenizer: undefined }, TypeError, /spec\.tokenizer must be the path/],
    ['unknown key', { ...BASE, tiedOuput: false }, TypeError, /unknown spec key "tiedOuput" \(did you mean "tiedOutput"\?\)/],
    ['unknown key, nothing near', { ...BASE, quantization: 'q4_0' }, TypeError, /unknown spec key "quantization"; known keys: layers, /],
    ['spec null', null, TypeError, /spec must be an object/],
  ];
  for (const [label, spec, cls, re] of cases) {
    it(`rejects ${label}`, async () => {
      const err = await createModel(out(), spec as CreateModelSpec).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(cls);
      expect((err as Error).message).toMatch(re);
      expect(fs.existsSync(out())).toBe(false);
    });
  }

  it('rejects a tokenizer file that does not exist', async () => {
    const missing = path.join(dir, 'no-such-tokenizer.gguf');
    const err = (await createModel(out(), { ...BASE, tokenizer: missing }).catch((e: unknown) => e)) as NodeJS.ErrnoException;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/spec\.tokenizer: cannot read .*no-such-tokenizer\.gguf/);
    expect(err.code).toBe('ENOENT');
    expect(fs.existsSync(out())).toBe(false);
  });

  it('rejects a tokenizer that is not a GGUF file, or a GGUF without tokenizer.ggml.tokens', async () => {
    const text = path.join(dir, 'not-gguf.txt');
    fs.writeFileSync(text, 'hello, not a model');
    await expect(createModel(out(), { ...BASE, tokenizer: text })).rejects.toThrow(/spec\.tokenizer: .*not-gguf\.txt is not a readable GGUF file/);
    const bare = path.join(dir, 'no-tokenizer.gguf');
    writeGguf(bare, [['general.architecture', { type: 'string', value: 'llama' }]], [{ name: 'x', shape: [4], type: GgmlType.F32, data: new Float32Array(4) }]);
    await expect(createModel(out(), { ...BASE, tokenizer: bare })).rejects.toThrow(
      /spec\.tokenizer: .*no-tokenizer\.gguf has no tokenizer \(tokenizer\.ggml\.tokens/,
    );
    await expect(createModel(out(), { ...BASE, tokenizer: dir })).rejects.toThrow(/spec\.tokenizer: .* is not a file/);
    expect(fs.existsSync(out())).toBe(false);
    fs.rmSync(text);
    fs.rmSync(bare);
  });

  it('rejects a bad path', async () => {
    await expect(createModel('', BASE)).rejects.toThrow(TypeError);
    await expect(createModel(5 as unknown as string, BASE)).rejects.toThrow(/path must be a non-empty string/);
  });
});

describe('failed writes', () => {
  it('a destination directory that does not exist rejects and leaves no temporary file', async () => {
    const parent = fs.mkdtempSync(path.join(dir, 'fail-'));
    const dest = path.join(parent, 'missing-dir', 'model.gguf');
    const err = (await createModel(dest, BASE).catch((e: unknown) => e)) as NodeJS.ErrnoException;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/cannot write .*missing-dir.*model\.gguf/);
    expect(err.code).toBe('ENOENT');
    expect(fs.existsSync(path.join(parent, 'missing-dir'))).toBe(false);
    expect(fs.readdirSync(parent)).toEqual([]);
  });

  it('a failure after the data is written (the rename onto a non-empty directory) removes the temporary file', async () => {
    const parent = fs.mkdtempSync(path.join(dir, 'fail-'));
    const dest = path.join(parent, 'occupied');
    fs.mkdirSync(dest);
    fs.writeFileSync(path.join(dest, 'keep'), 'x');
    await expect(createModel(dest, BASE)).rejects.toThrow(/cannot write .*occupied/);
    expect(fs.readdirSync(parent)).toEqual(['occupied']);
    expect(fs.readdirSync(dest)).toEqual(['keep']);
  });
});
