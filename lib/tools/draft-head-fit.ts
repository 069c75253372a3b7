// Calibration of a draft head (`fitDraftHead`): teacher-force calibration text (the user's, or the
// model's own sampled generations), collect the layer-E residuals, the final residuals and the full
// model's next-token distributions; choose a draft vocabulary from the full model's greedy tokens;
// fit the exit adapter in closed form (ridge, strength by cross-validation), refine it against the
// full model's distributions with ggml-opt in native code, and measure held-out agreement with the
// addon's own early exit before and after.
import { availableParallelism } from 'node:os';
import { ridgeCv } from '../analysis/ridge.js';
import type { Context } from '../runtime/context.js';
import { checkInteger, checkNumber } from '../native/errors.js';
import { native } from '../native/binding.js';
import { lmHeadTensor, readHeadRows, readModelTail, trainerTail, type ModelTail } from '../draft-head/base-weights.js';
import { checkDraftVocabularySupported } from '../draft-head/install.js';
import { DraftHead, type DraftHeadStats } from '../draft-head/draft-head.js';
import { checkOptionKeys, type KeysOf } from '../util/option-keys.js';

export interface FitDraftHeadProgress {
  phase: 'generate' | 'collect' | 'ridge' | 'refine' | 'evaluate';
  done: number;
  total: number;
  /** Refinement: the mean training loss of the latest steps. */
  loss?: number;
}

export interface FitDraftHeadOptions {
  /** Draft with layers [0, exitLayer). */
  exitLayer: number;
  /** Calibration text (teacher-forced). Default: the model's own sampled generations (`selfGenerate`). */
  text?: string;
  /** Self-distillation data: sampled generations from generic prompts. */
  selfGenerate?: { prompts?: string[]; positions?: number; tokensPerSequence?: number; temperature?: number; seed?: number };
  /**
   * The draft vocabulary: 'full' (no restriction), a token count, or `{ coverage }`: the most frequent
   * greedy tokens of the calibration that cover this share of them. Default: 'full' up to 32768
   * tokens, else `{ coverage: 0.99 }`; always 'full' for a model with an output bias (`output.bias`),
   * which cannot install a draft vocabulary.
   */
  vocabulary?: 'full' | number | { coverage: number };
  /** Fit the adapter (default true); false gives a vocabulary-only head. */
  adapter?: boolean;
  /** Refinement steps (default 300 for small models, 100 from an embedding size of 1024). 0 keeps the ridge solution. */
  steps?: number;
  batchSize?: number;
  learningRate?: number;
  /** Share of the calibration sequences held out for the agreement measurements (default 0.2). */
  heldOut?: number;
  /** Full-model probabilities kept per position (default 64). */
  topK?: number;
  threads?: number;
  onProgress?: (p: FitDraftHeadProgress) => void;
  signal?: AbortSignal;
}

const GENERIC_PROMPTS = [
  'Once upon a time',
  'The',
  'One day',
  'Hello',
  'In the morning',
  'She said',
  'There was a',
  'It is',
  'Today',
  'Why',
  'How to',
  'My name is',
  'Long ago',
  'We',
  'After school',
  'The little',
];

/** What teacher forcing one sequence gives, per position. */
interface Collected {
  hidden: Float32Array[]; // layer-E residuals
  final: Float32Array[]; // final residuals (before the norm)
  greedy: number[]; // the full model's argmax
  topIds: Int32Array[]; // the full model's top-k tokens and probabilities
  topProbs: Float32Array[];
  sequence: number[]; // which calibration sequence each position came from
}

const FIT_KEYS = {
  exitLayer: true,
  text: true,
  selfGenerate: true,
  vocabulary: true,
  adapter: true,
  steps: true,
  batchSize: true,
  learningRate: true,
  heldOut: true,
  topK: true,
  threads: true,
  onProgress: true,
  signal: true,
} as const satisfies KeysOf<FitDraftHeadOptions>;
const SELF_GENERATE_KEYS = {
  prompts: true,
  positions: true,
  tokensPerSequence: true,
  temperature: true,
  seed: true,
} as const satisfies KeysOf<NonNullable<FitDraftHeadOptions['selfGenerate']>>;

export async function fitDraftHead(context: Context, options: FitDraftHeadOptions): Promise<DraftHead> {
  const t0 = performance.now();
  checkOptionKeys('fitDraftHead options', options, FIT_KEYS);
  if (typeof options.selfGenerate === 'object') checkOptionKeys('fitDraftHead selfGenerate', options.selfGenerate, SELF_GENERATE_KEYS);
  const model = context.model;
  const info = model.info;
  const E = checkInteger('exitLayer', options.exitLayer, 1, info.layerCount - 1);
  const D = info.embeddingSize;
  const V = info.vocabularySize;
  const heldOut = checkNumber('heldOut', options.heldOut ?? 0.2, 0.01, 0.9);
  const topK = checkInteger('topK', options.topK ?? 64, 1, V);
  const big = D >= 1024;
  const steps = checkInteger('steps', options.steps ?? (big ? 100 : 300), 0, 1 << 20);
  const threads = checkInteger('threads', options.threads ?? Math.min(4, availableParallelism()), 1, 512);
  const progress = options.onProgress ?? (() => {});
  const signal = options.signal;
  if (options.vocabulary !== undefined) checkVocabularyChoice(options.vocabulary, V);
  // the model's tail (final norm, output bias, logit scale, softcapping) for the refinement, read
  // before any work: an architecture whose tail is unknown is an error here, not a head trained
  // through the wrong tail
  const header = model.fileInfo();
  const tail = (options.adapter ?? true) && steps > 0 ? readModelTail(header) : null;
  const outputBias = header.tensors.some((t) => t.name === 'output.bias');
  if (options.vocabulary !== undefined && options.vocabulary !== 'full') checkDraftVocabularySupported(header);

  const sequences = options.text !== undefined ? textSequences(context, options.text) : await selfGenerated(context, options, progress);
  if (sequences.length < 2) throw new Error('fitDraftHead: the calibration data is too short (need at least two sequences of 2 or more tokens)');
  const previousHead = context.draftHead;
  try {
    await context.useDraftHead(null);
    return await calibrate(context, sequences, { E, D, V, heldOut, topK, big, steps, threads, progress, signal, options, t0, tail, outputBias });
  } finally {
    // whatever happened, the context keeps its head and an empty cache
    if (!context.disposed) {
      try {
        context.clear();
        await context.useDraftHead(previousHead);
      } catch {
        // another operation holds the context (a caller's race): leave it to that operation
      }
    }
  }
}

interface CalibrationPlan {
  E: number;
  D: number;
  V: number;
  heldOut: number;
  topK: number;
  big: boolean;
  steps: number;
  threads: number;
  progress: (p: FitDraftHeadProgress) => void;
  signal?: AbortSignal;
  options: FitDraftHeadOptions;
  t0: number;
  /** null without a refinement */
  tail: ModelTail | null;
  outputBias: boolean;
}

async function calibrate(context: Context, sequences: number[][], plan: CalibrationPlan): Promise<DraftHead> {
  const { E, D, V, heldOut, topK, big, steps, threads, progress, signal, options, t0, tail, outputBias } = plan;
  const model = context.model;
  const data = await collect(context, sequences, E, topK, progress, signal);
  const nSeqHeld = Math.max(1, Math.round(sequences.length * heldOut));
  const firstHeld = sequences.length - nSeqHeld;
  const fitRows = data.sequence.findIndex((s) => s >= firstHeld);
  if (fitRows < 2) throw new Error('fitDraftHead: too few calibration positions to fit');

  // the draft vocabulary, from the full model's greedy tokens on the fit positions
  const choice = options.vocabulary ?? (V <= 32768 || outputBias ? 'full' : { coverage: 0.99 });
  const tokenIds = chooseVocabulary(choice, data.greedy.slice(0, fitRows), V, model);
  const vocabulary = tokenIds ?? Int32Array.from({ length: V }, (_, i) => i);
  const inVocab = new Set(vocabulary);
  const covered = data.greedy.slice(0, fitRows).filter((t) => inVocab.has(t)).length / fitRows;

  // closed form: ridge from the layer-E residual h to what the remaining layers add (final − h),
  // so W = I + B shrinks toward the plain early exit (W = I), not toward zero: with fewer positions
  // than dimensions, a map to the final residual itself would drop everything outside their span
  let adapter: Float32Array | null = null;
  let bias: Float32Array | null = null;
  let lambda = 0;
  if (options.adapter ?? true) {
    progress({ phase: 'ridge', done: 0, total: 1 });
    const x = data.hidden.slice(0, fitRows);
    const update = x.map((h, r) => data.final[r].map((v, j) => v - h[j]));
    const fit = ridgeCv(x, update, { folds: big ? 2 : 4 });
    lambda = fit.lambda;
    adapter = new Float32Array(D * D);
    for (let i = 0; i < D; i++) for (let o = 0; o < D; o++) adapter[o * D + i] = fit.coefficients[i][o] + (i === o ? 1 : 0); // W[out][in]
    bias = Float32Array.from(fit.intercept);
    progress({ phase: 'ridge', done: 1, total: 1 });
  }
  const base = new DraftHead({ exitLayer: E, embeddingSize: D, vocabularySize: V, baseModel: model.identity, adapter, bias, tokenIds, stats: null });
  const heldSeqs = sequences.slice(firstHeld);
  const heldGreedy = data.greedy.slice(fitRows);
  const agreementBefore = await agreement(context, null, heldSeqs, heldGreedy, E);
  const agreementVocabulary = tokenIds
    ? await agreement(context, new DraftHead({ ...base, adapter: null, bias: null }), heldSeqs, heldGreedy, E)
    : agreementBefore;
  const agreementRidge = await agreement(context, base, heldSeqs, heldGreedy, E);

  // refinement on the full model's distributions (ggml-opt, native)
  let head = base;
  if (adapter && bias && tail && steps > 0) {
    const header = model.fileInfo();
    const { rows, type } = readHeadRows(header, vocabulary);
    const headF32 = native().dequantizeRows(rows, type, lmHeadTensor(header).shape[0]);
    const trainTail = trainerTail(tail, D, tokenIds); // the output bias's draft-vocabulary rows
    const column = new Map<number, number>();
    vocabulary.forEach((t, j) => column.set(t, j));
    const targets = new Float32Array(fitRows * vocabulary.length);
    for (let r = 0; r < fitRows; r++) {
      let sum = 0;
      const ids = data.topIds[r];
      const ps = data.topProbs[r];
      for (let k = 0; k < ids.length; k++) {
        const j = column.get(ids[k]);
        if (j !== undefined) {
          targets[r * vocabulary.length + j] += ps[k];
          sum += ps[k];
        }
      }
      if (sum > 0) for (let j = 0; j < vocabulary.length; j++) targets[r * vocabulary.length + j] /= sum;
      else targets[r * vocabulary.length + column.get(vocabulary[0])!] = 1; // nothing in the vocabulary: any fixed target
    }
    const hidden = new Float32Array(fitRows * D);
    for (let r = 0; r < fitRows; r++) hidden.set(data.hidden[r], r * D);
    const batchSize = checkInteger('batchSize', options.batchSize ?? Math.min(big ? 256 : 4096, fitRows), 1, fitRows);
    progress({ phase: 'refine', done: 0, total: steps });
    const trained = await native().trainExitAdapter(
      {
        hidden,
        targets,
        head: headF32,
        tail: trainTail,
        adapter,
        bias,
        embeddingSize: D,
        vocabularySize: vocabulary.length,
        steps,
        batchSize,
        learningRate: checkNumber('learningRate', options.learningRate ?? (big ? 1e-4 : 1e-3), 1e-8, 1),
        threads,
      },
      (done, loss) => progress({ phase: 'refine', done, total: steps, loss }),
    );
    head = new DraftHead({ ...base, adapter: trained.adapter, bias: trained.bias });
  }
  const agreementRefined = head === base ? undefined : await agreement(context, head, heldSeqs, heldGreedy, E);
  // the refinement fits the full model's distributions on the fit positions; it can agree less
  // with the full model's argmax on held-out ones (Qwen3-shaped late model: ridge 0.920, refined
  // 0.824, BENCHMARKS.md 15), and then the ridge adapter is the better head
  if (agreementRefined !== undefined && agreementRefined < agreementRidge) head = base;
  const agreementAfter = head === base ? agreementRidge : agreementRefined!;

  const stats: DraftHeadStats = {
    fitPositions: fitRows,
    heldOutPositions: data.greedy.length - fitRows,
    agreementBefore,
    agreementVocabulary,
    agreementRidge,
    agreementAfter,
    ridgeLambda: lambda,
    refinementSteps: adapter ? steps : 0,
    vocabularyCoverage: covered,
    calibrationMs: performance.now() - t0,
    ...(agreementRefined === undefined ? {} : { agreementRefined, refinementKept: head !== base }),
  };
  return new DraftHead({ ...head, stats });
}

/** Calibration text in sequences of at most the context's batch size (each decoded from position 0). */
function textSequences(context: Context, text: string): number[][] {
  if (typeof text !== 'string' || text.length === 0) throw new TypeError('fitDraftHead: text must be a non-empty string');
  const tokens = context.model.tokenize(text);
  const len = Math.min(256, context.state().batchSize);
  const out: number[][] = [];
  for (let i = 0; i + 1 < tokens.length; i += len) out.push(tokens.slice(i, i + len));
  return out.filter((s) => s.length >= 2);
}

/** Self-distillation: the model's own sampled continuations of generic prompts. */
async function selfGenerated(context: Context, options: FitDraftHeadOptions, progress: (p: FitDraftHeadProgress) => void): Promise<number[][]> {
  const o = options.selfGenerate ?? {};
  const small = context.model.info.sizeBytes < 64 * 1024 * 1024;
  const positions = checkInteger('selfGenerate.positions', o.positions ?? (small ? 24000 : 2048), 16, 1 << 24);
  const perSeq = checkInteger('selfGenerate.tokensPerSequence', o.tokensPerSequence ?? (small ? 96 : 128), 4, context.state().batchSize - 16);
  const temperature = checkNumber('selfGenerate.temperature', o.temperature ?? 1, 0.01, 10);
  const prompts = o.prompts ?? GENERIC_PROMPTS;
  if (!Array.isArray(prompts) || prompts.length === 0 || prompts.some((p) => typeof p !== 'string' || p.length === 0)) {
    throw new TypeError('fitDraftHead: selfGenerate.prompts must be non-empty strings');
  }
  const seed = checkInteger('selfGenerate.seed', o.seed ?? 1234, 0, 2 ** 32 - 1);
  const out: number[][] = [];
  let total = 0;
  for (let i = 0; total < positions; i++) {
    options.signal?.throwIfAborted();
    const prompt = context.model.tokenize(prompts[i % prompts.length]);
    const r = await context.generate(prompt, { maxTokens: perSeq, temperature, seed: seed + i, signal: options.signal }).result;
    const seq = [...prompt, ...r.tokens];
    if (seq.length >= 2) out.push(seq);
    total += seq.length;
    progress({ phase: 'generate', done: Math.min(total, positions), total: positions });
  }
  return out;
}

/** Teacher forcing: layers [0, E) then [E, N) from the cached states, with logits and both residuals. */
async function collect(
  context: Context,
  sequences: number[][],
  E: number,
  topK: number,
  progress: (p: FitDraftHeadProgress) => void,
  signal?: AbortSignal,
): Promise<Collected> {
  const { layerCount: N, embeddingSize: D, vocabularySize: V } = context.model.info;
  const c: Collected = { hidden: [], final: [], greedy: [], topIds: [], topProbs: [], sequence: [] };
  for (let s = 0; s < sequences.length; s++) {
    signal?.throwIfAborted();
    const seq = sequences[s];
    context.clear();
    const d = await context.decodeLayers({ tokens: seq, layers: [0, E], outputs: 'none', returnHidden: true });
    const v = await context.decodeLayers({ layers: [E, N], outputs: 'all', logits: true, returnHidden: true });
    for (let i = 0; i < seq.length; i++) {
      c.hidden.push(d.hidden!.slice(i * D, (i + 1) * D));
      c.final.push(v.hidden!.slice(i * D, (i + 1) * D));
      c.greedy.push(v.argmax[i]);
      const [ids, probs] = topProbabilities(v.logits!, i * V, V, topK);
      c.topIds.push(ids);
      c.topProbs.push(probs);
      c.sequence.push(s);
    }
    progress({ phase: 'collect', done: s + 1, total: sequences.length });
  }
  context.clear();
  return c;
}

/**
 * The k most probable tokens of softmax(row) and their probabilities, in one pass with a small
 * sorted buffer. Not the sampler's top-k (distribution() with topK): that sorts every token within
 * 1/1024 of the top probability, which on the synthetic 1B model's flat rows (128k tokens) cost
 * 32 ms a row against 1.8 ms here, i.e. 30 s of a 1,000-position calibration.
 */
function topProbabilities(logits: Float32Array, offset: number, n: number, k: number): [Int32Array, Float32Array] {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[offset + i] > max) max = logits[offset + i];
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(logits[offset + i] - max);
  const ids: number[] = [];
  const vals: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = logits[offset + i];
    if (ids.length === k && v <= vals[k - 1]) continue;
    let at = ids.length === k ? k - 1 : ids.length;
    while (at > 0 && vals[at - 1] < v) at--;
    ids.splice(at, 0, i);
    vals.splice(at, 0, v);
    if (ids.length > k) {
      ids.pop();
      vals.pop();
    }
  }
  return [Int32Array.from(ids), Float32Array.from(vals, (v) => Math.exp(v - max) / sum)];
}

function checkVocabularyChoice(choice: unknown, V: number): asserts choice is 'full' | number | { coverage: number } {
  if (choice === 'full') return;
  if (typeof choice === 'number') checkInteger('vocabulary', choice, 1, V);
  else if (typeof choice === 'object' && choice !== null) checkNumber('vocabulary.coverage', (choice as { coverage: unknown }).coverage, 0, 1);
  else throw new TypeError("vocabulary must be 'full', a token count or { coverage }");
}

/** The draft vocabulary (sorted token ids), or null for the full vocabulary. */
export function chooseVocabulary(
  choice: 'full' | number | { coverage: number },
  greedy: readonly number[],
  V: number,
  model: { info: { specialTokens: { eos: number; eot: number } } },
): Int32Array | null {
  checkVocabularyChoice(choice, V);
  if (choice === 'full') return null;
  const counts = new Map<number, number>();
  for (const t of greedy) counts.set(t, (counts.get(t) ?? 0) + 1);
  const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]).map(([t]) => t);
  let size: number;
  if (typeof choice === 'number') {
    size = choice;
  } else {
    let acc = 0;
    size = 0;
    while (size < ranked.length && acc < choice.coverage * greedy.length) acc += counts.get(ranked[size++])!;
    size = Math.max(size, 1);
  }
  // end-of-generation tokens always: a draft can then stop where the full model would
  const chosen = new Set<number>();
  for (const t of [model.info.specialTokens.eos, model.info.specialTokens.eot]) if (t >= 0 && t < V && chosen.size < size) chosen.add(t);
  for (const t of ranked) {
    if (chosen.size >= size) break;
    chosen.add(t);
  }
  for (let t = 0; chosen.size < size && t < V; t++) chosen.add(t); // unseen tokens, in id order
  return Int32Array.from([...chosen].sort((a, b) => a - b));
}

/** Held-out early-exit agreement with the full model, measured with the addon's own early exit. */
async function agreement(context: Context, head: DraftHead | null, sequences: number[][], greedy: readonly number[], E: number): Promise<number> {
  await context.useDraftHead(head);
  let agree = 0;
  let at = 0;
  for (const seq of sequences) {
    context.clear();
    const r = await context.decodeLayers({ tokens: seq, layers: [0, E], outputs: 'all' });
    for (let i = 0; i < seq.length; i++) if (r.argmax[i] === greedy[at + i]) agree++;
    at += seq.length;
  }
  context.clear();
  return at > 0 ? agree / at : 0;
}
