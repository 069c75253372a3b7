// The LayerSkip training experiment (BENCHMARKS.md, "Training"): from scratch, a baseline and the
// recipe on the same data and budget; continual, the baseline trained 25% further with and without
// the recipe. Each arm reports per-exit held-out cross-entropy, accuracy and agreement with the
// final layer, perplexity, time and peak memory.
//
//   node bench/run.mjs train [arms] [tokens]      arms: a comma list of scratch-base, scratch-ls,
//                                                 cont-base, cont-ls (default these four), copy-ls
//                                                 (the committed model trained further on text with
//                                                 repeated passages, for the lookup benchmark),
//                                                 copy-long (copy-ls further on 128-token windows,
//                                                 longer copies and edit frames), copy-edit
//                                                 (copy-long with edit passages at document starts),
//                                                 copy-frame (copy-edit on 256-token windows,
//                                                 longer passages, copies changing 2% of tokens);
//                                                 tokens: 2050000 (copy arms: 2 times it,
//                                                 LAYERSKIP_COPY_BUDGET); LAYERSKIP_TRAIN_RESUME=1
//                                                 continues an arm from its checkpoint
// Models go to models-generated/train/ (git-ignored); results to bench/results/train.json.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createModel, loadModel, trainModel, DEMO_MODEL_PATH, type TrainModelOptions, type TrainModelResult } from 'layerskip';
import { f16BitsToF32, GgmlType, hashSeed, iterateTensorBytes, readGgufInfo, readTensorBytes, writeGguf, Xoshiro128 } from 'layerskip/gguf';
import { loadCorpus } from './corpus.js';

const dir = join('models-generated', 'train');
mkdirSync(dir, { recursive: true });
mkdirSync(join('bench', 'results'), { recursive: true });
const arms = (process.argv[2] ?? 'scratch-base,scratch-ls,cont-base,cont-ls').split(',');
const budget = Number(process.argv[3] ?? 2_050_000);
const threads = Number(process.env.LAYERSKIP_TRAIN_THREADS ?? 2);
const copyBudgetFactor = Number(process.env.LAYERSKIP_COPY_BUDGET ?? 2);
// continue an arm from its checkpoint (same arm, budget and seed): long runs span sessions
const resume = process.env.LAYERSKIP_TRAIN_RESUME === '1';

/** The corpus tokenized once with the demo model's 512-token tokenizer (cached as int32 files). */
async function tokens(): Promise<{ train: Int32Array; test: Int32Array }> {
  const cache = (s: string): string => join(dir, `corpus-${s}.i32`);
  if (existsSync(cache('train')) && existsSync(cache('test'))) {
    const read = (s: string): Int32Array => {
      const b = readFileSync(cache(s));
      return new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    };
    return { train: read('train'), test: read('test') };
  }
  const corpus = loadCorpus();
  const model = await loadModel(DEMO_MODEL_PATH);
  const tok = async (docs: string[]): Promise<Int32Array> => {
    const parts: Int32Array[] = [];
    for (const d of docs) parts.push(await model.tokenizeAsync(d, { addBos: true }));
    const out = new Int32Array(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  };
  const out = { train: await tok(corpus.train), test: await tok(corpus.test) };
  model.dispose();
  writeFileSync(cache('train'), out.train);
  writeFileSync(cache('test'), out.test);
  return out;
}

const data = await tokens();
console.error(`corpus: ${data.train.length} training tokens, ${data.test.length} held-out tokens`);

const SHAPE = { layers: 12, embeddingSize: 128, heads: 4, feedForwardSize: 384 };
const init = join(dir, 'init.gguf');
if (!existsSync(init)) await createModel(init, { ...SHAPE, tokenizer: DEMO_MODEL_PATH, contextLength: 2048, seed: 1, name: 'layerskip-train-init' });

const RECIPE_SCRATCH = { layerDropout: { pMax: 0.1, scale: 'exp', fromScratch: true }, earlyExitLoss: { scale: 0.2, curriculum: 'rotational' } } as const;
const RECIPE_CONT = { layerDropout: { pMax: 0.1, scale: 'exp' }, earlyExitLoss: { scale: 0.2, curriculum: 'rotational' } } as const;
const common = (output: string, tokenBudget: number): TrainModelOptions => ({
  output,
  data: { tokens: data.train },
  evalData: { tokens: data.test },
  tokens: tokenBudget,
  batchSize: 8,
  contextSize: 128,
  learningRate: 2e-3,
  threads,
  seed: 1,
  evalTokens: 65536,
  checkpointInterval: 250,
  onProgress: (p) => {
    if (p.phase === 'train' && p.step % 50 === 0) {
      process.stderr.write(`  step ${p.step}/${p.steps} loss ${p.loss.toFixed(3)} ${p.tokensPerSecond.toFixed(0)} tok/s eta ${Math.round(p.etaSeconds)} s\n`);
    }
  },
});
/**
 * The committed Q8_0 model as F32 (training needs F32 weights; llama.cpp refuses to requantize
 * Q8_0): each block's 32 int8 values times its F16 scale.
 */
function dequantizedCommitted(): string {
  const out = join(dir, 'brown-12L-dequantized.gguf');
  if (existsSync(out)) return out;
  const src = join('models', 'layerskip-brown-12L.Q8_0.gguf');
  const info = readGgufInfo(src);
  const tensors = info.tensors.map((t) => {
    if (t.type === GgmlType.F32) return { name: t.name, shape: t.shape, type: t.type, data: () => iterateTensorBytes(src, t) };
    if (t.type !== GgmlType.Q8_0) throw new Error(`${src}: tensor ${t.name} has type ${t.type}, expected F32 or Q8_0`);
    const bytes = readTensorBytes(src, t);
    const values = new Float32Array((bytes.length / 34) * 32);
    for (let b = 0; b < bytes.length / 34; b++) {
      const scale = f16BitsToF32(bytes[b * 34] | (bytes[b * 34 + 1] << 8));
      for (let i = 0; i < 32; i++) values[b * 32 + i] = scale * ((bytes[b * 34 + 2 + i] << 24) >> 24);
    }
    return { name: t.name, shape: t.shape, type: GgmlType.F32, data: values };
  });
  const metadata = new Map(info.metadata);
  const fileType = metadata.get('general.file_type');
  if (fileType) metadata.set('general.file_type', { ...fileType, value: 0 } as typeof fileType); // all F32
  writeGguf(out, metadata, tensors);
  return out;
}

/** A token array of `length` filled from the start by `put`, which cuts what does not fit. */
function tokenWriter(length: number): { out: Int32Array; put: (a: ArrayLike<number>) => void; full: () => boolean } {
  const out = new Int32Array(length);
  let o = 0;
  const put = (a: ArrayLike<number>) => {
    const n = Math.min(a.length, length - o);
    for (let i = 0; i < n; i++) out[o + i] = a[i];
    o += n;
  };
  return { out, put, full: () => o >= length };
}

/**
 * Training text in which passages recur, so that a model learns to copy from its context as
 * language models do (quotes, edits, repeated names): a unit is a span of the corpus or, with
 * probability `scrambledShare`, tokens drawn one by one from it; with probability `repeatShare` it
 * is followed by a few tokens of other text and a repeat of its first 30-100%. `unit` is the
 * length range of spans (scrambled units are half as long), so that a training window usually
 * holds both copies.
 */
function copyAugmented(
  stream: Int32Array,
  length: number,
  seed: number,
  { scrambledShare = 0, repeatShare = 0.8, unit = [40, 160] }: { scrambledShare?: number; repeatShare?: number; unit?: [number, number] } = {},
): Int32Array {
  const rng = new Xoshiro128(hashSeed(seed, 'copy-augmented'));
  const { out, put, full } = tokenWriter(length);
  const span = (n: number) => {
    const at = Math.floor(rng.nextFloat() * (stream.length - n));
    return stream.subarray(at, at + n);
  };
  // A unit of tokens drawn one by one from anywhere in the corpus (its unigram distribution): text
  // no statistic predicts, so its repeat is learnt only by copying (the induction-head task).
  const scrambled = (n: number): Int32Array => {
    const u = new Int32Array(n);
    for (let i = 0; i < n; i++) u[i] = stream[Math.floor(rng.nextFloat() * stream.length)];
    return u;
  };
  while (!full()) {
    const n = unit[0] + Math.floor(rng.nextFloat() * (unit[1] - unit[0]));
    const a = rng.nextFloat() < scrambledShare ? scrambled(Math.max(4, n >> 1)) : span(n);
    put(a);
    if (rng.nextFloat() < repeatShare) {
      put(span(Math.floor(rng.nextFloat() * 8)));
      put(a.subarray(0, Math.max(4, Math.floor(a.length * (0.3 + 0.7 * rng.nextFloat())))));
    }
  }
  return out;
}

/**
 * An edit workflow's text: a passage, a line that asks for it again ("The same text, edited:"),
 * and the passage again with one token in 20 replaced. `frames` are the tokenized lines; the
 * lookup benchmark's own line ("The same text, revised:") is not among them, so the benchmark
 * measures whether the model generalises the frame, not whether it memorised it.
 */
function editFramed(
  stream: Int32Array,
  length: number,
  seed: number,
  frames: Int32Array[],
  unit: [number, number],
  /** Start each passage at a sentence (after this token, the period) behind a BOS, as a document does. */
  sentenceAfter?: number,
  /** The share of the copy's tokens replaced by random tokens of the corpus. */
  changeRate = 0.05,
): Int32Array {
  const rng = new Xoshiro128(hashSeed(seed, 'edit-framed'));
  const { out, put, full } = tokenWriter(length);
  const starts: number[] = [];
  if (sentenceAfter !== undefined) for (let i = 1; i < stream.length - unit[1]; i++) if (stream[i - 1] === sentenceAfter) starts.push(i);
  while (!full()) {
    const n = unit[0] + Math.floor(rng.nextFloat() * (unit[1] - unit[0]));
    const at = starts.length > 0 ? starts[Math.floor(rng.nextFloat() * starts.length)] : Math.floor(rng.nextFloat() * (stream.length - n));
    const a = stream.subarray(at, at + n);
    if (starts.length > 0) put([BOS]);
    put(a);
    put(frames[Math.floor(rng.nextFloat() * frames.length)]);
    const b = Int32Array.from(a);
    for (let i = 0; i < b.length; i++) if (rng.nextFloat() < changeRate) b[i] = stream[Math.floor(rng.nextFloat() * stream.length)];
    put(b);
  }
  return out;
}

/** Two streams interleaved in blocks of `block` tokens, a share `firstShare` of blocks from `a`. */
function mixed(a: Int32Array, b: Int32Array, firstShare: number, block: number, seed: number): Int32Array {
  const rng = new Xoshiro128(hashSeed(seed, 'mixed'));
  const out = new Int32Array(Math.min(a.length, b.length));
  for (let o = 0; o < out.length; o += block) {
    const from = rng.nextFloat() < firstShare ? a : b;
    out.set(from.subarray(o, Math.min(o + block, out.length)), o);
  }
  return out;
}

const BOS = 1;

/** The edit frames' lines and the period, in the demo model's tokens. */
async function editTokens(): Promise<{ frames: Int32Array[]; period: number }> {
  const model = await loadModel(DEMO_MODEL_PATH);
  const lines = [
    'The same text, edited:',
    'The same text, corrected:',
    'The same passage, revised:',
    'Revised version:',
    'The text again, with changes:',
    'Here is the edited text:',
  ];
  const frames = await Promise.all(lines.map((l) => model.tokenizeAsync(`\n\n${l}\n`, { addBos: false })));
  const sentence = await model.tokenizeAsync('It ended.', { addBos: false });
  model.dispose();
  return { frames, period: sentence[sentence.length - 1] };
}

/**
 * Copy-augmented text (units of `copyUnit` tokens, 24-100 unless given) and edit-framed passages
 * (`editUnit` tokens, 20-60, their copies changing a share `changeRate` of tokens, 5%) in blocks of
 * 1024 tokens, a share `copyShare` of the blocks (half) copy-augmented; `atDocumentStart` starts the
 * passages behind a BOS at a sentence.
 */
async function copyAndEdit(
  seed: number,
  atDocumentStart: boolean,
  {
    copyUnit = [24, 100],
    editUnit = [20, 60],
    changeRate = 0.05,
    copyShare = 0.5,
  }: { copyUnit?: [number, number]; editUnit?: [number, number]; changeRate?: number; copyShare?: number } = {},
): Promise<Int32Array> {
  const { frames, period } = await editTokens();
  return mixed(
    copyAugmented(data.train, 12_000_000, seed, { scrambledShare: 0.4, repeatShare: 0.9, unit: copyUnit }),
    editFramed(data.train, 12_000_000, seed, frames, editUnit, atDocumentStart ? period : undefined, changeRate),
    copyShare,
    1024,
    seed,
  );
}

/** The copy arms' options: 128-token windows, batch 16, 2e-3 after the warm-up, unless given. */
const longWindows = (
  output: string,
  tokens: Int32Array,
  { batchSize = 16, contextSize = 128, learningRate = 2e-3 }: Pick<TrainModelOptions, 'batchSize' | 'contextSize' | 'learningRate'> = {},
): TrainModelOptions => ({
  ...common(output, Math.round(budget * copyBudgetFactor)),
  ...RECIPE_CONT,
  data: { tokens },
  batchSize,
  contextSize,
  learningRate,
});

const plan: Record<string, () => Promise<TrainModelOptions & { from: string }> | (TrainModelOptions & { from: string })> = {
  // copy-ls trained further on 128-token windows: longer units, so that it copies passages of
  // 100 tokens, and half of them in an edit frame (a passage, a line asking for it again, the
  // passage with 5% of its tokens changed), so that it begins a copy after such a line
  'copy-long': async () => ({
    from: join(dir, 'copy-ls.gguf'),
    ...longWindows(join(dir, 'copy-long.gguf'), await copyAndEdit(2, false)),
    minLearningRate: 2e-3,
  }),
  // the committed model trained further on 64-token windows of copy-augmented text (the lookup
  // benchmark's model). Short windows and a high learning rate make copying appear sooner: the
  // induction calibration (bench/pytorch/induction.py) learnt it after ~13.5M tokens at 64 tokens and
  // 3e-3, against ~49M at 256 tokens and 1e-3 (BENCHMARKS.md section 16, stop 33)
  'copy-ls': () => ({
    from: dequantizedCommitted(),
    ...common(join(dir, 'copy-ls.gguf'), Math.round(budget * copyBudgetFactor)),
    ...RECIPE_CONT,
    data: { tokens: copyAugmented(data.train, 12_000_000, 1, { scrambledShare: 0.6, repeatShare: 0.9, unit: [12, 40] }) },
    batchSize: 32,
    contextSize: 64,
    // constant after the warm-up: at 1e-3 the calibration had not learnt to copy at 19.7M tokens, and
    // a cosine decay from 3e-3 spends most of the budget below 2e-3
    learningRate: 3e-3,
    minLearningRate: 3e-3,
  }),
  // copy-long trained further with its edit passages at the start of a document (a BOS, then a
  // sentence), as the lookup benchmark's prompts are: copy-long began the revised copy mid-passage
  'copy-edit': async () => ({
    from: join(dir, 'copy-long.gguf'),
    ...longWindows(join(dir, 'copy-edit.gguf'), await copyAndEdit(3, true)),
    minLearningRate: 5e-4,
  }),
  // copy-edit trained further on 256-token windows, passages of 40-110 tokens (the lookup benchmark's
  // are up to 81, and its generations run past 128 positions, copy-edit's window) and revised copies
  // that change 2% of the tokens: copy-edit skipped words of a passage's first sentence and lost
  // its place past its 128 trained positions (BENCHMARKS.md section 16, "Stop 43")
  'copy-frame': async () => ({
    from: join(dir, 'copy-edit.gguf'),
    ...longWindows(join(dir, 'copy-frame.gguf'), await copyAndEdit(4, true, { copyUnit: [40, 120], editUnit: [40, 110], changeRate: 0.02, copyShare: 0.4 }), {
      batchSize: 8,
      contextSize: 256,
      learningRate: 1e-3,
    }),
    minLearningRate: 3e-4,
  }),
  'scratch-base': () => ({ from: init, ...common(join(dir, 'scratch-base.gguf'), budget) }),
  'scratch-ls': () => ({ from: init, ...common(join(dir, 'scratch-ls.gguf'), budget), ...RECIPE_SCRATCH }),
  'cont-base': () => ({ from: join(dir, 'scratch-base.gguf'), ...common(join(dir, 'cont-base.gguf'), Math.round(budget / 4)), learningRate: 5e-4 }),
  'cont-ls': () => ({ from: join(dir, 'scratch-base.gguf'), ...common(join(dir, 'cont-ls.gguf'), Math.round(budget / 4)), learningRate: 5e-4, ...RECIPE_CONT }),
};

const resultsFile = join('bench', 'results', 'train.json');
const results: Record<string, unknown> = existsSync(resultsFile) ? JSON.parse(readFileSync(resultsFile, 'utf8')) : {};
for (const arm of arms) {
  if (!plan[arm]) throw new Error(`unknown arm ${arm}`);
  const { from, ...options } = await plan[arm]();
  console.error(`${arm}: ${from} -> ${options.output}, ${options.tokens} tokens`);
  const r: TrainModelResult = await trainModel(from, { ...options, resume });
  const row = {
    tokens: r.tokens,
    seconds: r.seconds,
    tokensPerSecond: r.tokensPerSecond,
    peakRssMiB: r.peakRss / 2 ** 20,
    perplexity: r.perplexity,
    exits: r.evaluation.map((e) => ({ layer: e.layer, ce: e.crossEntropy, accuracy: e.accuracy, agreement: e.agreement })),
  };
  results[arm] = row;
  writeFileSync(resultsFile, JSON.stringify(results, null, 1));
  console.log(
    `${arm}: ${r.seconds.toFixed(0)} s, ${r.tokensPerSecond.toFixed(0)} tok/s, peak RSS ${row.peakRssMiB.toFixed(0)} MiB, perplexity ${r.perplexity.toFixed(2)}`,
  );
  console.log('  exit  ce     acc    agree');
  for (const e of row.exits) console.log(`  ${String(e.layer).padStart(4)}  ${e.ce.toFixed(3)}  ${e.accuracy.toFixed(3)}  ${e.agreement.toFixed(3)}`);
}
