// writeRandomModel: every architecture in RANDOM_ARCHS loads in the library's llama.cpp, reports
// its architecture and decodes greedily (deterministic, not one repeated token); its 2-layer slice
// loads and gives other logits; the per-architecture tensors, keys and norm jitter are there.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  GEMMA2_SOFTCAPPING,
  GRANITE_SCALES,
  RANDOM_ARCHS,
  archTensorSlots,
  getGgufMetadata,
  readGgufInfo,
  readTensorF32,
  sliceLlamaModel,
  sliceModel,
  writeRandomModel,
  type RandomArch,
  type RandomModelSpec,
} from '../../lib/gguf/index.js';
import { loadModel, type Context, type Model } from '../../lib/index.js';
import { EXACT, randomPrompts, relErr } from '../helpers.js';

const SWA_ARCHS: readonly RandomArch[] = ['gemma2', 'gemma3', 'gpt-oss'];
const UNTIED: readonly RandomArch[] = ['olmo2', 'gpt-oss'];

function specFor(arch: RandomArch, seed: number): RandomModelSpec {
  return {
    arch,
    nLayer: 4,
    nEmbd: 64,
    nHead: 4,
    nHeadKv: 2,
    nFf: 128,
    nVocab: 300,
    nCtx: 256,
    seed,
    tensorType: 'f32',
    tiedOutput: arch === 'gemma2' ? true : UNTIED.includes(arch) ? false : seed % 2 === 0,
    ...(SWA_ARCHS.includes(arch) ? { slidingWindow: 8 } : {}),
    ...(arch === 'qwen3moe' || arch === 'gpt-oss' ? { nExpert: 4, nExpertUsed: 2 } : {}),
  };
}

const CONTEXT = { contextSize: 128, threads: 1, ...EXACT } as const;
/**
 * Architectures the library's model validation (lib/model-file/validation.ts, as committed) refuses
 * although llama.cpp loads them: lfm2's per-layer attention.head_count_kv is 0 on its convolution
 * layers, which checkHyperparameters takes for a head count that does not divide head_count
 * ("attention.head_count 4 is not a multiple of head_count_kv 0"). They load here with
 * `validate: false`, so this file tests the generator and llama.cpp, not the validation.
 */
const VALIDATION_REFUSES: readonly RandomArch[] = ['lfm2'];
const load = (file: string, arch: RandomArch) => loadModel(file, { validate: !VALIDATION_REFUSES.includes(arch) });
const PROMPT = randomPrompts(1, 300, 5, 20, 20)[0];

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerskip-random-model-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const argmax = (row: Float32Array): number => {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
};

/** Plain greedy decoding (no layer range): `n` tokens after `prompt` on a fresh context. */
async function greedy(model: Model, prompt: readonly number[], n: number): Promise<{ tokens: number[]; first: Float32Array }> {
  const ctx: Context = await model.createContext(CONTEXT);
  try {
    let out = await ctx.decodeLayers({ tokens: prompt, logits: true });
    const first = out.logits!.slice();
    const tokens: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = argmax(out.logits!);
      expect(t).toBe(out.argmax[0]);
      tokens.push(t);
      if (i + 1 < n) out = await ctx.decodeLayers({ tokens: [t], logits: true });
    }
    return { tokens, first };
  } finally {
    ctx.dispose();
  }
}

describe.each(RANDOM_ARCHS.map((arch, i) => [arch, 200 + i] as const))('%s', (arch, seed) => {
  const spec = specFor(arch, seed);
  let full: string;
  let sliced: string;
  beforeAll(() => {
    full = path.join(dir, `${arch}.gguf`);
    sliced = path.join(dir, `${arch}-2.gguf`);
    writeRandomModel(full, spec);
    sliceModel(full, sliced, 2);
  });

  it('writes the architecture, its tensors and jittered norms', () => {
    const info = readGgufInfo(full);
    expect(getGgufMetadata(info, 'general.architecture')).toBe(arch);
    expect(getGgufMetadata(info, 'general.name')).not.toMatch(/phi-?3/i);
    expect(getGgufMetadata(info, `${arch}.block_count`)).toBe(4);
    const slots = archTensorSlots(arch, { ...spec, tiedOutput: spec.tiedOutput!, nExpert: 4 });
    expect(info.tensors.map((t) => t.name)).toEqual(slots.map((s) => s.name));
    expect(info.tensors.some((t) => t.name === 'output.weight')).toBe(!spec.tiedOutput);
    const norms = slots.filter((s) => s.init === 'norm');
    expect(norms.length).toBeGreaterThan(4);
    for (const s of norms) {
      const w = readTensorF32(full, info.tensors.find((t) => t.name === s.name)!);
      if (arch === 'llama')
        expect(
          w.every((x) => x === 1),
          s.name,
        ).toBe(true);
      else
        expect(
          w.some((x) => Math.abs(x - 1) > 0.02),
          s.name,
        ).toBe(true);
    }
  });

  it('loads, decodes greedily and deterministically, and its 2-layer slice differs', async () => {
    const model = await load(full, arch);
    let ref: Awaited<ReturnType<typeof greedy>>;
    try {
      expect(model.info.architecture).toBe(arch);
      expect(model.layerCount).toBe(4);
      ref = await greedy(model, PROMPT, 10);
      const again = await greedy(model, PROMPT, 10);
      expect(again.tokens).toEqual(ref.tokens);
      expect(new Set(ref.tokens).size, `greedy output ${ref.tokens.join(' ')}`).toBeGreaterThan(1);
      expect(ref.tokens.every((t) => t >= 0 && t < 300)).toBe(true);
    } finally {
      model.dispose();
    }
    const small = await load(sliced, arch);
    try {
      expect(small.info.architecture).toBe(arch);
      expect(small.layerCount).toBe(2);
      const s = await greedy(small, PROMPT, 1);
      expect(relErr(s.first, ref.first)).toBeGreaterThan(0.05);
    } finally {
      small.dispose();
    }
  });
});

describe('per-architecture keys', () => {
  const md = (arch: RandomArch, key: string) => {
    const file = path.join(dir, `${arch}-keys.gguf`);
    writeRandomModel(file, { ...specFor(arch, 1), nLayer: 2 });
    return getGgufMetadata(readGgufInfo(file), key);
  };
  it('writes the scales, softcaps, windows, head lengths and experts', () => {
    expect(md('granite', 'granite.logit_scale')).toBe(GRANITE_SCALES.logit);
    expect(md('granite', 'granite.embedding_scale')).toBe(GRANITE_SCALES.embedding);
    expect(md('granite', 'granite.residual_scale')).toBe(Math.fround(GRANITE_SCALES.residual));
    expect(md('granite', 'granite.attention.scale')).toBe(1 / 16);
    expect(md('gemma2', 'gemma2.attn_logit_softcapping')).toBe(GEMMA2_SOFTCAPPING.attention);
    expect(md('gemma2', 'gemma2.final_logit_softcapping')).toBe(GEMMA2_SOFTCAPPING.final);
    for (const a of SWA_ARCHS) expect(md(a, `${a}.attention.sliding_window`)).toBe(8);
    expect(md('qwen3', 'qwen3.attention.key_length')).toBe(md('qwen3', 'qwen3.rope.dimension_count'));
    expect(md('gpt-oss', 'gpt-oss.expert_count')).toBe(4);
    expect(md('gpt-oss', 'gpt-oss.expert_used_count')).toBe(2);
    expect(Array.from(md('lfm2', 'lfm2.attention.head_count_kv') as ArrayLike<number>)).toEqual([0, 2]);
  });

  it('qwen2 has random non-zero q/k/v biases; phi3 fuses qkv and gate|up', () => {
    const q = path.join(dir, 'qwen2-bias.gguf');
    writeRandomModel(q, { ...specFor('qwen2', 3), nLayer: 1 });
    const info = readGgufInfo(q);
    for (const n of ['attn_q', 'attn_k', 'attn_v']) {
      const b = readTensorF32(q, info.tensors.find((t) => t.name === `blk.0.${n}.bias`)!);
      expect(b.every((x) => x !== 0)).toBe(true);
      expect(new Set(b).size).toBeGreaterThan(b.length / 2);
    }
    const p = path.join(dir, 'phi3-fused.gguf');
    writeRandomModel(p, { ...specFor('phi3', 3), nLayer: 1 });
    const pi = readGgufInfo(p);
    expect(pi.tensors.find((t) => t.name === 'blk.0.attn_qkv.weight')!.shape).toEqual([64, 64 + 2 * 32]);
    expect(pi.tensors.find((t) => t.name === 'blk.0.ffn_up.weight')!.shape).toEqual([64, 256]);
    expect(pi.tensors.some((t) => t.name === 'blk.0.attn_q.weight' || t.name === 'blk.0.ffn_gate.weight')).toBe(false);
  });

  it('sliceLlamaModel is sliceModel', () => {
    expect(sliceLlamaModel).toBe(sliceModel);
  });
});

describe('spec checks', () => {
  const f = () => path.join(dir, 'invalid.gguf');
  it('rejects options the architecture cannot take, naming them', () => {
    expect(() => writeRandomModel(f(), { ...specFor('gemma2', 1), tiedOutput: false })).toThrow(/gemma2 always ties its output/);
    expect(() => writeRandomModel(f(), { ...specFor('olmo2', 1), tiedOutput: true })).toThrow(/olmo2 needs an untied output.weight/);
    expect(() => writeRandomModel(f(), { ...specFor('llama', 1), slidingWindow: 8 })).toThrow(/slidingWindow applies only to gemma2, gemma3, gpt-oss/);
    expect(() => writeRandomModel(f(), { ...specFor('qwen3', 1), nExpert: 4 })).toThrow(/MoE architectures qwen3moe, gpt-oss/);
    expect(() => writeRandomModel(f(), { ...specFor('qwen3moe', 1), nExpertUsed: 5 })).toThrow(/nExpertUsed \(5\) must be at most nExpert \(4\)/);
    expect(() => writeRandomModel(f(), { ...specFor('phi3', 1), name: 'tiny-Phi3' })).toThrow(/must not contain "phi3"/);
    expect(() => writeRandomModel(f(), { ...specFor('llama', 1), arch: 'gpt2' as RandomArch })).toThrow(/arch must be one of llama, qwen2/);
    expect(() => writeRandomModel(f(), { ...specFor('qwen2', 1), normJitter: -1 })).toThrow(/normJitter/);
    expect(fs.existsSync(f())).toBe(false);
  });

  it('copies a family tokenizer with vocabFrom', async () => {
    const vocab = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'deps', 'llama.cpp', 'models', 'ggml-vocab-gpt-2.gguf');
    const nVocab = (getGgufMetadata(readGgufInfo(vocab), 'tokenizer.ggml.tokens') as string[]).length;
    const file = path.join(dir, 'qwen2-gpt2-vocab.gguf');
    expect(() => writeRandomModel(file, { ...specFor('qwen2', 1), vocabFrom: vocab })).toThrow(/must equal the \d+ tokens of vocabFrom/);
    writeRandomModel(file, { ...specFor('qwen2', 1), nLayer: 1, nVocab, vocabFrom: vocab });
    const info = readGgufInfo(file);
    expect(getGgufMetadata(info, 'tokenizer.ggml.model')).toBe('gpt2');
    const model = await loadModel(file);
    try {
      expect(model.info.vocabularySize).toBe(nVocab);
      const ctx = await model.createContext(CONTEXT);
      const out = await ctx.decodeLayers({ tokens: model.tokenize('Hello world'), logits: true });
      expect(out.logits!.length).toBe(nVocab);
    } finally {
      model.dispose();
    }
  });
});

describe('F16 weights', () => {
  it.each(RANDOM_ARCHS)('%s loads and decodes to finite logits', async (arch) => {
    const file = path.join(dir, `${arch}-f16.gguf`);
    writeRandomModel(file, { ...specFor(arch, 7), nLayer: 2, tensorType: 'f16' });
    const model = await load(file, arch);
    try {
      const { tokens, first } = await greedy(model, PROMPT, 2);
      expect(first.every(Number.isFinite)).toBe(true);
      expect(tokens.length).toBe(2);
    } finally {
      model.dispose();
    }
  });
});
