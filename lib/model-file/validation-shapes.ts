// Tensor names and shapes per architecture, checked before llama.cpp reads a file. The rules are
// llama.cpp's own: src/models/<arch>.cpp load_arch_tensors (create_tensor flag 0 = required,
// TENSOR_NOT_REQUIRED = optional, shapes in ggml ne order), create_tensor_qkv (a fused attn_qkv
// instead of attn_q/k/v), the generic ".scale" / ".input_scale" pass of llama_model::load_tensors,
// and the head-size relations each graph builder asserts (GGML_ASSERT aborts the process).
//
// load_arch_tensors sizes every block with layer 0's values (n_head(), n_embd_head_k(), n_ff()), and
// so do the graph builders; the KV cache alone is sized per layer. So shapes are layer 0's, and a
// file whose per-layer KV head count or head size differs from layer 0's is refused: the cache and
// the graph would disagree and ggml_set_rows would abort.
//
// A tensor no rule names is left alone: llama.cpp refuses a file with tensors it did not create
// ("wrong number of tensors"), which is a load error, not an abort. The random-model writer
// (gguf/random-archs.ts) describes the same architectures; test/model-validation-archs.test.ts
// checks that every tensor it writes matches a rule here.

/** What the shape rules read from the file (checkHyperparameters in model-validation.ts reads and range-checks it). */
export interface ShapeHyperparameters {
  /** <arch>.block_count */
  blockCount: number;
  /** <arch>.nextn_predict_layers (llama.cpp's n_layer is block_count minus these). */
  nextn: number;
  nEmbd: number;
  nVocab: number;
  /** Per layer, or one value for all. */
  nHead: number[];
  nHeadKv: number[];
  /** feed_forward_length, per layer or one value; undefined when absent. */
  nFf: number[] | undefined;
  /** Head sizes of full-attention layers (key_length, value_length, rope.dimension_count and their defaults). */
  full: HeadSizes;
  /** Head sizes of sliding-window layers (the *_swa keys, defaulting to the full ones). */
  swa: HeadSizes;
  /** attention.sliding_window, if present. */
  slidingWindow: number | undefined;
  /** attention.sliding_window_pattern when a scalar (llama.cpp ignores an array there). */
  swaPattern: number | undefined;
  nExpert: number;
  /** expert_used_count of layer 0. */
  nExpertUsed: number;
  /** expert_feed_forward_length of layer 0, if present. */
  nFfExp: number | undefined;
  /** expert_shared_feed_forward_length (0 if absent). */
  nFfShexp: number;
  /** Classifier labels (qwen3's cls.output rows); 1 without labels. */
  nClsOut: number;
}

export interface HeadSizes {
  k: number;
  v: number;
  rot: number;
}

type ShapeFault = 'tensor-shape' | 'tensor-missing' | 'hyperparameter';
type Fail = (fault: ShapeFault, detail: string) => never;

/** The widths of one model's tensors, from layer 0's hyper-parameters. */
interface Dims {
  E: number; // n_embd
  N: number; // n_vocab
  H: number; // n_head
  Hkv: number; // n_head_kv
  Hk: number; // n_embd_head_k
  Hv: number; // n_embd_head_v
  Rot: number; // n_rot
  Q: number; // attn_q rows
  K: number; // attn_k rows
  V: number; // attn_v rows
  F: number; // n_ff
  Fx: number; // expert hidden size
  X: number; // n_expert
  Fs: number; // shared-expert hidden size
  Cls: number;
}

interface Rule {
  name: string;
  shape: number[];
  /** Required, optional, or required unless the named (fused) tensor is present. */
  need: 'required' | 'optional' | { unless: string };
}

const req = (name: string, ...shape: number[]): Rule => ({ name, shape, need: 'required' });
const opt = (name: string, ...shape: number[]): Rule => ({ name, shape, need: 'optional' });

interface ArchRules {
  /** attn_q / attn_k / attn_v rows, as load_arch_tensors passes them to create_tensor_qkv. */
  widths(d: Omit<Dims, 'Q' | 'K' | 'V'>): { Q: number; K: number; V: number };
  /** The graph asserts n_rot == head size (all but gemma2, gemma3 and phi3, which rope part of a head). */
  rotIsHead: boolean;
  /** attn_q is [n_embd, n_embd] and the graph reshapes it into n_head heads: head size * n_head == n_embd. */
  qIsEmbd: boolean;
  /** Sliding-window layers: always, or when attention.sliding_window > 0; llama.cpp's default period. */
  swa?: { when: 'always' | 'window'; period: number };
  /** The FFN: dense, llama's (dense without expert_count, else experts of n_ff), or experts of expert_feed_forward_length. */
  ffn: 'dense' | 'llama' | 'experts';
  /** Shared experts of expert_shared_feed_forward_length (only granite reads the key). */
  sharedExperts?: boolean;
  global(d: Dims): Rule[];
  block(d: Dims, b: string): Rule[];
}

/** create_tensor_qkv: a fused attn_qkv (and its bias), else attn_q/k/v with optional biases. */
function attention(d: Dims, b: string): Rule[] {
  const { E, Q, K, V } = d;
  const fused = `${b}attn_qkv.weight`;
  const split = (name: string, ...shape: number[]): Rule => ({ name, shape, need: { unless: fused } });
  return [
    opt(fused, E, Q + K + V),
    opt(`${b}attn_qkv.bias`, Q + K + V),
    split(`${b}attn_q.weight`, E, Q),
    split(`${b}attn_k.weight`, E, K),
    split(`${b}attn_v.weight`, E, V),
    opt(`${b}attn_q.bias`, Q),
    opt(`${b}attn_k.bias`, K),
    opt(`${b}attn_v.bias`, V),
    req(`${b}attn_output.weight`, Q, E),
  ];
}

const swiglu = (d: Dims, b: string): Rule[] => [req(`${b}ffn_gate.weight`, d.E, d.F), req(`${b}ffn_up.weight`, d.E, d.F), req(`${b}ffn_down.weight`, d.F, d.E)];

/** Router and expert tensors (gpt-oss adds biases). */
function experts(d: Dims, b: string, ff: number, gate: 'required' | 'optional' = 'required'): Rule[] {
  const { E, X } = d;
  return [
    req(`${b}ffn_gate_inp.weight`, E, X),
    { name: `${b}ffn_gate_exps.weight`, shape: [E, ff, X], need: gate },
    req(`${b}ffn_down_exps.weight`, ff, E, X),
    req(`${b}ffn_up_exps.weight`, E, ff, X),
  ];
}

/** token_embd, the final norm and an optional untied output. */
const head = (d: Dims, output: 'required' | 'optional' | 'tied'): Rule[] => [
  req('token_embd.weight', d.E, d.N),
  req('output_norm.weight', d.E),
  ...(output === 'tied' ? [] : [{ name: 'output.weight', shape: [d.E, d.N], need: output }]),
];

const ropeFactors = (d: Dims): Rule[] => ['rope_freqs', 'rope_factors_long', 'rope_factors_short'].map((n) => opt(`${n}.weight`, Math.floor(d.Rot / 2)));

/** llama, mistral3 and granite load the same tensors (llama.cpp's models/llama.cpp, mistral3.cpp, granite.cpp). */
const LLAMA: ArchRules = {
  widths: (d) => ({ Q: d.Hk * d.H, K: d.Hk * d.Hkv, V: d.Hv * d.Hkv }),
  rotIsHead: true,
  qIsEmbd: false,
  ffn: 'llama',
  global: (d) => [...head(d, 'optional'), ...ropeFactors(d)],
  block(d, b) {
    const rules = [req(`${b}attn_norm.weight`, d.E), ...attention(d, b), opt(`${b}attn_output.bias`, d.E), req(`${b}ffn_norm.weight`, d.E)];
    if (d.X === 0) {
      rules.push(...swiglu(d, b), opt(`${b}ffn_gate.bias`, d.F), opt(`${b}ffn_down.bias`, d.E), opt(`${b}ffn_up.bias`, d.F));
    } else {
      rules.push(...experts(d, b, d.F, 'optional'));
      if (d.Fs > 0)
        rules.push(req(`${b}ffn_gate_shexp.weight`, d.E, d.Fs), req(`${b}ffn_up_shexp.weight`, d.E, d.Fs), req(`${b}ffn_down_shexp.weight`, d.Fs, d.E));
    }
    return rules;
  },
};

const qwen3Widths = (d: Omit<Dims, 'Q' | 'K' | 'V'>) => ({ Q: d.Hk * d.H, K: d.Hv * d.Hkv, V: d.Hv * d.Hkv }); // n_embd_gqa is the V width
const embdWidths = (d: Omit<Dims, 'Q' | 'K' | 'V'>) => ({ Q: d.E, K: d.Hv * d.Hkv, V: d.Hv * d.Hkv });
const headKWidths = LLAMA.widths;

function gemma(qkNorm: boolean): (d: Dims, b: string) => Rule[] {
  return (d, b) => [
    req(`${b}attn_norm.weight`, d.E),
    ...attention(d, b),
    req(`${b}post_attention_norm.weight`, d.E),
    ...(qkNorm ? [req(`${b}attn_k_norm.weight`, d.Hk), req(`${b}attn_q_norm.weight`, d.Hk)] : []),
    req(`${b}ffn_norm.weight`, d.E),
    ...swiglu(d, b),
    req(`${b}post_ffw_norm.weight`, d.E),
  ];
}

/** Per architecture (general.architecture): the layer-range architectures of lib/model-file/architectures.ts. */
export const ARCH_TENSOR_RULES: Readonly<Record<string, ArchRules>> = {
  llama: LLAMA,
  mistral3: LLAMA,
  granite: { ...LLAMA, sharedExperts: true },
  smollm3: {
    ...LLAMA,
    ffn: 'dense',
    global: (d) => head(d, 'optional'),
    block: (d, b) => [req(`${b}attn_norm.weight`, d.E), ...attention(d, b), req(`${b}ffn_norm.weight`, d.E), ...swiglu(d, b)],
  },
  qwen2: {
    widths: embdWidths,
    rotIsHead: true,
    qIsEmbd: true,
    ffn: 'dense',
    global: (d) => [...head(d, 'optional'), opt('output.bias', d.N)],
    block: (d, b) => [req(`${b}attn_norm.weight`, d.E), ...attention(d, b), req(`${b}ffn_norm.weight`, d.E), ...swiglu(d, b)],
  },
  qwen3: {
    widths: qwen3Widths,
    rotIsHead: true,
    qIsEmbd: false,
    ffn: 'dense',
    global: (d) => [...head(d, 'optional'), opt('cls.output.weight', d.E, d.Cls)],
    block: (d, b) => [
      req(`${b}attn_norm.weight`, d.E),
      ...attention(d, b),
      req(`${b}attn_k_norm.weight`, d.Hk),
      req(`${b}attn_q_norm.weight`, d.Hk),
      req(`${b}ffn_norm.weight`, d.E),
      ...swiglu(d, b),
    ],
  },
  qwen3moe: {
    widths: qwen3Widths,
    rotIsHead: true,
    qIsEmbd: false,
    ffn: 'experts',
    global: (d) => head(d, 'optional'),
    block: (d, b) => [
      req(`${b}attn_norm.weight`, d.E),
      ...attention(d, b),
      req(`${b}attn_k_norm.weight`, d.Hk),
      req(`${b}attn_q_norm.weight`, d.Hk),
      req(`${b}ffn_norm.weight`, d.E),
      ...experts(d, b, d.Fx),
    ],
  },
  gemma2: {
    widths: headKWidths,
    rotIsHead: false,
    qIsEmbd: false,
    swa: { when: 'always', period: 2 },
    ffn: 'dense',
    global: (d) => head(d, 'tied'), // the output is always token_embd
    block: gemma(false),
  },
  gemma3: {
    widths: headKWidths,
    rotIsHead: false,
    qIsEmbd: false,
    swa: { when: 'window', period: 6 },
    ffn: 'dense',
    global: (d) => head(d, 'optional'),
    block: gemma(true),
  },
  phi3: {
    widths: embdWidths,
    rotIsHead: false,
    qIsEmbd: true,
    ffn: 'dense',
    global: (d) => [...head(d, 'optional'), ...ropeFactors(d).slice(1)],
    // llama.cpp loads phi3's attn_q/k/v as optional even without attn_qkv, and its graph then
    // multiplies by a null tensor: the rules require the fused tensor or all three
    block: (d, b) => [
      req(`${b}attn_norm.weight`, d.E),
      ...attention(d, b),
      req(`${b}ffn_norm.weight`, d.E),
      req(`${b}ffn_down.weight`, d.F, d.E),
      req(`${b}ffn_up.weight`, d.E, 2 * d.F), // fused gate | up
    ],
  },
  olmo2: {
    widths: embdWidths,
    rotIsHead: true,
    qIsEmbd: true,
    swa: { when: 'window', period: 4 },
    ffn: 'dense',
    global: (d) => head(d, 'required'),
    block: (d, b) => [
      ...attention(d, b),
      req(`${b}attn_q_norm.weight`, d.E),
      req(`${b}attn_k_norm.weight`, d.Hkv * Math.floor(d.E / d.H)),
      req(`${b}post_attention_norm.weight`, d.E),
      ...swiglu(d, b),
      req(`${b}post_ffw_norm.weight`, d.E),
    ],
  },
  'gpt-oss': {
    widths: (d) => ({ Q: d.H * d.Rot, K: d.Hkv * d.Rot, V: d.Hkv * d.Rot }),
    rotIsHead: true,
    qIsEmbd: false,
    swa: { when: 'always', period: 2 },
    ffn: 'experts',
    global: (d) => head(d, 'required'),
    block: (d, b) => [
      req(`${b}attn_norm.weight`, d.E),
      req(`${b}post_attention_norm.weight`, d.E),
      ...attention(d, b),
      req(`${b}attn_sinks.weight`, d.H),
      ...experts(d, b, d.Fx),
      req(`${b}attn_output.bias`, d.E),
      req(`${b}ffn_gate_inp.bias`, d.X),
      req(`${b}ffn_gate_exps.bias`, d.Fx, d.X),
      req(`${b}ffn_down_exps.bias`, d.E, d.X),
      req(`${b}ffn_up_exps.bias`, d.Fx, d.X),
    ],
  },
};

/** Matrices whose optional per-tensor `.scale` / `.input_scale` ([1]; experts: [n_expert]) load_tensors looks for. */
const SCALED = /^(blk\.\d+\.)(attn_q|attn_k|attn_v|attn_output|attn_qkv|ffn_gate|ffn_down|ffn_up|ffn_(?:gate|down|up)_(shexp|exps))\.weight$/;

/** llama.cpp's is_swa(il) for the architecture (set_swa_pattern without dense_first). */
function isSwaLayer(rules: ArchRules, hp: ShapeHyperparameters, il: number): boolean {
  const swa = rules.swa;
  if (!swa || (swa.when === 'window' && !(hp.slidingWindow! > 0))) return false;
  const n = hp.swaPattern ?? swa.period;
  return n === 0 || il % n < n - 1;
}

/** Checks the tensors of an architecture that has rules; other architectures are not checked here. */
export function checkArchTensors(arch: string, tensors: readonly { name: string; shape: number[] }[], hp: ShapeHyperparameters, fail: Fail): void {
  const rules = ARCH_TENSOR_RULES[arch];
  if (!rules) return;
  const k = (name: string) => `${arch}.${name}`;
  const nLayer = hp.blockCount - hp.nextn;
  if (nLayer < 1) fail('hyperparameter', `${k('nextn_predict_layers')} ${hp.nextn} leaves no layers of the ${hp.blockCount} in ${k('block_count')}`);
  const at = (a: number[], il: number) => a[Math.min(il, a.length - 1)];
  const H = hp.nHead[0];
  const Hkv = hp.nHeadKv[0];
  if (!(H > 0)) fail('hyperparameter', `${k('attention.head_count')} is missing or 0`);

  // layer 0's head sizes size every block; the KV cache is sized per layer
  const sizesOf = (il: number) => (isSwaLayer(rules, hp, il) ? hp.swa : hp.full);
  const h0 = sizesOf(0);
  for (let il = 1; il < nLayer; il++) {
    const h = sizesOf(il);
    if (at(hp.nHeadKv, il) !== Hkv)
      fail(
        'hyperparameter',
        `${k('attention.head_count_kv')} is ${at(hp.nHeadKv, il)} for layer ${il} but ${Hkv} for layer 0: ${arch} builds every layer with layer 0's`,
      );
    if (h.k !== h0.k || h.v !== h0.v)
      fail(
        'hyperparameter',
        `layer ${il} has key/value head sizes ${h.k}/${h.v} but layer 0 ${h0.k}/${h0.v} (sliding-window and full layers): ${arch} builds every layer with layer 0's`,
      );
  }
  if (!(h0.k > 0 && h0.rot >= 0 && h0.rot % 2 === 0 && h0.rot <= h0.k))
    fail('hyperparameter', `layer 0's head size ${h0.k} and rope dimension ${h0.rot} must be positive, even and at most the head size`);
  // the graph builders' GGML_ASSERTs and reshapes
  if (h0.k !== h0.v)
    fail(
      'hyperparameter',
      `key head size ${h0.k} differs from value head size ${h0.v} (${k('attention.key_length')} / value_length), which ${arch} does not support`,
    );
  if (rules.rotIsHead && h0.rot !== h0.k) fail('hyperparameter', `${k('rope.dimension_count')} ${h0.rot} must equal the head size ${h0.k} for ${arch}`);
  if (rules.qIsEmbd && h0.k * H !== hp.nEmbd)
    fail('hyperparameter', `head size ${h0.k} times ${H} heads must equal ${k('embedding_length')} ${hp.nEmbd} for ${arch}`);

  const F = hp.nFf === undefined ? 0 : hp.nFf[0];
  let X = 0;
  let Fx = 0;
  if (rules.ffn === 'experts') {
    X = hp.nExpert;
    if (X === 0 || hp.nExpertUsed === 0) fail('hyperparameter', `${arch} needs ${k('expert_count')} and ${k('expert_used_count')} above 0`);
    // qwen3moe falls back to n_ff / n_expert_used; gpt-oss requires the key
    Fx = hp.nFfExp || (arch === 'gpt-oss' ? 0 : Math.floor(F / hp.nExpertUsed));
    if (!(Fx > 0)) fail('hyperparameter', `${k('expert_feed_forward_length')} is missing or 0`);
  } else {
    if (rules.ffn === 'llama') X = hp.nExpert;
    if (F === 0) fail('hyperparameter', `${k('feed_forward_length')} is missing or 0`);
  }
  const base = { E: hp.nEmbd, N: hp.nVocab, H, Hkv, Hk: h0.k, Hv: h0.v, Rot: h0.rot, F, Fx, X, Fs: rules.sharedExperts ? hp.nFfShexp : 0, Cls: hp.nClsOut };
  const d: Dims = { ...base, ...rules.widths(base) };

  const all = rules.global(d);
  for (let il = 0; il < nLayer; il++) all.push(...rules.block(d, `blk.${il}.`));
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const scales: Rule[] = [];
  for (const r of all) {
    const m = SCALED.exec(r.name);
    if (m && byName.has(r.name)) for (const s of ['scale', 'input_scale']) scales.push(opt(r.name.replace(/weight$/, s), m[3] === 'exps' ? X : 1));
  }
  if (all.some((r) => r.name === 'output.weight')) scales.push(opt('output.scale', 1), opt('output.input_scale', 1));

  for (const r of [...all, ...scales]) {
    const t = byName.get(r.name);
    if (!t) {
      const need = r.need;
      if (need === 'required') fail('tensor-missing', `tensor ${r.name} is missing`);
      if (typeof need === 'object' && !byName.has(need.unless)) fail('tensor-missing', `tensor ${r.name} is missing (and there is no fused ${need.unless})`);
      continue;
    }
    const got = t.shape.slice();
    while (got.length > r.shape.length && got[got.length - 1] === 1) got.pop();
    if (got.length !== r.shape.length || got.some((n, i) => n !== r.shape[i])) {
      fail('tensor-shape', `${r.name} has shape [${t.shape.join(', ')}], expected [${r.shape.join(', ')}]`);
    }
  }
  // a tied output's scale would make llama.cpp assert (NVFP4 token_embd) or count it as unused
  for (const name of ['output.scale', 'output.input_scale']) {
    if (byName.has(name) && !byName.has('output.weight')) fail('tensor-missing', `tensor ${name} is present but output.weight is not`);
  }
  const layerOf = /^blk\.(\d+)\./;
  for (const t of tensors) {
    const m = layerOf.exec(t.name);
    if (m && Number(m[1]) >= hp.blockCount) fail('tensor-shape', `tensor ${t.name} is past the ${hp.blockCount} layers of ${k('block_count')}`);
  }
}
