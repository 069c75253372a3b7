// Draft heads follow each architecture's own tail after the last layer (llama.cpp's
// src/models/<arch>.cpp): readModelTail reads the norm kind and epsilon, the norm and output
// biases, the logit scale and the final softcapping from the GGUF file, refusing what it cannot
// describe; the native adapter trainer's loss and gradient with each tail op match a JS reference
// of the same forward computation; the tail it reads from random models of every layer-range
// architecture reproduces llama.cpp's own logits from the final residual; a draft vocabulary is
// refused for a model with an output bias.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LAYER_RANGE_ARCHITECTURES } from '../lib/model-file/architectures.js';
import { lmHeadTensor, readModelTail, TAIL_ARCHITECTURES, trainerTail, type ModelTail } from '../lib/draft-head/base-weights.js';
import { DraftHead, modelIdentity } from '../lib/draft-head/draft-head.js';
import { checkDraftVocabularySupported, nativeDraftHead, resolveDraftHead, type HeadBase } from '../lib/draft-head/install.js';
import { GgmlType } from '../lib/gguf/constants.js';
import { readGgufInfo, readTensorBytes, readTensorF32, type GgufFileInfo } from '../lib/gguf/reader.js';
import { writeRandomModel } from '../lib/gguf/random-model.js';
import type { RandomArch } from '../lib/gguf/random-archs.js';
import { ggufValue, type GgufMetadataValue } from '../lib/gguf/types.js';
import { writeGguf, type GgufTensorInput } from '../lib/gguf/writer.js';
import { fitDraftHead, loadModel } from '../lib/index.js';
import type { NativeModelInfo, NativeTrainTail } from '../lib/native/contract.js';
import { native } from '../lib/native/binding.js';
import { SamplerRng } from '../lib/decoding/sampling.js';

const dir = mkdtempSync(join(tmpdir(), 'layerskip-tails-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function gaussians(rng: SamplerRng, n: number, std = 1, mean = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(rng.next(), 1e-12);
    out[i] = mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
  }
  return out;
}

interface TailFile {
  arch: string;
  D?: number;
  V?: number;
  /** metadata keys under `<arch>.` (numbers as f32) */
  keys?: Record<string, number>;
  /** tensors besides the LM head: name → values */
  tensors?: Record<string, Float32Array>;
  untied?: boolean;
}

/** A GGUF file with what readModelTail reads: the header keys and the tail's tensors (no layers). */
function tailFile(spec: TailFile): GgufFileInfo {
  const { arch, D = 8, V = 12 } = spec;
  const rng = new SamplerRng(D * 31 + V);
  const metadata: [string, GgufMetadataValue][] = [
    ['general.architecture', ggufValue.string(arch)],
    [`${arch}.block_count`, ggufValue.u32(2)],
    [`${arch}.embedding_length`, ggufValue.u32(D)],
    ...Object.entries(spec.keys ?? {}).map(([k, v]): [string, GgufMetadataValue] => [`${arch}.${k}`, ggufValue.f32(v)]),
  ];
  const tensors: GgufTensorInput[] = [
    { name: 'token_embd.weight', shape: [D, V], type: GgmlType.F32, data: gaussians(rng, D * V) },
    ...Object.entries(spec.tensors ?? {}).map(([name, data]) => ({ name, shape: [data.length], type: GgmlType.F32, data })),
  ];
  if (spec.untied) tensors.push({ name: 'output.weight', shape: [D, V], type: GgmlType.F32, data: gaussians(rng, D * V) });
  const path = join(dir, `${arch}-${Math.round(rng.next() * 1e9)}.gguf`);
  writeGguf(path, metadata, tensors);
  return readGgufInfo(path);
}

const ones = (n: number) => new Float32Array(n).fill(1);
const ramp = (n: number, a: number) => Float32Array.from({ length: n }, (_, i) => a + i / 8);

describe('readModelTail: each architecture its own tail', () => {
  const rms = { 'attention.layer_norm_rms_epsilon': 1e-6 };
  const ln = { 'attention.layer_norm_epsilon': 1e-5 };

  it('RMS-norm architectures: the weight and the epsilon, nothing after the LM head', () => {
    for (const arch of ['llama', 'qwen3', 'phi3', 'mistral3', 'olmo2', 'smollm3', 'gpt-oss', 'qwen3moe']) {
      const t = readModelTail(tailFile({ arch, keys: rms, tensors: { 'output_norm.weight': ramp(8, 1) } }));
      expect(t, arch).toEqual({ architecture: arch, norm: { kind: 'rms', weight: ramp(8, 1), eps: Math.fround(1e-6) } });
    }
    // lfm2's final norm is the tensor llama.cpp calls token_embd_norm
    const lfm2 = readModelTail(tailFile({ arch: 'lfm2', keys: rms, tensors: { 'token_embd_norm.weight': ramp(8, 2) } }));
    expect(lfm2.norm.weight).toEqual(ramp(8, 2));
  });

  it('qwen2: the output bias when the file has one', () => {
    const plain = readModelTail(tailFile({ arch: 'qwen2', keys: rms, tensors: { 'output_norm.weight': ones(8) } }));
    expect(plain.outputBias).toBeUndefined();
    const bias = ramp(12, -1);
    const t = readModelTail(tailFile({ arch: 'qwen2', keys: rms, untied: true, tensors: { 'output_norm.weight': ones(8), 'output.bias': bias } }));
    expect(t.outputBias).toEqual(bias);
    expect(t.norm.kind).toBe('rms');
  });

  it('gemma2 and gemma3: final logit softcapping (gemma2 30 by default, gemma3 none)', () => {
    const norm = { 'output_norm.weight': ones(8) };
    expect(readModelTail(tailFile({ arch: 'gemma2', keys: rms, tensors: norm })).finalSoftcap).toBe(30);
    expect(readModelTail(tailFile({ arch: 'gemma2', keys: { ...rms, final_logit_softcapping: 15 }, tensors: norm })).finalSoftcap).toBe(15);
    expect(() => readModelTail(tailFile({ arch: 'gemma2', keys: { ...rms, final_logit_softcapping: 0 }, tensors: norm }))).toThrow(
      /gemma2.*final_logit_softcapping is 0/,
    );
    expect(readModelTail(tailFile({ arch: 'gemma3', keys: rms, tensors: norm })).finalSoftcap).toBeUndefined();
    expect(readModelTail(tailFile({ arch: 'gemma3', keys: { ...rms, final_logit_softcapping: 30 }, tensors: norm })).finalSoftcap).toBe(30);
    expect(readModelTail(tailFile({ arch: 'gemma3', keys: { ...rms, final_logit_softcapping: 0 }, tensors: norm })).finalSoftcap).toBeUndefined();
  });

  it('granite divides the logits by its logit scale; command-r and cohere2 multiply by theirs', () => {
    const norm = { 'output_norm.weight': ones(8) };
    const granite = readModelTail(tailFile({ arch: 'granite', keys: { ...rms, logit_scale: 8 }, tensors: norm }));
    expect(granite.logitFactor).toBe(0.125);
    expect(readModelTail(tailFile({ arch: 'granite', keys: { ...rms, logit_scale: 3 }, tensors: norm })).logitFactor).toBe(Math.fround(1 / 3));
    expect(() => readModelTail(tailFile({ arch: 'granite', keys: rms, tensors: norm }))).toThrow(/granite.*granite\.logit_scale/);
    expect(() => readModelTail(tailFile({ arch: 'granite', keys: { ...rms, logit_scale: 0 }, tensors: norm }))).toThrow(/logit_scale is 0/);
    const commandR = readModelTail(tailFile({ arch: 'command-r', keys: { ...ln, logit_scale: 0.0625 }, tensors: norm }));
    expect(commandR).toEqual({ architecture: 'command-r', norm: { kind: 'layer', weight: ones(8), eps: Math.fround(1e-5) }, logitFactor: 0.0625 });
    expect(readModelTail(tailFile({ arch: 'command-r', keys: ln, tensors: norm })).logitFactor).toBeUndefined();
    expect(readModelTail(tailFile({ arch: 'cohere2', keys: { ...ln, logit_scale: 0.25 }, tensors: norm })).logitFactor).toBe(0.25);
    expect(() => readModelTail(tailFile({ arch: 'cohere2', keys: ln, tensors: norm }))).toThrow(/cohere2.*logit_scale/);
  });

  it('LayerNorm with a bias (starcoder2, stablelm), and phi2 with an output bias too', () => {
    const w = ramp(8, 0.5);
    const b = ramp(8, -0.5);
    for (const arch of ['starcoder2', 'stablelm']) {
      const t = readModelTail(tailFile({ arch, keys: ln, tensors: { 'output_norm.weight': w, 'output_norm.bias': b } }));
      expect(t, arch).toEqual({ architecture: arch, norm: { kind: 'layer', weight: w, bias: b, eps: Math.fround(1e-5) } });
      expect(() => readModelTail(tailFile({ arch, keys: ln, tensors: { 'output_norm.weight': w } }))).toThrow(new RegExp(`no output_norm.bias.*${arch}`));
      // the RMS epsilon key is not the LayerNorm one
      expect(() => readModelTail(tailFile({ arch, keys: rms, tensors: { 'output_norm.weight': w, 'output_norm.bias': b } }))).toThrow(/layer_norm_epsilon/);
    }
    const ob = ramp(12, -3);
    const phi2 = readModelTail(
      tailFile({ arch: 'phi2', keys: ln, untied: true, tensors: { 'output_norm.weight': w, 'output_norm.bias': b, 'output.bias': ob } }),
    );
    expect(phi2.norm.bias).toEqual(b);
    expect(phi2.outputBias).toEqual(ob);
    expect(() => readModelTail(tailFile({ arch: 'phi2', keys: ln, untied: true, tensors: { 'output_norm.weight': w, 'output_norm.bias': b } }))).toThrow(
      /no output.bias/,
    );
  });

  it('what it cannot describe is an error naming the architecture, never a guess', () => {
    const norm = { 'output_norm.weight': ones(8) };
    expect(() => readModelTail(tailFile({ arch: 'mamba', keys: rms, tensors: norm }))).toThrow(/architecture mamba.*do not know the output tail/);
    expect(() => readModelTail(tailFile({ arch: 'llama', tensors: norm }))).toThrow(/llama.*no llama\.attention\.layer_norm_rms_epsilon/);
    expect(() => readModelTail(tailFile({ arch: 'llama', keys: rms }))).toThrow(/architecture llama.*no output_norm.weight/);
    // tensors and keys that llama.cpp's graph for the architecture would not apply
    expect(() => readModelTail(tailFile({ arch: 'llama', keys: rms, untied: true, tensors: { ...norm, 'output.bias': ones(12) } }))).toThrow(
      /llama.*output\.bias.*does not use/,
    );
    expect(() => readModelTail(tailFile({ arch: 'qwen3', keys: rms, tensors: { ...norm, 'output_norm.bias': ones(8) } }))).toThrow(
      /qwen3.*output_norm\.bias.*does not use/,
    );
    expect(() => readModelTail(tailFile({ arch: 'llama', keys: { ...rms, final_logit_softcapping: 30 }, tensors: norm }))).toThrow(
      /llama.*final_logit_softcapping.*does not apply/,
    );
    expect(() => readModelTail(tailFile({ arch: 'qwen2', keys: { ...rms, logit_scale: 2 }, tensors: norm }))).toThrow(/qwen2.*logit_scale.*does not apply/);
    expect(() => readModelTail(tailFile({ arch: 'llama', keys: rms, tensors: { 'output_norm.weight': ones(7) } }))).toThrow(
      /output_norm.weight has 7 values, expected 8/,
    );
  });

  it('trainerTail: the output bias of the draft vocabulary, and bad tails refused once', () => {
    const tail = readModelTail(tailFile({ arch: 'qwen2', keys: rms, untied: true, tensors: { 'output_norm.weight': ones(8), 'output.bias': ramp(12, 0) } }));
    const ids = Int32Array.of(1, 4, 11);
    expect(trainerTail(tail, 8, ids).outputBias).toEqual(Float32Array.of(1 / 8, 4 / 8, 11 / 8));
    expect(trainerTail(tail, 8, null).outputBias).toEqual(ramp(12, 0));
    expect(() => trainerTail(tail, 8, Int32Array.of(12))).toThrow(/outside the output bias/);
    expect(() => trainerTail(tail, 9, null)).toThrow(/norm weight must be a Float32Array of 9/);
    expect(() => trainerTail({ ...tail, finalSoftcap: -1 }, 8, null)).toThrow(/final softcap/);
    expect(() => trainerTail({ ...tail, norm: { ...tail.norm, eps: 0 } }, 8, null)).toThrow(/epsilon/);
    expect(() => trainerTail({ ...tail, norm: { ...tail.norm, bias: ones(8) } }, 8, null)).toThrow(/LayerNorm/);
  });
});

// ---- the native trainer against a JS reference of the same forward computation ----

interface Problem {
  D: number;
  V: number;
  N: number;
  hidden: Float32Array;
  targets: Float32Array;
  head: Float32Array;
  adapter: Float32Array;
  bias: Float32Array;
}

function problem(seed: number): Problem {
  const D = 16;
  const V = 24;
  const N = 8;
  const rng = new SamplerRng(seed);
  const hidden = gaussians(rng, N * D, 2, 0.5);
  const noise = gaussians(rng, D * D, 0.1);
  const adapter = Float32Array.from(noise, (v, k) => v + (k % (D + 1) === 0 ? 1 : 0));
  const bias = gaussians(rng, D, 0.2);
  const head = gaussians(rng, V * D, 1);
  const targets = new Float32Array(N * V);
  for (let r = 0; r < N; r++) {
    const z = gaussians(rng, V, 2);
    const m = Math.max(...z);
    let s = 0;
    for (let v = 0; v < V; v++) s += targets[r * V + v] = Math.exp(z[v] - m);
    for (let v = 0; v < V; v++) targets[r * V + v] /= s;
  }
  return { D, V, N, hidden, targets, head, adapter, bias };
}

/** Mean cross-entropy of the tail's logits to the targets, in float64 (W row-major [out][in]). */
function referenceLoss(p: Problem, tail: NativeTrainTail, W: ArrayLike<number>, b: ArrayLike<number>): number {
  const { D, V, N } = p;
  let total = 0;
  const x = new Float64Array(D);
  const logits = new Float64Array(V);
  for (let r = 0; r < N; r++) {
    for (let o = 0; o < D; o++) {
      let s = b[o];
      for (let i = 0; i < D; i++) s += W[o * D + i] * p.hidden[r * D + i];
      x[o] = s;
    }
    let mean = 0;
    if (tail.norm === 'layer') mean = x.reduce((a, v) => a + v, 0) / D;
    let sq = 0;
    for (let d = 0; d < D; d++) sq += (x[d] - mean) ** 2;
    const scale = 1 / Math.sqrt(sq / D + tail.eps);
    for (let d = 0; d < D; d++) x[d] = (x[d] - mean) * scale * tail.normWeight[d] + (tail.normBias?.[d] ?? 0);
    for (let v = 0; v < V; v++) {
      let l = 0;
      for (let d = 0; d < D; d++) l += p.head[v * D + d] * x[d];
      if (tail.outputBias) l += tail.outputBias[v];
      if (tail.logitFactor !== undefined) l *= tail.logitFactor;
      if (tail.finalSoftcap !== undefined) l = tail.finalSoftcap * Math.tanh(l / tail.finalSoftcap);
      logits[v] = l;
    }
    const m = Math.max(...logits);
    const lse = m + Math.log(logits.reduce((a, l) => a + Math.exp(l - m), 0));
    for (let v = 0; v < V; v++) total -= p.targets[r * V + v] * (logits[v] - lse);
  }
  return total / N;
}

/** Central-difference gradient of the reference loss over the adapter's weights and bias. */
function referenceGradient(p: Problem, tail: NativeTrainTail): { w: Float64Array; b: Float64Array } {
  const W = Float64Array.from(p.adapter);
  const b = Float64Array.from(p.bias);
  const h = 1e-5;
  const grad = (a: Float64Array) =>
    Float64Array.from(a, (v, k) => {
      a[k] = v + h;
      const up = referenceLoss(p, tail, W, b);
      a[k] = v - h;
      const down = referenceLoss(p, tail, W, b);
      a[k] = v;
      return (up - down) / (2 * h);
    });
  return { w: grad(W), b: grad(b) };
}

const LR = 1e-3;
async function trainOneStep(p: Problem, tail: NativeTrainTail) {
  return native().trainExitAdapter({
    hidden: p.hidden,
    targets: p.targets,
    head: p.head,
    tail,
    adapter: p.adapter,
    bias: p.bias,
    embeddingSize: p.D,
    vocabularySize: p.V,
    steps: 1,
    batchSize: p.N,
    learningRate: LR,
    threads: 1,
  });
}

describe('the adapter trainer applies each tail op as the reference does', () => {
  const p = problem(7);
  const rng = new SamplerRng(99);
  const rmsTail = (): ModelTail => ({ architecture: 'llama', norm: { kind: 'rms', weight: gaussians(rng, p.D, 0.3, 1), eps: 1e-5 } });
  const cases: [string, ModelTail][] = [
    ['RMS norm (llama)', rmsTail()],
    [
      'LayerNorm with weight and bias (starcoder2)',
      { architecture: 'starcoder2', norm: { kind: 'layer', weight: gaussians(rng, p.D, 0.3, 1), bias: gaussians(rng, p.D, 0.5), eps: 1e-5 } },
    ],
    ['output bias (qwen2)', { ...rmsTail(), architecture: 'qwen2', outputBias: gaussians(rng, p.V, 2) }],
    ['logit scale (granite)', { ...rmsTail(), architecture: 'granite', logitFactor: Math.fround(1 / 3) }],
    ['final softcapping (gemma2)', { ...rmsTail(), architecture: 'gemma2', finalSoftcap: 2 }],
    [
      'LayerNorm and a logit scale (command-r)',
      { architecture: 'command-r', norm: { kind: 'layer', weight: gaussians(rng, p.D, 0.3, 1), eps: 1e-5 }, logitFactor: 0.5 },
    ],
  ];
  const losses = new Map<string, number>();

  for (const [name, modelTail] of cases) {
    it(`${name}: the initial loss and the first step's gradient signs`, async () => {
      const tail = trainerTail(modelTail, p.D, null);
      const expected = referenceLoss(p, tail, p.adapter, p.bias);
      losses.set(name, expected);
      const r = await trainOneStep(p, tail);
      expect(r.losses.length).toBe(1);
      expect(Math.abs(r.losses[0] - expected) / expected, `loss ${r.losses[0]} vs ${expected}`).toBeLessThan(2e-5);

      // AdamW's first step moves each parameter by -lr · g / (|g| + 1e-8): the gradient's sign
      const g = referenceGradient(p, tail);
      const max = Math.max(...g.w.map(Math.abs), ...g.b.map(Math.abs));
      let checked = 0;
      for (const [got, start, grad] of [
        [r.adapter, p.adapter, g.w],
        [r.bias, p.bias, g.b],
      ] as const) {
        for (let k = 0; k < grad.length; k++) {
          if (Math.abs(grad[k]) < 1e-3 * max) continue;
          const step = got[k] - start[k];
          expect(Math.sign(step), `parameter ${k}: step ${step}, gradient ${grad[k]}`).toBe(-Math.sign(grad[k]));
          expect(Math.abs(step)).toBeGreaterThan(0.9 * LR);
          expect(Math.abs(step)).toBeLessThan(1.1 * LR);
          checked++;
        }
      }
      expect(checked).toBeGreaterThan(200);
    });
  }

  it('each tail op changes the loss (the comparisons above would see a dropped op)', () => {
    const base = losses.get('RMS norm (llama)')!;
    for (const [name] of cases.slice(1)) expect(Math.abs(losses.get(name)! - base), name).toBeGreaterThan(0.05);
  });

  it('a draft vocabulary trains with its rows of the output bias', async () => {
    const ids = Int32Array.of(0, 3, 5, 6, 10, 11, 17, 20, 23);
    const full: ModelTail = { ...rmsTail(), architecture: 'qwen2', outputBias: gaussians(rng, p.V, 2) };
    const sub: Problem = {
      ...p,
      V: ids.length,
      head: Float32Array.from({ length: ids.length * p.D }, (_, k) => p.head[ids[Math.floor(k / p.D)] * p.D + (k % p.D)]),
      targets: Float32Array.from({ length: p.N * ids.length }, (_, k) => p.targets[Math.floor(k / ids.length) * p.V + ids[k % ids.length]]),
    };
    const tail = trainerTail(full, p.D, ids);
    expect(tail.outputBias).toEqual(Float32Array.from(ids, (t) => full.outputBias![t]));
    const r = await trainOneStep(sub, tail);
    const expected = referenceLoss(sub, tail, p.adapter, p.bias);
    expect(Math.abs(r.losses[0] - expected) / expected).toBeLessThan(2e-5);
  });

  it('the addon checks the tail it is given', async () => {
    const good = trainerTail(cases[0][1], p.D, null);
    const run = (tail: unknown) =>
      native().trainExitAdapter({
        hidden: p.hidden,
        targets: p.targets,
        head: p.head,
        tail: tail as NativeTrainTail,
        adapter: p.adapter,
        bias: p.bias,
        embeddingSize: p.D,
        vocabularySize: p.V,
        steps: 1,
        batchSize: p.N,
        learningRate: LR,
        threads: 1,
      });
    expect(() => run(undefined)).toThrow(/tail must be an object/);
    expect(() => run({ ...good, norm: 'group' })).toThrow(/tail.norm/);
    expect(() => run({ ...good, eps: 0 })).toThrow(/tail.eps/);
    expect(() => run({ ...good, outputBias: new Float32Array(3) })).toThrow(/outputBias has 3 values/);
    expect(() => run({ ...good, normBias: new Float32Array(p.D) })).toThrow(/normBias needs/);
    expect(() => run({ ...good, finalSoftcap: -2 })).toThrow(/finalSoftcap/);
  });
});

describe('installing heads on other architectures', () => {
  /** What install.ts needs of a model, from its file alone. */
  function base(info: GgufFileInfo, layerCount = 2): HeadBase {
    const arch = String(info.metadata.get('general.architecture')!.value);
    const modelInfo = { architecture: arch, layerCount, embeddingSize: 8, vocabularySize: 12 } as NativeModelInfo;
    return { info: modelInfo, identity: modelIdentity(info), fileInfo: () => info };
  }
  const rms = { 'attention.layer_norm_rms_epsilon': 1e-6 };
  const head = (b: HeadBase, tokenIds: Int32Array | null) =>
    new DraftHead({ exitLayer: 1, embeddingSize: 8, vocabularySize: 12, baseModel: b.identity, adapter: null, bias: ones(8), tokenIds, stats: null });

  it('a head is bound to its model whatever the architecture', () => {
    const qwen3 = base(tailFile({ arch: 'qwen3', keys: rms, tensors: { 'output_norm.weight': ones(8) } }));
    const llama = base(tailFile({ arch: 'llama', keys: rms, tensors: { 'output_norm.weight': ones(8) } }));
    expect(qwen3.identity).not.toBe(llama.identity); // same tensors, another architecture
    const h = head(qwen3, Int32Array.of(2, 5));
    const file = join(dir, 'qwen3-head.gguf');
    h.save(file);
    expect(resolveDraftHead(file, qwen3, 1).tokenIds).toEqual(h.tokenIds);
    expect(() => resolveDraftHead(file, llama)).toThrow(/another model/);
    expect(() => resolveDraftHead(h, base(qwen3.fileInfo(), 1))).toThrow(/not below the model's 1 layers/);
  });

  it('a draft vocabulary is refused for a model with an output bias; the full vocabulary installs', () => {
    const qwen2 = base(tailFile({ arch: 'qwen2', keys: rms, untied: true, tensors: { 'output_norm.weight': ones(8), 'output.bias': ones(12) } }));
    const message = 'a draft vocabulary is not supported for models with an output bias (output.bias); fit the head with the full vocabulary';
    expect(() => checkDraftVocabularySupported(qwen2.fileInfo())).toThrow(message);
    expect(() => resolveDraftHead(head(qwen2, Int32Array.of(1, 2)), qwen2)).toThrow(message);
    expect(() => nativeDraftHead(head(qwen2, Int32Array.of(1, 2)), qwen2)).toThrow(message);
    const full = resolveDraftHead(head(qwen2, null), qwen2);
    expect(nativeDraftHead(full, qwen2)).toEqual({ bias: ones(8) });
  });
});

// ---- the tail as read reproduces llama.cpp's logits, on random models of each architecture ----

/** A copy of a GGUF file with extra metadata keys and tensors. */
function withExtras(src: string, dst: string, keys: [string, GgufMetadataValue][], tensors: GgufTensorInput[]): string {
  const info = readGgufInfo(src);
  const copied = info.tensors.map((t) => ({ name: t.name, shape: t.shape, type: t.type, data: new Uint8Array(readTensorBytes(src, t)) }));
  writeGguf(dst, [...info.metadata.entries(), ...keys], [...copied, ...tensors]);
  return dst;
}

/** The tail applied in float64 to final residual rows: logits [rows][V]. */
function tailLogits(tail: ModelTail, head: Float32Array, hidden: Float32Array, D: number): Float64Array {
  const V = head.length / D;
  const rows = hidden.length / D;
  const ref = trainerTail(tail, D, null);
  const out = new Float64Array(rows * V);
  for (let r = 0; r < rows; r++) {
    const x = Array.from(hidden.subarray(r * D, (r + 1) * D));
    const mean = ref.norm === 'layer' ? x.reduce((a, v) => a + v, 0) / D : 0;
    const scale = 1 / Math.sqrt(x.reduce((a, v) => a + (v - mean) ** 2, 0) / D + ref.eps);
    const y = x.map((v, d) => (v - mean) * scale * ref.normWeight[d] + (ref.normBias?.[d] ?? 0));
    for (let v = 0; v < V; v++) {
      let l = 0;
      for (let d = 0; d < D; d++) l += head[v * D + d] * y[d];
      if (ref.outputBias) l += ref.outputBias[v];
      if (ref.logitFactor !== undefined) l *= ref.logitFactor;
      if (ref.finalSoftcap !== undefined) l = ref.finalSoftcap * Math.tanh(l / ref.finalSoftcap);
      out[r * V + v] = l;
    }
  }
  return out;
}

describe("readModelTail reproduces llama.cpp's logits from the final residual", () => {
  it('every layer-range architecture has a known tail', () => {
    for (const arch of LAYER_RANGE_ARCHITECTURES) expect(TAIL_ARCHITECTURES, arch).toContain(arch);
  });

  const D = 64;
  const V = 300;
  const model = (arch: RandomArch, seed: number) => {
    const file = join(dir, `model-${arch}-${seed}.gguf`);
    writeRandomModel(file, {
      arch,
      nLayer: 3,
      nEmbd: D,
      nHead: 4,
      nHeadKv: 2,
      nFf: 128,
      nVocab: V,
      nCtx: 128,
      seed,
      tensorType: 'f32',
      ...(arch === 'gemma2' || arch === 'gemma3' || arch === 'gpt-oss' ? { slidingWindow: 8 } : {}),
      ...(arch === 'qwen3moe' || arch === 'gpt-oss' ? { nExpert: 4, nExpertUsed: 2 } : {}),
    });
    return file;
  };
  const qwen2Bias = () =>
    withExtras(
      model('qwen2', 401),
      join(dir, 'qwen2-bias.gguf'),
      [],
      [{ name: 'output.bias', shape: [V], type: GgmlType.F32, data: gaussians(new SamplerRng(4), V, 3) }],
    );
  const variants: [string, () => string, (t: ModelTail) => void][] = [
    ...LAYER_RANGE_ARCHITECTURES.map((arch, i): [string, () => string, (t: ModelTail) => void] => [
      arch,
      () => model(arch as RandomArch, 300 + i),
      (t) => {
        expect(t.norm.kind).toBe('rms');
        expect(t.outputBias).toBeUndefined();
        expect(t.logitFactor).toBe(arch === 'granite' ? 1 / 8 : undefined);
        expect(t.finalSoftcap).toBe(arch === 'gemma2' ? 30 : undefined);
      },
    ]),
    ['qwen2 with output.bias', qwen2Bias, (t) => expect(t.outputBias).toEqual(gaussians(new SamplerRng(4), V, 3))],
    [
      'gemma3 with final_logit_softcapping 2',
      () => withExtras(model('gemma3', 402), join(dir, 'gemma3-softcap.gguf'), [['gemma3.final_logit_softcapping', ggufValue.f32(2)]], []),
      (t) => expect(t.finalSoftcap).toBe(2),
    ],
  ];

  it("fitDraftHead refines through granite's logit scale, gemma2's softcap and qwen2's output bias", async () => {
    const refused = 'a draft vocabulary is not supported for models with an output bias (output.bias); fit the head with the full vocabulary';
    for (const [file, biased] of [
      [model('granite', 310), false],
      [model('gemma2', 311), false],
      [qwen2Bias(), true],
    ] as const) {
      const m = await loadModel(file);
      const ctx = await m.createContext({ contextSize: 256, threads: 1 });
      if (biased) await expect(fitDraftHead(ctx, { exitLayer: 2, vocabulary: 50 })).rejects.toThrow(refused);
      const losses: number[] = [];
      const head = await fitDraftHead(ctx, {
        exitLayer: 2,
        selfGenerate: { positions: 600, tokensPerSequence: 60 },
        steps: 40,
        vocabulary: biased ? undefined : 100,
        onProgress: (p) => p.loss !== undefined && losses.push(p.loss),
      });
      expect(head.tokenIds === null, file).toBe(biased);
      expect(head.stats!.refinementSteps).toBe(40);
      expect(losses.length).toBeGreaterThan(10);
      expect(losses.at(-1)!, file).toBeLessThan(losses[0]);
      m.dispose();
    }
  });

  for (const [name, write, expectTail] of variants) {
    it(name, async () => {
      const file = write();
      const info = readGgufInfo(file);
      const tail = readModelTail(info);
      expectTail(tail);
      const m = await loadModel(file);
      try {
        expect(m.info.architecture).toBe(tail.architecture);
        const ctx = await m.createContext({ contextSize: 128, threads: 1, kvCacheType: 'f32', flashAttention: false });
        const tokens = Array.from({ length: 12 }, (_, i) => 3 + ((i * 37) % (V - 3)));
        const r = await ctx.decodeLayers({ tokens, layers: [0, m.layerCount], outputs: 'all', logits: true, returnHidden: true });
        const expected = tailLogits(tail, readTensorF32(file, lmHeadTensor(info)), r.hidden!, D);
        let num = 0;
        let den = 0;
        for (let k = 0; k < expected.length; k++) {
          num += (r.logits![k] - expected[k]) ** 2;
          den += expected[k] ** 2;
        }
        expect(Math.sqrt(num / den), name).toBeLessThan(1e-5);
        ctx.dispose();
      } finally {
        m.dispose();
      }
    });
  }
});
