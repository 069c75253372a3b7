import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  GgmlType,
  LlamaTokenType,
  SPM_SPACE,
  Xoshiro128,
  buildSpmVocab,
  getGgufMetadata,
  getUnitNormalTable,
  readGgufInfo,
  readTensorBytes,
  readTensorF32,
  sliceLlamaModel,
  writeGguf,
  writeRandomLlamaModel,
  type RandomLlamaSpec,
} from '../../lib/gguf/index.js';
import { STORIES } from '../helpers.js';

const SPEC: RandomLlamaSpec = {
  nLayer: 3,
  nEmbd: 64,
  nHead: 4,
  nHeadKv: 2,
  nFf: 96,
  nVocab: 600,
  nCtx: 128,
  tiedOutput: false,
  seed: 42,
  tensorType: 'f16',
  lateLayerScale: { fromLayer: 2, scale: 0.1 },
};

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerskip-gguf-random-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

function std(a: Float32Array): number {
  let s = 0;
  let s2 = 0;
  for (const x of a) {
    s += x;
    s2 += x * x;
  }
  const m = s / a.length;
  return Math.sqrt(s2 / a.length - m * m);
}

describe('random numbers', () => {
  it('xoshiro128** is deterministic and roughly uniform', () => {
    const a = new Xoshiro128(7);
    const b = new Xoshiro128(7);
    const c = new Xoshiro128(8);
    const xs = Array.from({ length: 1000 }, () => a.nextU32());
    expect(Array.from({ length: 1000 }, () => b.nextU32())).toEqual(xs);
    expect(Array.from({ length: 1000 }, () => c.nextU32())).not.toEqual(xs);
    const mean = xs.reduce((s, x) => s + x / 2 ** 32, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.45);
    expect(mean).toBeLessThan(0.55);
  });

  it('normal table has unit variance and samples look normal', () => {
    const t = getUnitNormalTable();
    expect(t.length).toBe(65536);
    expect(t[32768] + t[32767]).toBeCloseTo(0, 12);
    const out = new Float32Array(200000);
    new Xoshiro128(1).fillFromTable(out, Float32Array.from(t));
    expect(std(out)).toBeGreaterThan(0.99);
    expect(std(out)).toBeLessThan(1.01);
    const within1 = out.filter((x) => Math.abs(x) < 1).length / out.length;
    expect(within1).toBeCloseTo(0.6827, 2);
  });
});

describe('vocabulary', () => {
  it('has the fixed layout and unique pieces', () => {
    const v = buildSpmVocab(128256);
    expect(v.tokens.length).toBe(128256);
    expect(new Set(v.tokens).size).toBe(128256);
    expect(v.tokens.slice(0, 3)).toEqual(['<unk>', '<s>', '</s>']);
    expect(Array.from(v.types.slice(0, 3))).toEqual([2, 3, 3]);
    expect(v.tokens[3]).toBe('<0x00>');
    expect(v.tokens[3 + 0x0a]).toBe('<0x0A>');
    expect(v.tokens[258]).toBe('<0xFF>');
    expect(v.types.slice(3, 259).every((t) => t === LlamaTokenType.BYTE)).toBe(true);
    expect(v.types.slice(259).every((t) => t === LlamaTokenType.NORMAL)).toBe(true);
    expect(v.tokens).toContain(`${SPM_SPACE}Once`);
    expect(v.tokens).toContain('a');
    expect(v.tokens).toContain(`${SPM_SPACE}a`);
    expect(v.scores[300]).toBe(-300);
    expect(v.scores[300]).toBeGreaterThan(v.scores[301]);
  });

  it('rejects too small vocabularies', () => {
    expect(() => buildSpmVocab(259)).toThrow(/nVocab must be an integer >= 260/);
    expect(buildSpmVocab(260).tokens[259]).toBe(SPM_SPACE);
  });
});

describe('writeRandomLlamaModel', () => {
  it('writes the llama metadata and tensor table', () => {
    const file = path.join(dir, 'meta.gguf');
    const res = writeRandomLlamaModel(file, SPEC);
    const info = readGgufInfo(file);
    const md = (k: string) => getGgufMetadata(info, k);
    expect(md('general.architecture')).toBe('llama');
    expect(typeof md('general.name')).toBe('string');
    expect(md('llama.context_length')).toBe(128);
    expect(md('llama.embedding_length')).toBe(64);
    expect(md('llama.block_count')).toBe(3);
    expect(md('llama.feed_forward_length')).toBe(96);
    expect(md('llama.attention.head_count')).toBe(4);
    expect(md('llama.attention.head_count_kv')).toBe(2);
    expect(md('llama.attention.layer_norm_rms_epsilon')).toBe(Math.fround(1e-5));
    expect(md('llama.rope.dimension_count')).toBe(16);
    expect(md('llama.rope.freq_base')).toBe(10000);
    expect(md('llama.vocab_size')).toBe(600);
    expect(md('tokenizer.ggml.model')).toBe('llama');
    expect((md('tokenizer.ggml.tokens') as string[]).length).toBe(600);
    expect(md('tokenizer.ggml.bos_token_id')).toBe(1);
    expect(md('tokenizer.ggml.eos_token_id')).toBe(2);
    expect(md('tokenizer.ggml.unknown_token_id')).toBe(0);
    expect(md('tokenizer.ggml.add_bos_token')).toBe(true);
    for (const k of ['llama.context_length', 'llama.block_count', 'tokenizer.ggml.bos_token_id']) {
      expect(info.metadata.get(k)!.type).toBe('u32');
    }
    expect(info.metadata.get('tokenizer.ggml.scores')).toMatchObject({ type: 'array', itemType: 'f32' });
    expect(info.metadata.get('tokenizer.ggml.token_type')).toMatchObject({ type: 'array', itemType: 'i32' });

    const byName = new Map(info.tensors.map((t) => [t.name, t]));
    expect(info.tensors.length).toBe(3 + 3 * 9);
    expect(res.nParams).toBe(info.tensors.reduce((s, t) => s + t.nElements, 0));
    expect(byName.get('token_embd.weight')).toMatchObject({ shape: [64, 600], type: GgmlType.F16 });
    expect(byName.get('output.weight')).toMatchObject({ shape: [64, 600], type: GgmlType.F16 });
    expect(byName.get('output_norm.weight')).toMatchObject({ shape: [64], type: GgmlType.F32 });
    expect(byName.get('blk.2.attn_q.weight')!.shape).toEqual([64, 64]);
    expect(byName.get('blk.2.attn_k.weight')!.shape).toEqual([64, 32]);
    expect(byName.get('blk.2.attn_v.weight')!.shape).toEqual([64, 32]);
    expect(byName.get('blk.2.attn_output.weight')!.shape).toEqual([64, 64]);
    expect(byName.get('blk.2.ffn_gate.weight')!.shape).toEqual([64, 96]);
    expect(byName.get('blk.2.ffn_up.weight')!.shape).toEqual([64, 96]);
    expect(byName.get('blk.2.ffn_down.weight')!.shape).toEqual([96, 64]);
    expect(byName.get('blk.0.attn_norm.weight')).toMatchObject({ shape: [64], type: GgmlType.F32 });
    expect(byName.get('blk.0.ffn_norm.weight')).toMatchObject({ shape: [64], type: GgmlType.F32 });

    // init scales
    const read = (n: string) => readTensorF32(file, byName.get(n)!);
    expect(Array.from(read('blk.1.attn_norm.weight')).every((x) => x === 1)).toBe(true);
    expect(std(read('blk.0.attn_q.weight'))).toBeCloseTo(1 / 8, 2);
    expect(std(read('blk.0.ffn_down.weight'))).toBeCloseTo(4 / Math.sqrt(96), 2); // residualGain 4
    expect(std(read('blk.0.attn_output.weight'))).toBeCloseTo(4 / 8, 2);
    expect(std(read('token_embd.weight'))).toBeCloseTo(4 / 8, 1);
    // lateLayerScale: layer 2 attn_output / ffn_down are 10x smaller than layer 1's
    expect(std(read('blk.2.attn_output.weight')) / std(read('blk.1.attn_output.weight'))).toBeCloseTo(0.1, 2);
    expect(std(read('blk.2.ffn_down.weight')) / std(read('blk.1.ffn_down.weight'))).toBeCloseTo(0.1, 2);
    expect(std(read('blk.2.ffn_up.weight')) / std(read('blk.1.ffn_up.weight'))).toBeCloseTo(1, 1);
  });

  it('is deterministic for a seed and differs across seeds', () => {
    const a = path.join(dir, 'a.gguf');
    const b = path.join(dir, 'b.gguf');
    const c = path.join(dir, 'c.gguf');
    writeRandomLlamaModel(a, SPEC);
    writeRandomLlamaModel(b, SPEC);
    writeRandomLlamaModel(c, { ...SPEC, seed: 43 });
    expect(sha256(a)).toBe(sha256(b));
    expect(sha256(a)).not.toBe(sha256(c));
    // same size and header layout, different weights
    const ia = readGgufInfo(a);
    const ic = readGgufInfo(c);
    expect(ic.fileSize).toBe(ia.fileSize);
    const t = ia.tensors.find((x) => x.name === 'blk.0.attn_q.weight')!;
    expect(readTensorBytes(a, t).equals(readTensorBytes(c, t))).toBe(false);
  });

  it('F16 weights are the F16 rounding of the F32 weights (same stream)', () => {
    const f16 = path.join(dir, 'w16.gguf');
    const f32 = path.join(dir, 'w32.gguf');
    writeRandomLlamaModel(f16, { ...SPEC, nLayer: 1, lateLayerScale: undefined });
    writeRandomLlamaModel(f32, { ...SPEC, nLayer: 1, lateLayerScale: undefined, tensorType: 'f32' });
    const i16 = readGgufInfo(f16);
    const i32 = readGgufInfo(f32);
    const name = 'blk.0.ffn_up.weight';
    const a = readTensorF32(f16, i16.tensors.find((t) => t.name === name)!);
    const b = readTensorF32(f32, i32.tensors.find((t) => t.name === name)!);
    let maxErr = 0;
    for (let i = 0; i < a.length; i++) maxErr = Math.max(maxErr, Math.abs(a[i] - b[i]));
    expect(maxErr).toBeGreaterThan(0);
    expect(maxErr).toBeLessThan(1e-3);
  });

  it('validates the spec with clear errors', () => {
    const f = path.join(dir, 'invalid.gguf');
    expect(() => writeRandomLlamaModel(f, { ...SPEC, nEmbd: 65 })).toThrow(/nEmbd \(65\) must be divisible by nHead/);
    expect(() => writeRandomLlamaModel(f, { ...SPEC, nHeadKv: 3 })).toThrow(/divisible by nHeadKv/);
    expect(() => writeRandomLlamaModel(f, { ...SPEC, nVocab: 100 })).toThrow(/nVocab must be >= 260/);
    expect(() => writeRandomLlamaModel(f, { ...SPEC, nLayer: 0 })).toThrow(/nLayer must be a positive integer/);
    expect(() => writeRandomLlamaModel(f, { ...SPEC, nEmbd: 12, nHead: 4, nHeadKv: 4 })).toThrow(/head dim .* even/);
    expect(() => writeRandomLlamaModel(f, { ...SPEC, lateLayerScale: { fromLayer: 9, scale: 1 } })).toThrow(/fromLayer must be an integer in \[0, nLayer=3\]/);
    expect(() => writeRandomLlamaModel(f, { ...SPEC, tensorType: 'q8' as 'f16' })).toThrow(/tensorType/);
    expect(() => writeRandomLlamaModel(f, { ...SPEC, residualGain: 0 })).toThrow(/residualGain must be a positive number/);
    expect(fs.existsSync(f)).toBe(false);
  });
});

describe('sliceLlamaModel', () => {
  it('keeps blocks < n and copies tensor bytes and metadata unchanged', () => {
    const src = path.join(dir, 'src.gguf');
    const dst = path.join(dir, 'dst.gguf');
    writeRandomLlamaModel(src, SPEC);
    sliceLlamaModel(src, dst, 2);
    const s = readGgufInfo(src);
    const d = readGgufInfo(dst);
    expect(getGgufMetadata(d, 'llama.block_count')).toBe(2);
    expect(d.metadata.get('llama.block_count')!.type).toBe('u32');
    expect([...d.metadata.keys()]).toEqual([...s.metadata.keys()]);
    for (const [k, v] of s.metadata) if (k !== 'llama.block_count') expect(d.metadata.get(k), k).toEqual(v);
    expect(d.tensors.map((t) => t.name)).toEqual(s.tensors.map((t) => t.name).filter((n) => !n.startsWith('blk.2.')));
    for (const t of d.tensors) {
      const st = s.tensors.find((x) => x.name === t.name)!;
      expect(t.shape).toEqual(st.shape);
      expect(t.type).toBe(st.type);
      expect(readTensorBytes(dst, t).equals(readTensorBytes(src, st)), t.name).toBe(true);
    }
    expect(() => sliceLlamaModel(src, dst, 4)).toThrow(/nLayers must be an integer in \[1, 3\]/);
    expect(() => sliceLlamaModel(src, dst, 0)).toThrow(/nLayers/);
  });

  it('copies quantized tensors byte for byte', () => {
    const src = path.join(dir, 'q.gguf');
    const dst = path.join(dir, 'q-slice.gguf');
    const bytes = (n: number, salt: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + salt) & 0xff));
    const tensors = [
      { name: 'token_embd.weight', shape: [256, 3], type: GgmlType.Q4_K, data: bytes(144 * 3, 1) },
      { name: 'blk.0.attn_q.weight', shape: [64, 2], type: GgmlType.Q8_0, data: bytes(34 * 4, 2) },
      { name: 'blk.1.attn_q.weight', shape: [64, 2], type: GgmlType.Q4_0, data: bytes(18 * 4, 3) },
      { name: 'blk.0.ffn_down.weight', shape: [256, 1], type: GgmlType.Q6_K, data: bytes(210, 4) },
      { name: 'blk.0.ffn_up.weight', shape: [256, 1], type: GgmlType.Q5_K, data: bytes(176, 5) },
      { name: 'output_norm.weight', shape: [7], type: GgmlType.BF16, data: bytes(14, 6) },
    ];
    writeGguf(
      src,
      [
        ['general.architecture', { type: 'string', value: 'llama' }],
        ['llama.block_count', { type: 'u32', value: 2 }],
      ],
      tensors,
    );
    sliceLlamaModel(src, dst, 1);
    const d = readGgufInfo(dst);
    expect(d.tensors.map((t) => t.name)).toEqual([
      'token_embd.weight',
      'blk.0.attn_q.weight',
      'blk.0.ffn_down.weight',
      'blk.0.ffn_up.weight',
      'output_norm.weight',
    ]);
    for (const t of d.tensors) {
      const orig = tensors.find((x) => x.name === t.name)!;
      expect(readTensorBytes(dst, t).equals(orig.data), t.name).toBe(true);
    }
  });

  it('slices the real stories260K model', (ctx) => {
    if (!fs.existsSync(STORIES)) {
      if (process.env.CI) throw new Error(`missing ${STORIES}`);
      ctx.skip();
    }
    const dst = path.join(dir, 'stories-2.gguf');
    sliceLlamaModel(STORIES, dst, 2);
    const s = readGgufInfo(STORIES);
    const d = readGgufInfo(dst);
    expect(getGgufMetadata(d, 'llama.block_count')).toBe(2);
    expect(d.tensors.length).toBe(48 - 3 * 9);
    for (const t of d.tensors) {
      const st = s.tensors.find((x) => x.name === t.name)!;
      expect(readTensorBytes(dst, t).equals(readTensorBytes(STORIES, st)), t.name).toBe(true);
    }
  });
});
