// Per-architecture layouts of the random test models: which tensors each llama.cpp architecture
// loads (names, shapes, how they are initialised) and which `<arch>.*` keys it needs beyond the
// common ones. Sources: llama.cpp's src/models/<arch>.cpp (load_arch_hparams, load_arch_tensors:
// create_tensor flag 0 = required) and src/llama-arch.cpp (tensor and key names).
import type { GgufMetadataValue } from './types.js';

/** The `general.architecture` values writeRandomModel can produce. */
export const RANDOM_ARCHS = [
  'llama',
  'qwen2',
  'qwen3',
  'qwen3moe',
  'gemma2',
  'gemma3',
  'phi3',
  'mistral3',
  'granite',
  'smollm3',
  'olmo2',
  'gpt-oss',
  'lfm2', // hybrid: short-convolution (recurrent state) layers between attention layers
] as const;

export type RandomArch = (typeof RANDOM_ARCHS)[number];

/** What fixes a LLaMA model's tensor names and shapes. */
export interface LlamaShape {
  nLayer: number;
  nEmbd: number;
  nHead: number;
  nHeadKv: number;
  nFf: number;
  nVocab: number;
  /** If false, a separate output.weight is written; if true the output reuses token_embd. */
  tiedOutput: boolean;
}

/** What fixes a model's tensor names and shapes, with its architecture. */
export interface ModelShape extends LlamaShape {
  /** Experts of MoE architectures (ignored by the others). */
  nExpert?: number;
  nExpertUsed?: number;
}

/**
 * How a tensor is initialised (see random-model.ts):
 * - token_embd, output: N(0, (logitStd / sqrt(nEmbd))^2), corrected for the architecture's scales;
 * - matrix: N(0, 1 / fan_in) with fan_in = shape[0] (attn_q / attn_k: corrected for an attention
 *   scale other than 1 / sqrt(head dim));
 * - residual: a matrix that writes into the residual stream: fan-in std times residualGain (and
 *   lateLayerScale; expert down-projections also times sqrt(nExpertUsed));
 * - norm: 1 + normJitter * N(0, 1); post_norm: a norm whose output is added to the residual stream
 *   (post-norm architectures), the norm times the residual gain;
 * - bias: N(0, 0.5^2); residual_bias: a bias added to the residual stream (times lateLayerScale);
 * - sinks: N(0, 1) (attention sinks);
 * - f32_matrix: fan-in std, always F32 (convolution kernels).
 * 1-D tensors and biases are always F32.
 */
export type TensorInit = 'token_embd' | 'output' | 'matrix' | 'residual' | 'norm' | 'post_norm' | 'bias' | 'residual_bias' | 'sinks' | 'f32_matrix';

export interface TensorSlot {
  name: string;
  /** The name without `blk.<i>.` and the `.weight` / `.bias` suffix, e.g. attn_q, ffn_down_exps. */
  role: string;
  /** Block index, or -1 for token_embd, output_norm and output. */
  layer: number;
  /** ggml ne order. */
  shape: number[];
  init: TensorInit;
}

/** Values of the scale keys of granite models (non-trivial, so a misapplied scale shows). */
export const GRANITE_SCALES = { embedding: 12, logit: 8, residual: 0.22 } as const;
/** gemma2's softcapping keys (the real models' values). */
export const GEMMA2_SOFTCAPPING = { attention: 50, final: 30 } as const;
/** lfm2.shortconv.l_cache: the convolution kernel length. */
export const LFM2_CONV_L_CACHE = 3;

/** Every second layer of an lfm2 model is attention (layers 1, 3, ...), the others short convolutions. */
export function lfm2IsAttentionLayer(il: number): boolean {
  return il % 2 === 1;
}

/** The scales an architecture's graph applies, which the initialisation compensates for. */
export interface ArchGains {
  /** Factor on the token embeddings entering the residual stream. */
  input: number;
  /** Factor on the logits. */
  output: number;
  /** Factor on every block's contribution to the residual stream. */
  residual: number;
  /** Factor on the attention scores relative to the usual 1 / sqrt(head dim). */
  attention: number;
}

export interface ArchDef {
  /** Whether output.weight must be absent ('tied'), present ('untied') or may be either. */
  output: 'tied' | 'untied' | 'either';
  /** Post-norm blocks: the residual gain goes on the norms that write into the residual stream. */
  postNorm: boolean;
  moe: boolean;
  /** Writes `<arch>.attention.sliding_window` (spec.slidingWindow). */
  slidingWindow: boolean;
  /** Name of the final norm (lfm2 calls it token_embd_norm). */
  outputNorm: string;
  gains: ArchGains;
  /** Appends the tensors of block `il`. */
  block(b: BlockBuilder, s: ModelShape, il: number): void;
  /** Keys after the common ones, without the `<arch>.` prefix. */
  keys(s: ModelShape & { slidingWindow: number }): [string, GgufMetadataValue][];
  /** `<arch>.attention.head_count_kv` (lfm2: per layer, 0 on convolution layers). */
  headCountKv?(s: ModelShape): GgufMetadataValue;
}

export class BlockBuilder {
  constructor(
    private readonly slots: TensorSlot[],
    private readonly il: number,
  ) {}
  /** A `.weight` tensor. */
  w(role: string, shape: number[], init: TensorInit): this {
    this.slots.push({ name: `blk.${this.il}.${role}.weight`, role, layer: this.il, shape, init });
    return this;
  }
  /** A `.bias` tensor. */
  b(role: string, shape: number[], init: TensorInit = 'bias'): this {
    this.slots.push({ name: `blk.${this.il}.${role}.bias`, role, layer: this.il, shape, init });
    return this;
  }
}

const headDim = (s: ModelShape) => s.nEmbd / s.nHead;
const kvDim = (s: ModelShape) => headDim(s) * s.nHeadKv;
const u32 = (value: number): GgufMetadataValue => ({ type: 'u32', value });
const f32 = (value: number): GgufMetadataValue => ({ type: 'f32', value });

/** attn_q, attn_k, attn_v (each followed by a bias when `bias`), attn_output. */
function attention(b: BlockBuilder, s: ModelShape, bias = false): void {
  const d = s.nEmbd;
  for (const [role, rows] of [
    ['attn_q', d],
    ['attn_k', kvDim(s)],
    ['attn_v', kvDim(s)],
  ] as const) {
    b.w(role, [d, rows], 'matrix');
    if (bias) b.b(role, [rows]);
  }
  b.w('attn_output', [d, d], 'residual');
}

/** The SwiGLU feed-forward: ffn_gate, ffn_up, ffn_down. */
function swiglu(b: BlockBuilder, s: ModelShape): void {
  b.w('ffn_gate', [s.nEmbd, s.nFf], 'matrix').w('ffn_up', [s.nEmbd, s.nFf], 'matrix').w('ffn_down', [s.nFf, s.nEmbd], 'residual');
}

/** Router and expert tensors (ggml ne order: [in, out, expert]); gpt-oss adds biases. */
function experts(b: BlockBuilder, s: ModelShape, bias: boolean): void {
  const { nEmbd: d, nFf: f } = s;
  const e = s.nExpert!;
  b.w('ffn_gate_inp', [d, e], 'matrix');
  if (bias) b.b('ffn_gate_inp', [e]);
  b.w('ffn_gate_exps', [d, f, e], 'matrix');
  if (bias) b.b('ffn_gate_exps', [f, e]);
  b.w('ffn_up_exps', [d, f, e], 'matrix');
  if (bias) b.b('ffn_up_exps', [f, e]);
  b.w('ffn_down_exps', [f, d, e], 'residual');
  if (bias) b.b('ffn_down_exps', [d, e], 'residual_bias');
}

const headLengthKeys = (s: ModelShape): [string, GgufMetadataValue][] => [
  ['attention.key_length', u32(headDim(s))],
  ['attention.value_length', u32(headDim(s))],
];
const expertKeys = (s: ModelShape): [string, GgufMetadataValue][] => [
  ['expert_count', u32(s.nExpert!)],
  ['expert_used_count', u32(s.nExpertUsed!)],
  ['expert_feed_forward_length', u32(s.nFf)],
];

const BASE: Omit<ArchDef, 'block'> = {
  output: 'either',
  postNorm: false,
  moe: false,
  slidingWindow: false,
  outputNorm: 'output_norm',
  gains: { input: 1, output: 1, residual: 1, attention: 1 },
  keys: () => [],
};

/** The LLaMA block: attn_norm, attn_q/k/v/output, ffn_norm, ffn_gate/up/down. */
function llamaBlock(b: BlockBuilder, s: ModelShape): void {
  b.w('attn_norm', [s.nEmbd], 'norm');
  attention(b, s);
  b.w('ffn_norm', [s.nEmbd], 'norm');
  swiglu(b, s);
}

/** gemma2 / gemma3 blocks: post-attention and post-feed-forward norms, q/k norms on gemma3. */
function gemmaBlock(qkNorm: boolean) {
  return (b: BlockBuilder, s: ModelShape): void => {
    b.w('attn_norm', [s.nEmbd], 'norm');
    attention(b, s);
    if (qkNorm) b.w('attn_q_norm', [headDim(s)], 'norm').w('attn_k_norm', [headDim(s)], 'norm');
    b.w('post_attention_norm', [s.nEmbd], 'post_norm');
    b.w('ffn_norm', [s.nEmbd], 'norm');
    swiglu(b, s);
    b.w('post_ffw_norm', [s.nEmbd], 'post_norm');
  };
}

/** Gemma multiplies the token embeddings by sqrt(n_embd). */
const gemmaGains = (s: ModelShape): ArchGains => ({ input: Math.sqrt(s.nEmbd), output: 1, residual: 1, attention: 1 });

export const ARCH_DEFS: Record<RandomArch, ArchDef | ((s: ModelShape) => ArchDef)> = {
  llama: { ...BASE, block: llamaBlock },
  mistral3: { ...BASE, block: llamaBlock },
  smollm3: { ...BASE, block: llamaBlock }, // every 4th layer without RoPE (llama.cpp's n_no_rope_layer_step)
  granite: (s) => ({
    ...BASE,
    block: llamaBlock,
    // the graph scales embeddings by embedding_scale, blocks by residual_scale, logits by
    // 1 / logit_scale, attention scores by attention.scale = 1 / head dim (as the real models)
    gains: {
      input: GRANITE_SCALES.embedding,
      output: 1 / GRANITE_SCALES.logit,
      residual: GRANITE_SCALES.residual,
      attention: Math.sqrt(headDim(s)) / headDim(s),
    },
    keys: (h) => [
      ['logit_scale', f32(GRANITE_SCALES.logit)],
      ['embedding_scale', f32(GRANITE_SCALES.embedding)],
      ['residual_scale', f32(GRANITE_SCALES.residual)],
      ['attention.scale', f32(1 / headDim(h))],
    ],
  }),
  qwen2: {
    ...BASE,
    block(b, s) {
      b.w('attn_norm', [s.nEmbd], 'norm');
      attention(b, s, true);
      b.w('ffn_norm', [s.nEmbd], 'norm');
      swiglu(b, s);
    },
  },
  qwen3: {
    ...BASE,
    block(b, s) {
      b.w('attn_norm', [s.nEmbd], 'norm');
      attention(b, s);
      b.w('attn_q_norm', [headDim(s)], 'norm').w('attn_k_norm', [headDim(s)], 'norm');
      b.w('ffn_norm', [s.nEmbd], 'norm');
      swiglu(b, s);
    },
    keys: headLengthKeys,
  },
  qwen3moe: {
    ...BASE,
    moe: true,
    block(b, s) {
      b.w('attn_norm', [s.nEmbd], 'norm');
      attention(b, s);
      b.w('attn_q_norm', [headDim(s)], 'norm').w('attn_k_norm', [headDim(s)], 'norm');
      b.w('ffn_norm', [s.nEmbd], 'norm');
      experts(b, s, false);
    },
    keys: (s) => [...headLengthKeys(s), ...expertKeys(s)],
  },
  gemma2: (s) => ({
    ...BASE,
    output: 'tied', // llama.cpp always ties gemma2's output; an output.weight fails the tensor count
    postNorm: true,
    slidingWindow: true, // every second layer (llama.cpp's default pattern for gemma2)
    gains: gemmaGains(s),
    block: gemmaBlock(false),
    keys: (h) => [
      ...headLengthKeys(h),
      ['attention.sliding_window', u32(h.slidingWindow)],
      ['attn_logit_softcapping', f32(GEMMA2_SOFTCAPPING.attention)],
      ['final_logit_softcapping', f32(GEMMA2_SOFTCAPPING.final)],
    ],
  }),
  gemma3: (s) => ({
    ...BASE,
    postNorm: true,
    slidingWindow: true, // 5 sliding-window layers per global one (llama.cpp's default pattern for gemma3)
    gains: gemmaGains(s),
    block: gemmaBlock(true),
    keys: (h) => [...headLengthKeys(h), ['attention.sliding_window', u32(h.slidingWindow)]],
  }),
  phi3: {
    ...BASE,
    block(b, s) {
      b.w('attn_norm', [s.nEmbd], 'norm');
      b.w('attn_qkv', [s.nEmbd, s.nEmbd + 2 * kvDim(s)], 'matrix'); // fused q | k | v
      b.w('attn_output', [s.nEmbd, s.nEmbd], 'residual');
      b.w('ffn_norm', [s.nEmbd], 'norm');
      b.w('ffn_up', [s.nEmbd, 2 * s.nFf], 'matrix'); // fused gate | up
      b.w('ffn_down', [s.nFf, s.nEmbd], 'residual');
    },
  },
  olmo2: {
    ...BASE,
    output: 'untied', // llama.cpp requires output.weight
    postNorm: true, // no pre-norms: q/k norms, and norms on each block's output
    block(b, s) {
      attention(b, s);
      b.w('attn_q_norm', [s.nEmbd], 'norm').w('attn_k_norm', [kvDim(s)], 'norm');
      b.w('post_attention_norm', [s.nEmbd], 'post_norm');
      swiglu(b, s);
      b.w('post_ffw_norm', [s.nEmbd], 'post_norm');
    },
  },
  'gpt-oss': {
    ...BASE,
    output: 'untied', // llama.cpp requires output.weight
    moe: true,
    slidingWindow: true, // every second layer
    block(b, s) {
      b.w('attn_norm', [s.nEmbd], 'norm');
      attention(b, s, true);
      b.b('attn_output', [s.nEmbd], 'residual_bias');
      b.w('attn_sinks', [s.nHead], 'sinks');
      b.w('post_attention_norm', [s.nEmbd], 'norm'); // gpt-oss's pre-feed-forward norm
      experts(b, s, true);
    },
    keys: (s) => [...headLengthKeys(s), ['attention.sliding_window', u32(s.slidingWindow)], ...expertKeys(s)],
  },
  lfm2: {
    ...BASE,
    outputNorm: 'token_embd_norm', // llama.cpp's name for lfm2's final norm
    block(b, s, il) {
      b.w('attn_norm', [s.nEmbd], 'norm');
      if (lfm2IsAttentionLayer(il)) {
        b.w('attn_q_norm', [headDim(s)], 'norm').w('attn_k_norm', [headDim(s)], 'norm');
        attention(b, s);
      } else {
        b.w('shortconv.conv', [LFM2_CONV_L_CACHE, s.nEmbd], 'f32_matrix');
        b.w('shortconv.in_proj', [s.nEmbd, 3 * s.nEmbd], 'matrix');
        b.w('shortconv.out_proj', [s.nEmbd, s.nEmbd], 'residual');
      }
      b.w('ffn_norm', [s.nEmbd], 'norm');
      swiglu(b, s);
    },
    keys: () => [['shortconv.l_cache', u32(LFM2_CONV_L_CACHE)]],
    headCountKv: (s) => ({
      type: 'array',
      itemType: 'u32',
      value: Array.from({ length: s.nLayer }, (_, il) => (lfm2IsAttentionLayer(il) ? s.nHeadKv : 0)),
    }),
  },
};

export function archDef(arch: RandomArch, s: ModelShape): ArchDef {
  const d = ARCH_DEFS[arch];
  return typeof d === 'function' ? d(s) : d;
}

/**
 * Every tensor of a model of `arch`, in file order: token_embd, the blocks, the final norm, and
 * output unless the output is tied to token_embd.
 */
export function archTensorSlots(arch: RandomArch, shape: ModelShape): TensorSlot[] {
  const def = archDef(arch, shape);
  const { nEmbd, nVocab } = shape;
  const slots: TensorSlot[] = [{ name: 'token_embd.weight', role: 'token_embd', layer: -1, shape: [nEmbd, nVocab], init: 'token_embd' }];
  for (let il = 0; il < shape.nLayer; il++) def.block(new BlockBuilder(slots, il), shape, il);
  slots.push({ name: `${def.outputNorm}.weight`, role: 'output_norm', layer: -1, shape: [nEmbd], init: 'norm' });
  if (!shape.tiedOutput) slots.push({ name: 'output.weight', role: 'output', layer: -1, shape: [nEmbd, nVocab], init: 'output' });
  return slots;
}
