/**
 * Independent checks with llama.cpp (through the node-llama-cpp npm package, CPU prebuilt binary):
 * the generated / sliced GGUF files load, tokenize and generate.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { getLlama, LlamaLogLevel, readGgufFileInfo, type Llama, type LlamaModel, type Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { buildSpmVocab, readGgufInfo, sliceLlamaModel, writeRandomLlamaModel, type RandomLlamaSpec } from '../../lib/gguf/index.js';
import { STORIES } from '../helpers.js';

const MHA_TIED_F32: RandomLlamaSpec = {
  nLayer: 2,
  nEmbd: 64,
  nHead: 4,
  nHeadKv: 4,
  nFf: 128,
  nVocab: 512,
  nCtx: 256,
  tiedOutput: true,
  seed: 1,
  tensorType: 'f32',
};

const GQA_UNTIED_F16: RandomLlamaSpec = {
  nLayer: 6,
  nEmbd: 128,
  nHead: 8,
  nHeadKv: 2,
  nFf: 320,
  nVocab: 2000,
  nCtx: 512,
  tiedOutput: false,
  seed: 2,
  tensorType: 'f16',
  ropeFreqBase: 500000,
  rmsEps: 1e-6,
  lateLayerScale: { fromLayer: 3, scale: 0.05 },
};

const PROMPTS = ['Once upon a time', 'The dog saw a big red ball', 'zq xv 42 !?', 'She said hello to her friend'];

let dir: string;
let llama: Llama;
const files: Record<string, string> = {};

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerskip-gguf-llama-'));
  files.mha = path.join(dir, 'mha-tied-f32.gguf');
  files.gqa = path.join(dir, 'gqa-untied-f16.gguf');
  files.gqaSlice = path.join(dir, 'gqa-slice3.gguf');
  writeRandomLlamaModel(files.mha, MHA_TIED_F32);
  writeRandomLlamaModel(files.gqa, GQA_UNTIED_F16);
  sliceLlamaModel(files.gqa, files.gqaSlice, 3);
  llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
}, 60_000);

afterAll(async () => {
  await llama?.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function withModel<T>(modelPath: string, fn: (model: LlamaModel) => Promise<T>): Promise<T> {
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  try {
    return await fn(model);
  } finally {
    await model.dispose();
  }
}

// Note: threads: 1. With 2 threads on a 2-core machine, ggml's spinning worker threads starve the
// Node thread and single-token steps sometimes take seconds.

/** Greedy continuation of each prompt (BOS + prompt tokens), `n` tokens. */
async function greedy(model: LlamaModel, prompts: string[], n: number): Promise<Token[][]> {
  const context = await model.createContext({ contextSize: 128, threads: 1, sequences: 1 });
  try {
    const seq = context.getSequence();
    const outs: Token[][] = [];
    for (const prompt of prompts) {
      await seq.clearHistory();
      const out: Token[] = [];
      for await (const tok of seq.evaluate([model.tokens.bos!, ...model.tokenize(prompt)], { temperature: 0 })) {
        out.push(tok);
        if (out.length >= n) break;
      }
      outs.push(out);
    }
    return outs;
  } finally {
    await context.dispose();
  }
}

/** Teacher-forced greedy next-token prediction at every position of `tokens`. */
async function argmaxAtEachPosition(model: LlamaModel, tokens: Token[]): Promise<Token[]> {
  const context = await model.createContext({ contextSize: 128, threads: 1, sequences: 1 });
  try {
    const res = await context.getSequence().controlledEvaluate(tokens.map((t) => [t, { generateNext: { token: true, options: { temperature: 0 } } }]));
    return tokens.map((_, i) => res[i]!.next.token!);
  } finally {
    await context.dispose();
  }
}

describe('llama.cpp accepts generated GGUF files', () => {
  it('node-llama-cpp GGUF parser agrees with our reader', async () => {
    for (const file of [files.mha, files.gqa, files.gqaSlice]) {
      const theirs = await readGgufFileInfo(file, { readTensorInfo: true, logWarnings: false });
      const ours = readGgufInfo(file);
      expect(theirs.version).toBe(3);
      expect(theirs.tensorCount).toBe(ours.tensors.length);
      expect(theirs.fullTensorInfo!.map((t) => [t.name, t.dimensions.map(Number), t.ggmlType, Number(t.offset)])).toEqual(
        ours.tensors.map((t) => [t.name, t.shape, t.type, t.offset]),
      );
    }
  });

  it('MHA, tied output, F32: loads, tokenizes and generates deterministically', async () => {
    await withModel(files.mha, async (model) => {
      expect(model.fileInsights.totalLayers).toBe(MHA_TIED_F32.nLayer + 1);
      expect(model.trainContextSize).toBe(MHA_TIED_F32.nCtx);
      expect(model.embeddingVectorSize).toBe(MHA_TIED_F32.nEmbd);
      expect(model.tokens.bos).toBe(1);
      expect(model.tokens.eos).toBe(2);

      // a 512-token vocab holds the characters and a few words only
      const vocab = buildSpmVocab(MHA_TIED_F32.nVocab);
      const toks = model.tokenize('Once upon a time');
      expect(toks.map((t) => vocab.tokens[t])).toContain('▁a');
      expect(toks.every((t) => vocab.types[t] === 1)).toBe(true);
      expect(model.detokenize(toks)).toBe('Once upon a time');
      // unknown characters go through byte fallback
      const emoji = model.tokenize('héllo 🙂');
      expect(emoji.every((t) => t >= 3 && t < MHA_TIED_F32.nVocab)).toBe(true);
      expect(model.detokenize(emoji)).toBe('héllo 🙂');

      const a = await greedy(model, PROMPTS, 8);
      const b = await greedy(model, PROMPTS, 8);
      expect(a).toEqual(b);
      for (const out of a) {
        expect(out.length).toBeGreaterThan(0);
        for (const t of out) expect(t).toBeLessThan(MHA_TIED_F32.nVocab);
      }
      expect(new Set(a.map((o) => o.join(','))).size).toBeGreaterThan(1);
    });
  }, 30_000);

  it('GQA, untied output, F16 + its 3-layer slice: load, generate, and mostly agree (lateLayerScale)', async () => {
    const vocab = buildSpmVocab(GQA_UNTIED_F16.nVocab);
    const full = await withModel(files.gqa, async (model) => {
      expect(model.fileInsights.totalLayers).toBe(GQA_UNTIED_F16.nLayer + 1);
      expect(model.trainContextSize).toBe(GQA_UNTIED_F16.nCtx);
      const toks = model.tokenize('Once upon a time');
      expect(toks.map((t) => vocab.tokens[t])).toEqual(['▁Once', '▁upon', '▁a', '▁time']);
      const gen = await greedy(model, PROMPTS, 12);
      expect(new Set(gen.map((o) => o.join(','))).size).toBeGreaterThan(1);
      const seq = [model.tokens.bos!, ...model.tokenize(PROMPTS.join(' '))];
      return { gen, seq, argmax: await argmaxAtEachPosition(model, seq) };
    });
    // The full model's predictions are not degenerate: not all equal, not just copying the input.
    expect(new Set(full.argmax).size).toBeGreaterThan(3);
    const copies = full.argmax.filter((t, i) => t === full.seq[i]).length;
    expect(copies).toBeLessThan(full.seq.length / 2);

    await withModel(files.gqaSlice, async (model) => {
      expect(model.fileInsights.totalLayers).toBe(3 + 1);
      const gen = await greedy(model, PROMPTS, 12);
      for (const out of gen) expect(out.length).toBeGreaterThan(0);
      const argmax = await argmaxAtEachPosition(model, full.seq);
      const agree = argmax.filter((t, i) => t === full.argmax[i]).length / argmax.length;
      // layers >= 3 are scaled by 0.05, so the 3-layer draft should match the full model often
      expect(agree).toBeGreaterThan(0.6);
    });
  }, 30_000);

  it('a sliced real model (stories260K, 5 -> 3 layers) loads and generates', async (ctx) => {
    if (!fs.existsSync(STORIES)) {
      if (process.env.CI) throw new Error(`missing ${STORIES}`);
      ctx.skip();
    }
    const out = path.join(dir, 'stories-3.gguf');
    sliceLlamaModel(STORIES, out, 3);
    await withModel(out, async (model) => {
      expect(model.fileInsights.totalLayers).toBe(4);
      const [gen] = await greedy(model, ['Once upon a time'], 10);
      expect(gen.length).toBe(10);
    });
  }, 30_000);
});
