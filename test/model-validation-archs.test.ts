// Tensor names and shapes per architecture (lib/model-file/validation-shapes.ts) on random models of
// every layer-range architecture: the written model passes; every dimension of every tensor the
// writer writes is checked; a removed tensor is 'tensor-missing' unless llama.cpp loads it as
// optional; optional tensors real files carry pass with their shape and fail with another; and
// llama.cpp itself loads what the checks accept and refuses the wrong shapes they refuse.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LAYER_RANGE_ARCHITECTURES } from '../lib/model-file/architectures.js';
import {
  GgmlType,
  archTensorSlots,
  iterateTensorBytes,
  readGgufInfo,
  writeGguf,
  writeRandomModel,
  type GgufFileInfo,
  type GgufMetadataValue,
  type GgufTensorInput,
  type RandomArch,
  type RandomModelSpec,
} from '../lib/gguf/index.js';
import { ModelFileError, checkModelInfo, loadModel, validateModelFile, type ModelFileFault } from '../lib/index.js';

const work = mkdtempSync(join(tmpdir(), 'layerskip-arch-validation-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const ARCHS = LAYER_RANGE_ARCHITECTURES as readonly RandomArch[];
const SLIDING = ['gemma2', 'gemma3', 'gpt-oss'];
// E = 64, 4 heads of 16, 2 KV heads: Q = 64, K = V = 32; n_ff 128; 4 experts; 300 tokens
const spec = (arch: RandomArch): RandomModelSpec => ({
  arch,
  nLayer: 4,
  nEmbd: 64,
  nHead: 4,
  nHeadKv: 2,
  nFf: 128,
  nVocab: 300,
  nCtx: 256,
  seed: 5,
  tensorType: 'f32',
  ...(SLIDING.includes(arch) ? { slidingWindow: 8 } : {}),
});

/** Tensors the writer writes that llama.cpp loads as optional (create_tensor_qkv's biases). */
const OPTIONAL_WRITTEN: Partial<Record<RandomArch, string[]>> = {
  qwen2: ['attn_q.bias', 'attn_k.bias', 'attn_v.bias'],
  'gpt-oss': ['attn_q.bias', 'attn_k.bias', 'attn_v.bias'],
};

/** Optional tensors llama.cpp loads for the architecture (its models/<arch>.cpp), with their shapes here. */
const LLAMA_OPTIONAL: [string, number[]][] = [
  ['output.weight', [64, 300]],
  ['rope_freqs.weight', [8]],
  ['blk.1.attn_output.bias', [64]],
  ['blk.1.attn_q.bias', [64]],
  ['blk.1.attn_k.bias', [32]],
  ['blk.1.attn_v.bias', [32]],
  ['blk.1.ffn_gate.bias', [128]],
  ['blk.1.ffn_up.bias', [128]],
  ['blk.1.ffn_down.bias', [64]],
  ['blk.1.attn_q.scale', [1]],
  ['blk.1.ffn_down.input_scale', [1]],
];
const OPTIONAL: Record<string, [string, number[]][]> = {
  llama: LLAMA_OPTIONAL,
  mistral3: LLAMA_OPTIONAL,
  granite: LLAMA_OPTIONAL,
  smollm3: [
    ['output.weight', [64, 300]],
    ['blk.1.attn_q.bias', [64]],
    ['blk.1.attn_v.bias', [32]],
    ['blk.1.ffn_up.scale', [1]],
  ],
  qwen2: [
    ['output.weight', [64, 300]],
    ['output.bias', [300]],
    ['blk.1.attn_output.scale', [1]],
  ],
  qwen3: [
    ['output.weight', [64, 300]],
    ['cls.output.weight', [64, 1]],
    ['blk.1.attn_k.bias', [32]],
  ],
  qwen3moe: [
    ['output.weight', [64, 300]],
    ['blk.1.attn_q.bias', [64]],
    ['blk.1.ffn_up_exps.scale', [4]],
    ['blk.1.ffn_gate_exps.input_scale', [4]],
  ],
  gemma2: [
    ['blk.1.attn_q.bias', [64]],
    ['blk.1.attn_k.bias', [32]],
    ['blk.1.attn_v.bias', [32]],
    ['blk.1.ffn_gate.scale', [1]],
  ],
  gemma3: [
    ['output.weight', [64, 300]],
    ['blk.1.attn_v.bias', [32]],
    ['blk.2.attn_output.scale', [1]],
  ],
  phi3: [
    ['output.weight', [64, 300]],
    ['rope_factors_long.weight', [8]],
    ['rope_factors_short.weight', [8]],
    ['blk.1.attn_qkv.bias', [128]],
    ['blk.1.attn_qkv.scale', [1]],
  ],
  olmo2: [
    ['blk.1.attn_q.bias', [64]],
    ['blk.1.ffn_down.scale', [1]],
  ],
  'gpt-oss': [
    ['blk.1.attn_output.scale', [1]],
    ['blk.1.ffn_down_exps.scale', [4]],
  ],
};

const models = new Map<RandomArch, string>();
function model(arch: RandomArch): string {
  let path = models.get(arch);
  if (!path) {
    path = join(work, `${arch}.gguf`);
    writeRandomModel(path, spec(arch));
    models.set(arch, path);
  }
  return path;
}

type Tensor = GgufTensorInput & { shape: number[] };
const zeros = (shape: number[]) => new Float32Array(shape.reduce((a, b) => a * b, 1));
let files = 0;

/** A copy of `src` through the GGUF reader and writer, its tensor list and metadata edited. */
function rewrite(src: string, edit: { tensors?: (ts: Tensor[]) => Tensor[]; metadata?: (m: Map<string, GgufMetadataValue>) => void }): string {
  const info = readGgufInfo(src);
  let tensors: Tensor[] = info.tensors.map((t) => ({ name: t.name, shape: [...t.shape], type: t.type, data: () => iterateTensorBytes(src, t) }));
  if (edit.tensors) tensors = edit.tensors(tensors);
  const metadata = new Map(info.metadata);
  edit.metadata?.(metadata);
  const path = join(work, `edit-${files++}.gguf`);
  writeGguf(path, metadata, tensors, { alignment: info.alignment });
  return path;
}
const without = (name: string) => (ts: Tensor[]) => {
  expect(
    ts.some((t) => t.name === name),
    name,
  ).toBe(true);
  return ts.filter((t) => t.name !== name);
};
const reshaped = (name: string, shape: (s: number[]) => number[]) => (ts: Tensor[]) => {
  const i = ts.findIndex((t) => t.name === name);
  expect(i, name).toBeGreaterThanOrEqual(0);
  const next = shape([...ts[i].shape]);
  return ts.map((t, j) => (j === i ? { ...t, shape: next, data: zeros(next) } : t));
};
const added = (extra: [string, number[]][]) => (ts: Tensor[]) => [
  ...ts,
  ...extra.map(([name, shape]) => ({ name, shape, type: GgmlType.F32, data: zeros(shape) })),
];

/** The fault validateModelFile reports, or null when the file passes. */
function faultOf(path: string): ModelFileFault | null {
  try {
    validateModelFile(path);
    return null;
  } catch (e) {
    if (!(e instanceof ModelFileError)) throw e;
    return e.fault;
  }
}
function infoFault(info: GgufFileInfo): [ModelFileFault | null, string] {
  try {
    checkModelInfo(info);
    return [null, ''];
  } catch (e) {
    if (!(e instanceof ModelFileError)) throw e;
    return [e.fault, e.detail];
  }
}

/** The first tensor of layer 1 whose role (name without blk.1. and .weight) is one of `roles`. */
function layer1(arch: RandomArch, ...roles: string[]): string {
  const s = spec(arch);
  const slot = archTensorSlots(arch, { ...s, tiedOutput: !['olmo2', 'gpt-oss'].includes(arch), nExpert: 4, nExpertUsed: 2 }).find(
    (t) => t.layer === 1 && roles.some((r) => t.name === `blk.1.${r}.weight`),
  );
  return slot!.name;
}

describe.each(ARCHS)('%s', (arch) => {
  it('passes as written, with every tensor archTensorSlots lists', () => {
    const s = spec(arch);
    const info = readGgufInfo(model(arch));
    const slots = archTensorSlots(arch, { ...s, tiedOutput: !info.tensors.some((t) => t.name === 'output.weight'), nExpert: 4, nExpertUsed: 2 });
    expect(info.tensors.map((t) => t.name)).toEqual(slots.map((t) => t.name));
    expect(faultOf(model(arch))).toBeNull();
  });

  it('checks every dimension of every tensor the writer writes', () => {
    const base = readGgufInfo(model(arch));
    const unchecked: string[] = [];
    for (let ti = 0; ti < base.tensors.length; ti++) {
      const t = base.tensors[ti];
      const variants = [...t.shape.map((_, d) => t.shape.map((n, i) => (i === d ? n + 1 : n))), [...t.shape, 2]];
      for (const shape of variants) {
        const info: GgufFileInfo = { ...base, tensors: base.tensors.map((u, i) => (i === ti ? { ...u, shape } : u)) };
        const [fault] = infoFault(info);
        if (fault !== 'tensor-shape') unchecked.push(`${t.name} [${shape.join(', ')}]: ${fault}`);
      }
    }
    expect(unchecked).toEqual([]);
  });

  it("refuses a missing tensor as 'tensor-missing' unless llama.cpp loads it as optional", () => {
    const names = readGgufInfo(model(arch))
      .tensors.map((t) => t.name)
      .filter((n) => !/^blk\.[023]\./.test(n));
    names.push(names.includes('blk.1.ffn_down.weight') ? 'blk.3.ffn_down.weight' : 'blk.3.ffn_down_exps.weight'); // the last layer too
    const optional = (OPTIONAL_WRITTEN[arch] ?? []).map((r) => `blk.1.${r}`);
    const got = names.map((n) => {
      const path = rewrite(model(arch), { tensors: without(n) });
      const fault = faultOf(path);
      rmSync(path);
      return [n, fault];
    });
    expect(got).toEqual(names.map((n) => [n, optional.includes(n) ? null : 'tensor-missing']));
  });

  it("refuses a changed attention width, FFN width or norm length as 'tensor-shape'", () => {
    const q = layer1(arch, 'attn_q', 'attn_qkv');
    const up = layer1(arch, 'ffn_up', 'ffn_up_exps');
    const norm = layer1(arch, 'attn_norm', 'post_attention_norm');
    expect(faultOf(rewrite(model(arch), { tensors: reshaped(q, ([e, rows]) => [e, rows + 16]) }))).toBe('tensor-shape');
    expect(faultOf(rewrite(model(arch), { tensors: reshaped(up, ([e, ...rest]) => [e + 1, ...rest]) }))).toBe('tensor-shape');
    expect(faultOf(rewrite(model(arch), { tensors: reshaped(norm, ([e]) => [e - 8]) }))).toBe('tensor-shape');
    expect(faultOf(rewrite(model(arch), { tensors: added([['blk.4.attn_norm.weight', [64]]]) }))).toBe('tensor-shape'); // past block_count
  });

  it('passes the optional tensors llama.cpp loads, and refuses them in another shape', () => {
    const extra = OPTIONAL[arch];
    expect(extra.length).toBeGreaterThan(0);
    expect(faultOf(rewrite(model(arch), { tensors: added(extra) }))).toBeNull();
    for (const [name, shape] of extra) {
      expect([name, faultOf(rewrite(model(arch), { tensors: added([[name, [shape[0] + 1, ...shape.slice(1)]]]) }))]).toEqual([name, 'tensor-shape']);
    }
  });
});

/** attn_q/k/v of every layer replaced by a fused attn_qkv (E 64: Q 64, K 32, V 32), their biases dropped. */
const fuse = (ts: Tensor[]) => {
  const out: Tensor[] = [];
  for (const t of ts) {
    const m = /^blk\.(\d+)\.attn_q\.weight$/.exec(t.name);
    if (m) out.push({ name: `blk.${m[1]}.attn_qkv.weight`, shape: [64, 64 + 32 + 32], type: GgmlType.F32, data: zeros([64, 128]) });
    else if (!/^blk\.\d+\.attn_(k\.weight|v\.weight|[qkv]\.bias)$/.test(t.name)) out.push(t);
  }
  return out;
};

/** phi3's fused attn_qkv replaced by attn_q/k/v. */
const split = (ts: Tensor[]) =>
  ts.flatMap((t): Tensor[] => {
    const m = /^blk\.(\d+)\.attn_qkv\.weight$/.exec(t.name);
    if (!m) return [t];
    return (
      [
        ['attn_q', 64],
        ['attn_k', 32],
        ['attn_v', 32],
      ] as const
    ).map(([role, rows]) => ({ name: `blk.${m[1]}.${role}.weight`, shape: [64, rows], type: GgmlType.F32, data: zeros([64, rows]) }));
  });

describe('fused attention and head sizes', () => {
  it.each(['llama', 'qwen2', 'qwen3', 'gemma3'] as RandomArch[])('%s passes with a fused attn_qkv instead of attn_q/k/v', (arch) => {
    expect(faultOf(rewrite(model(arch), { tensors: fuse }))).toBeNull();
    // half a split set without the fused tensor is missing (phi3's loader would take it and crash)
    expect(faultOf(rewrite(model(arch), { tensors: without('blk.2.attn_v.weight') }))).toBe('tensor-missing');
  });

  it('phi3 passes with split attn_q/k/v instead of its fused attn_qkv, and needs all three', () => {
    const path = rewrite(model('phi3'), { tensors: split });
    expect(faultOf(path)).toBeNull();
    // llama.cpp loads phi3's attn_q/k/v as optional and its graph would multiply by a missing one
    expect(faultOf(rewrite(path, { tensors: without('blk.1.attn_v.weight') }))).toBe('tensor-missing');
  });

  it("refuses an output.scale without an untied output.weight as 'tensor-missing'", () => {
    // with an NVFP4 token_embd llama.cpp would assert on it; otherwise it is a tensor it never creates
    expect(faultOf(rewrite(model('qwen3'), { tensors: added([['output.scale', [1]]]) }))).toBe('tensor-missing');
    expect(
      faultOf(
        rewrite(model('qwen3'), {
          tensors: added([
            ['output.weight', [64, 300]],
            ['output.scale', [1]],
          ]),
        }),
      ),
    ).toBeNull();
  });

  const set = (key: string, value: GgufMetadataValue) => (m: Map<string, GgufMetadataValue>) => void m.set(key, value);
  const u32 = (value: number): GgufMetadataValue => ({ type: 'u32', value });
  it.each<[string, RandomArch, (m: Map<string, GgufMetadataValue>) => void, RegExp]>([
    ['value head size unlike the key head size', 'qwen3', set('qwen3.attention.value_length', u32(32)), /differs from value head size/],
    ['a rope dimension below the head size where the graph asserts equality', 'qwen2', set('qwen2.rope.dimension_count', u32(8)), /must equal the head size/],
    [
      'heads that do not tile the width of attn_q [n_embd, n_embd]',
      'phi3',
      (m) => {
        for (const k of ['attention.key_length', 'attention.value_length', 'rope.dimension_count']) set(`phi3.${k}`, u32(8))(m);
      },
      /must equal phi3\.embedding_length/,
    ],
    [
      'per-layer KV head counts',
      'qwen3',
      set('qwen3.attention.head_count_kv', { type: 'array', itemType: 'u32', value: [2, 2, 4, 2] }),
      /head_count_kv is 4 for layer 2/,
    ],
    [
      'sliding-window layers with another head size',
      'gemma2',
      (m) => {
        set('gemma2.attention.key_length_swa', u32(32))(m);
        set('gemma2.attention.value_length_swa', u32(32))(m);
      },
      /layer 1 has key\/value head sizes 16\/16 but layer 0 32\/32/,
    ],
    ['no layers outside nextn_predict_layers', 'qwen2', set('qwen2.nextn_predict_layers', u32(4)), /leaves no layers/],
    [
      'gpt-oss without expert_feed_forward_length',
      'gpt-oss',
      (m) => void m.delete('gpt-oss.expert_feed_forward_length'),
      /expert_feed_forward_length is missing/,
    ],
  ])("refuse %s as 'hyperparameter'", (_what, arch, edit, message) => {
    const path = rewrite(model(arch), { metadata: edit });
    expect(() => validateModelFile(path)).toThrow(message);
    expect(faultOf(path)).toBe('hyperparameter');
  });

  it('follow the sliding-window layers: gemma3 with 4 layers of period 6 has only sliding-window layers', () => {
    // every layer uses the *_swa head sizes, so the tensors must be sized by them
    const swa32 = (m: Map<string, GgufMetadataValue>) => {
      m.set('gemma3.attention.key_length_swa', { type: 'u32', value: 32 });
      m.set('gemma3.attention.value_length_swa', { type: 'u32', value: 32 });
    };
    expect(faultOf(rewrite(model('gemma3'), { metadata: swa32 }))).toBe('tensor-shape');
    const period1 = (m: Map<string, GgufMetadataValue>) => {
      swa32(m);
      m.set('gemma3.attention.sliding_window_pattern', { type: 'u32', value: 1 });
    };
    expect(faultOf(rewrite(model('gemma3'), { metadata: period1 }))).toBeNull(); // no sliding-window layers: the keys are unused
  });
});

describe('llama.cpp agrees', () => {
  async function loads(path: string, validate: boolean): Promise<string> {
    try {
      const m = await loadModel(path, { validate });
      m.dispose();
      return 'loaded';
    } catch (e) {
      return (e as { code?: string }).code ?? String(e);
    }
  }

  it('loads every architecture with its optional tensors, and a fused attn_qkv, with and without the checks', async () => {
    const results: [string, string, string][] = [];
    const cases: [string, string][] = ARCHS.map((arch) => [`${arch}+optional`, rewrite(model(arch), { tensors: added(OPTIONAL[arch]) })]);
    cases.push(['qwen2+fused', rewrite(model('qwen2'), { tensors: fuse })], ['gpt-oss+fused', rewrite(model('gpt-oss'), { tensors: fuse })]);
    cases.push(['phi3+split', rewrite(model('phi3'), { tensors: split })]);
    for (const [name, path] of cases) results.push([name, await loads(path, false), await loads(path, true)]);
    expect(results).toEqual(cases.map(([name]) => [name, 'loaded', 'loaded']));
  }, 120_000);

  // Qwen3, Gemma 2/3, Mistral 3 and gpt-oss set the head size apart from n_embd / n_head: here 4
  // heads of 32 on a width of 64 (attn_q [64, 128], attn_output [128, 64]), which the writer never makes
  const WIDE_HEADS: RandomArch[] = ['llama', 'mistral3', 'granite', 'smollm3', 'qwen3', 'qwen3moe', 'gemma2', 'gemma3', 'gpt-oss'];
  const wideHeads = (arch: RandomArch) =>
    rewrite(model(arch), {
      metadata: (m) => {
        for (const k of ['attention.key_length', 'attention.value_length', 'rope.dimension_count']) m.set(`${arch}.${k}`, { type: 'u32', value: 32 });
      },
      tensors: (ts) =>
        ts.map((t) => {
          const role = /^blk\.\d+\.(\w+)\.(weight|bias)$/.exec(t.name);
          const shape = !role
            ? null
            : (
                {
                  'attn_q.weight': [64, 128],
                  'attn_k.weight': [64, 64],
                  'attn_v.weight': [64, 64],
                  'attn_output.weight': [128, 64],
                  'attn_q.bias': [128],
                  'attn_k.bias': [64],
                  'attn_v.bias': [64],
                  'attn_q_norm.weight': [32],
                  'attn_k_norm.weight': [32],
                } as Record<string, number[]>
              )[`${role[1]}.${role[2]}`];
          return shape ? { ...t, shape, data: zeros(shape) } : t;
        }),
    });
  it('loads and decodes models whose head size is not n_embd / n_head, with and without the checks', async () => {
    const results: [string, string, string, string][] = [];
    for (const arch of WIDE_HEADS) {
      const path = wideHeads(arch);
      let decoded = 'no';
      try {
        const m = await loadModel(path);
        const ctx = await m.createContext({ contextSize: 64, batchSize: 16, threads: 1 });
        const out = await ctx.decodeLayers({ tokens: [1, 300 - 1, 260, 7], outputs: 'last', logits: true });
        decoded = out.logits!.length === 300 ? 'decoded' : `logits ${out.logits!.length}`;
        m.dispose();
      } catch (e) {
        decoded = String(e);
      }
      results.push([arch, await loads(path, false), await loads(path, true), decoded]);
    }
    expect(results).toEqual(WIDE_HEADS.map((arch) => [arch, 'loaded', 'loaded', 'decoded']));
  }, 120_000);

  it('refuses the wrong shapes and missing tensors the checks refuse (as a load error, before any abort)', async () => {
    const results: [string, string, string][] = [];
    for (const arch of ARCHS) {
      const q = layer1(arch, 'attn_q', 'attn_qkv');
      const path = rewrite(model(arch), { tensors: reshaped(q, ([e, rows]) => [e, rows + 16]) });
      results.push([`${arch} ${q}`, await loads(path, false), await loads(path, true)]);
      const gone = rewrite(model(arch), { tensors: without(layer1(arch, 'ffn_up', 'ffn_up_exps')) });
      results.push([`${arch} no ffn_up`, await loads(gone, false), await loads(gone, true)]);
    }
    expect(results.filter(([, a, b]) => a !== 'ERR_MODEL_LOAD' || b !== 'ERR_MODEL_FILE')).toEqual([]);
  }, 120_000);
});
