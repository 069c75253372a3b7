// LayerSkip training (patch 0010, native/trainer.cc, lib/tools/training/train.ts) against independent
// references: the training graph's per-exit cross-entropy against decodeLayers logits (inference
// graph) with dropped layers removed from the file; its gradients against central finite
// differences of its own forward loss; the fixed topology through weights that must not move.
import { closeSync, copyFileSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, quantizeModel, trainModel } from '../lib/index.js';
import { loadNative, type NativeTrainer } from '../lib/native/binding.js';
import { readGgufInfo, writeGguf, iterateTensorBytes, type GgufTensorInput } from '../lib/gguf/index.js';
import type { GgufMetadataValue } from '../lib/gguf/types.js';
import { randomModel, STORIES } from './helpers.js';

const SPEC = { nLayer: 3, nEmbd: 32, nHead: 4, nHeadKv: 2, nFf: 64, nVocab: 300, nCtx: 256, tiedOutput: true, seed: 21, tensorType: 'f32' } as const;
const UNTIED = { ...SPEC, tiedOutput: false, seed: 22 } as const;
const C = 8,
  B = 2;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'layerskip-train-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tokensFor(seed: number, n: number, vocab: number): Int32Array {
  const out = new Int32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out[i] = 3 + (s % (vocab - 3)); // no control tokens
  }
  return out;
}

function readTensor(path: string, name: string): Float32Array {
  const t = readGgufInfo(path).tensors.find((x) => x.name === name)!;
  const buf = Buffer.alloc(t.byteSize);
  const fd = openSync(path, 'r');
  readSync(fd, buf, 0, t.byteSize, t.absoluteOffset);
  closeSync(fd);
  return new Float32Array(buf.buffer, buf.byteOffset, t.byteSize / 4).slice();
}

function writeEntry(path: string, name: string, index: number, value: number): void {
  const t = readGgufInfo(path).tensors.find((x) => x.name === name)!;
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.from(new Float32Array([value]).buffer), 0, 4, t.absoluteOffset + 4 * index);
  closeSync(fd);
}

/** A copy of the model without layer `drop` (the later blocks renumbered): what a sample that skips it computes. */
function withoutLayer(src: string, dst: string, drop: number): void {
  const info = readGgufInfo(src);
  const n = Number(info.metadata.get('llama.block_count')!.value);
  const metadata: [string, GgufMetadataValue][] = [...info.metadata].map(([k, v]) =>
    k === 'llama.block_count' ? [k, { ...v, value: n - 1 } as GgufMetadataValue] : [k, v],
  );
  const tensors: GgufTensorInput[] = [];
  for (const t of info.tensors) {
    const m = /^blk\.(\d+)\.(.*)$/.exec(t.name);
    if (m && Number(m[1]) === drop) continue;
    const name = m && Number(m[1]) > drop ? `blk.${Number(m[1]) - 1}.${m[2]}` : t.name;
    tensors.push({ name, shape: t.shape, type: t.type, data: () => iterateTensorBytes(src, t) });
  }
  writeGguf(dst, metadata, tensors, { alignment: info.alignment });
}

/** Mean next-token cross-entropy of the exit after `layers` layers, from the inference graph's logits. */
async function inferenceCe(path: string, row: Int32Array, layers: number): Promise<number> {
  const model = await loadModel(path);
  const ctx = await model.createContext({ contextSize: 64, kvCacheType: 'f32', flashAttention: false });
  try {
    const V = model.info.vocabularySize;
    const r = await ctx.decodeLayers({ tokens: row.subarray(0, C), layers: [0, layers], outputs: 'all', logits: true });
    let sum = 0;
    for (let i = 0; i < C; i++) {
      const z = r.logits!.subarray(i * V, (i + 1) * V);
      let max = -Infinity;
      for (const v of z) max = Math.max(max, v);
      let s = 0;
      for (const v of z) s += Math.exp(v - max);
      sum += max + Math.log(s) - z[row[i + 1]];
    }
    return sum / C;
  } finally {
    model.dispose();
  }
}

async function withTrainer<T>(
  path: string,
  options: { forwardOnly?: boolean; beta1?: number; beta2?: number; eps?: number },
  f: (t: NativeTrainer) => Promise<T>,
): Promise<T> {
  const native = await loadNative();
  const model = await loadModel(path, { mmap: false });
  const t = await native.createTrainer(model.handle, { contextSize: C, sequences: B, threads: 1, ...options });
  try {
    return await f(t);
  } finally {
    t.dispose();
    model.dispose();
  }
}

const WEIGHTS = new Float32Array([0.2, 0.3, 0.5]);
// [layer][sample]: sample 0 skips layer 1
const KEEP = new Float32Array([1, 1, 0, 1, 1, 1]);
const ROWS = tokensFor(7, B * (C + 1), SPEC.nVocab);

async function forwardCe(path: string): Promise<Float32Array> {
  return withTrainer(path, { forwardOnly: true }, async (t) => {
    const r = await t.run({ steps: 1, tokens: ROWS, exitWeights: WEIGHTS, keep: KEEP, learningRates: new Float32Array(1), train: false, counts: false });
    return r.exitCe;
  });
}

const weighted = (ce: ArrayLike<number>): number => Array.from(ce).reduce((a, c, l) => a + c * WEIGHTS[l], 0);

describe('the training graph', () => {
  it('gives each exit the cross-entropy of the inference graph, a skipped layer being a layer removed from the file', async () => {
    for (const spec of [SPEC, UNTIED]) {
      const path = randomModel(spec);
      const ce = await forwardCe(path);
      const reduced = join(dir, `without-1-${spec.seed}.gguf`);
      withoutLayer(path, reduced, 1);
      const row0 = ROWS.subarray(0, C + 1),
        row1 = ROWS.subarray(C + 1);
      // sample 0 skips layer 1: its exits after layers 1, 2, 3 are the reduced model's after 1, 1, 2
      const ref = [
        ((await inferenceCe(path, row1, 1)) + (await inferenceCe(reduced, row0, 1))) / 2,
        ((await inferenceCe(path, row1, 2)) + (await inferenceCe(reduced, row0, 1))) / 2,
        ((await inferenceCe(path, row1, 3)) + (await inferenceCe(reduced, row0, 2))) / 2,
      ];
      for (let l = 0; l < 3; l++) expect(Math.abs(ce[l] - ref[l]), `exit ${l + 1}`).toBeLessThan(1e-4);
      expect(Math.abs(weighted(ce) - weighted(ref))).toBeLessThan(1e-4);
    }
  });

  it('has the gradients of its loss (central finite differences), attn_k, attn_v and the tied token_embd included', async () => {
    const path = randomModel(SPEC);
    // AdamW's first step with beta1 = beta2 = 0 is w -= lr * g / (|g| + eps): with a large eps it
    // reveals g exactly, g = -d * eps / (lr - |d|)
    const eps = 1e3,
      lr = 1;
    const trained = join(dir, 'probe.gguf');
    await withTrainer(path, { beta1: 0, beta2: 0, eps }, async (t) => {
      await t.run({ steps: 1, tokens: ROWS, exitWeights: WEIGHTS, keep: KEEP, learningRates: new Float32Array([lr]), train: true, counts: false });
      await t.save(trained);
    });
    const names = [
      'token_embd.weight',
      'blk.0.attn_k.weight',
      'blk.2.attn_v.weight',
      'blk.0.attn_q.weight',
      'blk.1.ffn_down.weight',
      'blk.2.ffn_gate.weight',
      'blk.0.attn_norm.weight',
      'output_norm.weight',
    ];
    for (const name of names) {
      const before = readTensor(path, name),
        after = readTensor(trained, name);
      // the entry with the largest gradient
      let at = 0;
      for (let i = 0; i < before.length; i++) if (Math.abs(after[i] - before[i]) > Math.abs(after[at] - before[at])) at = i;
      const d = after[at] - before[at];
      const g = (-d * eps) / (lr - Math.abs(d));
      expect(Math.abs(g), `${name} has a gradient`).toBeGreaterThan(1e-4);
      const h = Math.max(1e-3, Math.abs(before[at]) * 0.05);
      const plus = join(dir, 'plus.gguf'),
        minus = join(dir, 'minus.gguf');
      copyFileSync(path, plus);
      copyFileSync(path, minus);
      writeEntry(plus, name, at, before[at] + h);
      writeEntry(minus, name, at, before[at] - h);
      const fd = (weighted(await forwardCe(plus)) - weighted(await forwardCe(minus))) / (2 * h);
      expect(Math.abs(fd - g), `${name}[${at}]: analytic ${g}, finite difference ${fd}`).toBeLessThan(0.03 * Math.abs(g) + 2e-4);
    }
  });

  it('keeps its topology when the curriculum changes: weights the loss does not depend on never move', async () => {
    const path = randomModel(UNTIED);
    const out = join(dir, 'topology.gguf');
    const step = (t: NativeTrainer, weights: number[]) =>
      t.run({
        steps: 1,
        tokens: ROWS,
        exitWeights: new Float32Array(weights),
        keep: new Float32Array(SPEC.nLayer * B).fill(1),
        learningRates: new Float32Array([1e-2]),
        train: true,
        counts: false,
      });
    const layer = (p: string, l: number) =>
      ['attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down', 'attn_norm', 'ffn_norm'].map((n) =>
        readTensor(p, `blk.${l}.${n}.weight`),
      );
    const same = (a: Float32Array[], b: Float32Array[]) => a.every((x, i) => x.every((v, j) => v === b[i][j]));
    await withTrainer(path, {}, async (t) => {
      // exit 1 only, then exit 2 only (the curriculum moves up): layer 3 never enters a loss
      await step(t, [1, 0, 0]);
      await t.save(out);
      expect(same(layer(out, 1), layer(path, 1)), 'layer 2 after a step on exit 1').toBe(true);
      expect(same(layer(out, 2), layer(path, 2)), 'layer 3 after a step on exit 1').toBe(true);
      expect(same(layer(out, 0), layer(path, 0)), 'layer 1 trained').toBe(false);
      await step(t, [0, 1, 0]);
      await step(t, [1, 1, 0]);
      await t.save(out);
      expect(same(layer(out, 2), layer(path, 2)), 'layer 3 after the curriculum changed').toBe(true);
      expect(same(layer(out, 1), layer(path, 1)), 'layer 2 trained').toBe(false);
      expect(Array.from(readTensor(out, 'output.weight')).some((v, i) => v !== readTensor(path, 'output.weight')[i])).toBe(true);
    });
  });
});

describe('trainModel', () => {
  const text = readFileSync(STORIES.replace(/models[\\/]stories260K\.gguf$/, 'README.md'), 'utf8');

  it('trains, evaluates every exit and writes a model that loads and generates', async () => {
    const init = randomModel(SPEC);
    const output = join(dir, 'trained.gguf');
    const progress: string[] = [];
    const r = await trainModel(init, {
      output,
      data: { text: text.slice(0, 8000) },
      evalData: { text: text.slice(8000, 12000) },
      steps: 12,
      batchSize: 2,
      contextSize: 16,
      learningRate: 3e-3,
      threads: 1,
      layerDropout: { pMax: 0.2 },
      earlyExitLoss: { scale: 0.2 },
      evalInterval: 6,
      checkpointInterval: 6,
      onProgress: (p) => progress.push(p.phase),
    });
    expect(r.steps).toBe(12);
    expect(r.evaluation.map((e) => e.layer)).toEqual([1, 2, 3]);
    expect(r.evaluation[2].agreement).toBe(1);
    for (const e of r.evaluation) expect(e.crossEntropy).toBeGreaterThan(0);
    expect(r.history.map((h) => h.step)).toEqual([6, 12]);
    expect(progress.filter((p) => p === 'train')).toHaveLength(12);
    expect(progress).toContain('checkpoint');
    const m = await loadModel(output);
    expect(m.info.layerCount).toBe(3);
    m.dispose();
    expect(existsSync(`${output}.train.json`)).toBe(true);
  });

  it("lowers the held-out loss on real text, and the trained model's decodes match its own evaluation", async () => {
    const init = randomModel(SPEC);
    const output = join(dir, 'learned.gguf');
    const data = { text: text.slice(0, 20000) };
    const before = await trainModel(init, {
      output: join(dir, 'zero.gguf'),
      data,
      evalData: data,
      steps: 1,
      learningRate: 1e-9,
      batchSize: 2,
      contextSize: 16,
      threads: 1,
    });
    const after = await trainModel(init, { output, data, evalData: data, steps: 40, learningRate: 5e-3, batchSize: 2, contextSize: 16, threads: 1 });
    expect(after.evaluation[2].crossEntropy).toBeLessThan(before.evaluation[2].crossEntropy - 0.5);
  });

  it('rejects bad input with clear errors and keeps going', async () => {
    const init = randomModel(SPEC);
    const ok = { output: join(dir, 'bad.gguf'), data: { text }, steps: 2, batchSize: 2, contextSize: 16, threads: 1 };
    const q8 = join(dir, 'q8.gguf');
    await quantizeModel(STORIES, q8, 'Q8_0');
    await expect(trainModel(q8, ok)).rejects.toThrow(/needs F32 or F16 weights.*Q8_0.*F32/s);
    await expect(trainModel(init, { ...ok, data: { text: 'too short' } })).rejects.toThrow(/fewer than one context/);
    await expect(trainModel(init, { ...ok, data: { tokens: [1, 2, 99999] } })).rejects.toThrow(/outside the vocabulary/);
    await expect(trainModel(init, { ...ok, output: join(dir, 'missing', 'x.gguf') })).rejects.toThrow(/cannot write/);
    await expect(trainModel(init, { ...ok, steps: undefined })).rejects.toThrow(/exactly one budget/);
    await expect(trainModel(init, { ...ok, stepz: 3 } as never)).rejects.toThrow(/unknown option "stepz"/);
    await expect(trainModel(init, { ...ok, layerDropout: { pMax: 2 } })).rejects.toThrow(/layerDropout.pMax/);
    await expect(trainModel(init, { ...ok, earlyExitLoss: { scale: 0.2, curriculum: 'sideways' as never } })).rejects.toThrow(/curriculum/);
    const gemma = join(dir, 'not-llama.gguf');
    const info = readGgufInfo(init);
    writeGguf(
      gemma,
      [...info.metadata].map(([k, v]) => (k === 'general.architecture' ? [k, { ...v, value: 'gemma' } as GgufMetadataValue] : [k, v])),
      [],
      { alignment: info.alignment },
    );
    await expect(trainModel(gemma, ok)).rejects.toThrow(/llama architecture, not gemma/);
    // an F16 file trains from an F32 copy
    const f16 = randomModel({ ...SPEC, tensorType: 'f16', seed: 23 });
    await expect(trainModel(f16, { ...ok, output: join(dir, 'from-f16.gguf') })).resolves.toMatchObject({ steps: 2 });
    expect(readGgufInfo(join(dir, 'from-f16.gguf')).tensors.every((t) => t.type === 0)).toBe(true);
    // the process goes on: a good run after the bad ones
    await expect(trainModel(init, ok)).resolves.toMatchObject({ steps: 2 });
  });

  it('an abort mid-run leaves the last checkpoint on disk, and resume finishes the run', async () => {
    const init = randomModel(SPEC);
    const output = join(dir, 'aborted.gguf');
    const base = { output, data: { text }, steps: 40, batchSize: 2, contextSize: 16, threads: 1, checkpointInterval: 10, learningRate: 1e-3 };
    const ac = new AbortController();
    await expect(
      trainModel(init, {
        ...base,
        signal: ac.signal,
        onProgress: (p) => {
          if (p.phase === 'train' && p.step === 13) ac.abort();
        },
      }),
    ).rejects.toThrow(/abort/i);
    const state = JSON.parse(readFileSync(`${output}.train.json`, 'utf8'));
    expect(state.step).toBe(10); // the checkpoint at step 10; steps 11-13 are not on disk
    expect(readdirSync(dir).filter((f) => f.startsWith('aborted.gguf.tmp'))).toEqual([]);
    const r = await trainModel(init, { ...base, resume: true });
    expect(r.steps).toBe(40);
    writeFileSync(`${output}.train.json`, JSON.stringify({ ...state, seed: 5 }));
    await expect(trainModel(init, { ...base, resume: true })).rejects.toThrow(/same budget and seed/);
  });
});
