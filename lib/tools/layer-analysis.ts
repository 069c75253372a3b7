// Layer analysis for self-speculative decoding: for each candidate exit layer l, measure on a
// calibration text (teacher forcing) how often the early exit at l predicts the same next token as
// the full model (the greedy per-token acceptance rate), how similar layer l's hidden states are to
// the final ones (regularised CCA with cross-validated shrinkage, linear CKA), what drafting at l and
// verifying with layers [l, N) cost, and from these the predicted speedup of self-speculative
// decoding for draft lengths 1..maxDraft, with a recommended exit layer and draft length.
import { linearCka, rccaCv, ShapeError } from '../analysis/index.js';
import type { Context } from '../runtime/context.js';
import { DisposedError, abortReason, checkInteger } from '../native/errors.js';
import type { DraftHead } from '../draft-head/draft-head.js';
import { resolveDraftHead } from '../draft-head/install.js';
import { estimatedVerifyCost, expectedTokens } from '../decoding/cost-model.js';
import { recommendExit } from './layer-recommendation.js';
import { checkOptionKeys, type KeysOf } from '../util/option-keys.js';

/** Built-in calibration text (simple English prose, as the small story models were trained on). */
export const DEFAULT_CALIBRATION_TEXTS: readonly string[] = [
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. ' +
    'One day, she saw a big red ball under a tree. She ran to the ball and picked it up. It was soft and round.',
  'Tom had a small dog called Max. Every morning they walked to the river and looked at the fish. ' +
    'Max liked to bark at the ducks, but the ducks were not scared. Tom laughed and said, "Max, be nice!"',
  'The sun was warm and the sky was blue. Mom made a cake for the party, and everyone sang a happy song. ' +
    'After the party, the children were tired, so they went to bed and dreamed about the cake.',
];

/** Default shrinkage grid for the rCCA cross-validation (small, for speed). */
export const LAYER_ANALYSIS_RCCA_GRID: readonly number[] = [0.001, 0.01, 0.1, 0.5, 1];

export interface LayerAnalysisOptions {
  /** Candidate exit layers, each in [1, N - 1] (default: all of them). */
  layers?: readonly number[];
  /** Longest draft length to predict a speedup for (default 8). */
  maxDraft?: number;
  /** Most calibration tokens used, over all texts (default 512). */
  maxTokens?: number;
  /** Number of canonical correlations to report (default 4; fewer when the data have lower rank). */
  canonicalPairs?: number;
  /** rCCA shrinkage coefficients to cross-validate (default {@link LAYER_ANALYSIS_RCCA_GRID}). */
  rccaGrid?: readonly number[];
  /** Cross-validation folds for rCCA (default 3). */
  rccaFolds?: number;
  /**
   * Timing rounds per layer and draft length (default 3; each cost is the fastest round). 0 skips the measurements and uses a
   * layer-proportional cost estimate (draft(l) = l/N, verify(l, k) = (N-l)/N · (1 + 0.25 (k-1)),
   * in units of one full step), for when only the representation analysis matters.
   */
  timingRepeats?: number;
  /** Called after every unit of work: `done` of `total`, with a short description of the stage. */
  onProgress?: (done: number, total: number, stage: string) => void;
  signal?: AbortSignal;
  /**
   * Fitted draft heads (`fitDraftHead`, `layerskip calibrate`), at most one per exit layer: each of
   * those layers is also measured with its head (agreement, draft step cost, predicted speedup).
   */
  draftHeads?: readonly DraftHead[];
}

/** An exit layer measured with a fitted draft head. */
export interface LayerHeadEntry {
  agreement: number;
  /** One early-exit step with the head (ms). */
  draftMs: number;
  speedup: number[];
  bestDraft: number;
  bestSpeedup: number;
  /** The head's draft vocabulary size (null: the full vocabulary) and whether it has an adapter. */
  vocabulary: number | null;
  adapter: boolean;
}

/** The analysis of one candidate exit layer. */
export interface LayerAnalysisEntry {
  layer: number;
  /** Fraction of positions where the early exit's top-1 equals the full model's (greedy acceptance). */
  agreement: number;
  /** Number of agreeing positions (out of `calibration.positions`). */
  agreed: number;
  /** Linear CKA between layer-l and final hidden states (rows = token positions), in [0, 1]; NaN if undefined. */
  cka: number;
  /**
   * In-sample correlations of the top rCCA pairs, with the cross-validated shrinkage, in the order of
   * the pairs (by regularised canonical correlation, so not always descending themselves).
   */
  canonicalCorrelations: number[];
  /** The chosen rCCA shrinkage coefficient and its held-out mean correlation; null when rCCA failed (see `note`). */
  rcca: { regularization: number; heldOutCorrelation: number; folds: number } | null;
  /** One plain full-model single-token step, timed interleaved with this layer's rounds (ms). */
  fullMs: number;
  /** One early-exit single-token step at this layer (ms). */
  draftMs: number;
  /** verifyMs[d - 1]: verifying d + 1 drafted positions with layers [l, N) (ms). */
  verifyMs: number[];
  /** speedup[d - 1]: predicted self-speculative speedup over plain decoding with draft length d. */
  speedup: number[];
  /** Draft length with the highest predicted speedup at this layer. */
  bestDraft: number;
  bestSpeedup: number;
  /** The same exit layer with a fitted draft head, when one was given. */
  head?: LayerHeadEntry;
  /** Why a metric is missing, if one is. */
  note?: string;
}

export type LayerRecommendation =
  /** `withHead`: the prediction is for the exit layer with the draft head it was measured with. */
  | { mode: 'self-speculative'; exitLayer: number; draftTokens: number; speedup: number; withHead: boolean }
  | { mode: 'plain'; reason: string; bestSpeedup: number };

export interface LayerAnalysisResult {
  model: { name: string; layerCount: number; embeddingSize: number; vocabularySize: number };
  calibration: {
    texts: number;
    /** Tokens decoded (BOS included; a BOS is added at the start of each extra segment of a long text). */
    tokens: number;
    /** Positions whose next-token predictions were compared (every decoded token). */
    positions: number;
    /** Rows of the representation analysis (the first position of each segment excluded: see below). */
    analysisRows: number;
    /** Pieces decoded from an empty cache (a text longer than the context is split). */
    segments: number;
  };
  /** 'measured' (timed on this context) or 'estimated' (timingRepeats: 0). */
  costSource: 'measured' | 'estimated';
  /** One plain full-model single-token step (ms, the fastest over all layers' rounds; 1 when estimated). */
  fullMs: number;
  threads: number;
  maxDraft: number;
  layers: LayerAnalysisEntry[];
  /**
   * The (layer, draft length) with the highest predicted speedup, whether above 1 or not, among the
   * exits alone and (`withHead`) the exits with the draft heads given.
   */
  best: { layer: number; draft: number; speedup: number; withHead: boolean };
  recommendation: LayerRecommendation;
  elapsedMs: number;
}

/**
 * Predicted speedup of self-speculative decoding over plain decoding, for per-token acceptance `a`
 * and draft length d: a round yields (1 - a^(d+1)) / (1 - a) tokens and costs (d + 1) draft steps
 * plus a verification of d + 1 positions; plain decoding yields one token per full step.
 */
export function predictedSpeedup(a: number, d: number, draftMs: number, verifyMs: number, fullMs: number): number {
  const tokens = expectedTokens(a, d);
  const cost = (d + 1) * draftMs + verifyMs;
  return (tokens / cost) * fullMs;
}

interface Segment {
  tokens: number[];
}

function resolveLayers(layers: readonly number[] | undefined, n: number): number[] {
  if (n < 2) throw new RangeError(`analyzeLayers: the model has ${n} layer(s); early exit needs at least 2`);
  if (layers === undefined) return Array.from({ length: n - 1 }, (_, i) => i + 1);
  if (!Array.isArray(layers) || layers.length === 0) throw new RangeError('analyzeLayers: layers must be a non-empty array of exit layers');
  for (const l of layers) checkInteger('analyzeLayers: exit layer', l, 1, n - 1);
  return [...new Set(layers)].sort((a, b) => a - b);
}

/**
 * Analyses every candidate exit layer of `context`'s model on `texts` (teacher forcing: the model
 * reads the text, each position's next-token prediction is compared). Clears the context's KV
 * cache (before, between the stages and at the end). Hidden states of the first position of each
 * segment (the BOS, attending only to itself) are left out of CKA and rCCA: such rows are far
 * from all others in LLaMA models and would dominate both similarities.
 */
const LAYER_ANALYSIS_KEYS = {
  layers: true,
  maxDraft: true,
  maxTokens: true,
  canonicalPairs: true,
  rccaGrid: true,
  rccaFolds: true,
  timingRepeats: true,
  onProgress: true,
  signal: true,
  draftHeads: true,
} as const satisfies KeysOf<LayerAnalysisOptions>;

export async function analyzeLayers(
  context: Context,
  texts: readonly string[] = DEFAULT_CALIBRATION_TEXTS,
  options: LayerAnalysisOptions = {},
): Promise<LayerAnalysisResult> {
  const t0 = performance.now();
  checkOptionKeys('analyzeLayers options', options, LAYER_ANALYSIS_KEYS);
  if (context.disposed) throw new DisposedError('analyzeLayers (context)');
  const model = context.model;
  if (model.disposed) throw new DisposedError('analyzeLayers (model)');
  if (!Array.isArray(texts) || texts.length === 0) throw new RangeError('analyzeLayers: texts is empty (give at least one calibration text)');
  texts.forEach((t, i) => {
    if (typeof t !== 'string') throw new TypeError(`analyzeLayers: texts[${i}] is not a string`);
    if (t.trim().length === 0) throw new RangeError(`analyzeLayers: texts[${i}] is empty`);
  });
  const info = model.info;
  const N = info.layerCount;
  const nEmbd = info.embeddingSize;
  const layers = resolveLayers(options.layers, N);
  const maxDraft = checkInteger('analyzeLayers: maxDraft', options.maxDraft ?? 8, 1, 64);
  const maxTokens = checkInteger('analyzeLayers: maxTokens', options.maxTokens ?? 512, 8, 1 << 20);
  const pairs = checkInteger('analyzeLayers: canonicalPairs', options.canonicalPairs ?? 4, 1, 256);
  const folds = checkInteger('analyzeLayers: rccaFolds', options.rccaFolds ?? 3, 2, 20);
  const repeats = checkInteger('analyzeLayers: timingRepeats', options.timingRepeats ?? 3, 0, 1000);
  const grid = options.rccaGrid ?? LAYER_ANALYSIS_RCCA_GRID;
  if (!Array.isArray(grid) || grid.length === 0 || grid.some((c) => typeof c !== 'number' || !(c >= 0 && c <= 1))) {
    throw new RangeError('analyzeLayers: rccaGrid must be a non-empty array of numbers in [0, 1]');
  }
  const { signal, onProgress } = options;
  const heads = options.draftHeads ?? [];
  for (const h of heads) {
    resolveDraftHead(h, model);
    if (!layers.includes(h.exitLayer)) throw new RangeError(`analyzeLayers: a draft head is for exit layer ${h.exitLayer}, which is not analysed`);
    if (heads.filter((x) => x.exitLayer === h.exitLayer).length > 1) throw new RangeError(`analyzeLayers: two draft heads for exit layer ${h.exitLayer}`);
  }
  const check = () => {
    if (signal?.aborted) throw abortReason(signal);
    if (context.disposed) throw new DisposedError('analyzeLayers (context)');
  };
  check();

  // tokenize and split into segments that fit the context; long texts continue with a fresh BOS
  const { contextSize, batchSize } = context.state();
  const bos = info.specialTokens.addBos ? info.specialTokens.bos : -1;
  const segments: Segment[] = [];
  let budget = maxTokens;
  for (const text of texts) {
    if (budget <= 0) break;
    const toks = model.tokenize(text).slice(0, budget);
    budget -= toks.length;
    let i = 0;
    while (i < toks.length) {
      const fresh = i > 0 && bos >= 0;
      const take = Math.min(toks.length - i, contextSize - (fresh ? 1 : 0));
      const seg = (fresh ? [bos] : []).concat(toks.slice(i, i + take));
      i += take;
      if (seg.length >= 2) segments.push({ tokens: seg });
    }
  }
  const positions = segments.reduce((s, g) => s + g.tokens.length, 0);
  const analysisRows = positions - segments.length;
  if (analysisRows < 8) {
    throw new RangeError(`analyzeLayers: the calibration text is too short (${positions} tokens); at least 9 are needed`);
  }
  if (repeats > 0 && contextSize < maxDraft + 3) {
    throw new RangeError(`analyzeLayers: timing drafts of up to ${maxDraft} tokens needs a context of at least ${maxDraft + 3} tokens, got ${contextSize}`);
  }
  const chunksPerPass = segments.reduce((s, g) => s + Math.ceil(g.tokens.length / batchSize), 0);

  // progress: full pass, one pass per layer plus its analysis, timing (full + per layer)
  const total = chunksPerPass * (1 + layers.length + heads.length) + layers.length + (repeats > 0 ? layers.length : 0);
  let done = 0;
  const step = (stage: string) => {
    done++;
    onProgress?.(done, total, stage);
  };

  /** Decodes every segment with layers [0, end) (end = N: the full model): argmax per position, hidden rows. */
  const pass = async (end: number, stage: string) => {
    const argmax = new Int32Array(positions);
    const rows: Float32Array[] = [];
    let at = 0;
    for (const seg of segments) {
      context.clear();
      for (let i = 0; i < seg.tokens.length; i += batchSize) {
        check();
        const chunk = seg.tokens.slice(i, i + batchSize);
        const r = await context.decodeLayers({
          tokens: chunk,
          layers: end < N ? [0, end] : undefined,
          outputs: 'all',
          returnHidden: true,
        });
        if (r.argmax.length !== chunk.length || !r.hidden || r.hidden.length !== chunk.length * nEmbd) {
          throw new Error(`analyzeLayers: unexpected decode result (${r.argmax.length} rows, hidden ${r.hidden?.length ?? 'missing'})`);
        }
        argmax.set(r.argmax, at);
        for (let j = 0; j < chunk.length; j++) if (i + j > 0) rows.push(r.hidden.subarray(j * nEmbd, (j + 1) * nEmbd));
        at += chunk.length;
        step(stage);
      }
    }
    context.clear();
    return { argmax, rows };
  };

  try {
    const full = await pass(N, 'full model');
    const entries: LayerAnalysisEntry[] = [];
    for (const l of layers) {
      const exit = await pass(l, `layer ${l}: early exit`);
      let agreed = 0;
      for (let i = 0; i < positions; i++) if (exit.argmax[i] === full.argmax[i]) agreed++;
      check();
      const notes: string[] = [];
      let cka = Number.NaN;
      try {
        cka = linearCka(exit.rows, full.rows);
      } catch (e) {
        if (!(e instanceof ShapeError)) throw e;
        notes.push(`CKA: ${e.message}`);
      }
      let canonicalCorrelations: number[] = [];
      let rcca: LayerAnalysisEntry['rcca'] = null;
      // k at most the rank a training fold can have; halved when the data have lower rank
      const k0 = Math.min(pairs, nEmbd, Math.floor((analysisRows * (folds - 1)) / folds) - 1);
      for (let k = k0; k >= 1; k = k === 1 ? 0 : Math.max(1, k >> 1)) {
        try {
          const fit = rccaCv(exit.rows, full.rows, { k, grid, folds });
          canonicalCorrelations = Array.from(fit.correlations);
          const cv = fit.crossValidation;
          rcca = { regularization: cv.best.x, heldOutCorrelation: cv.bestScore, folds: cv.folds };
          break;
        } catch (e) {
          // pure computation on validated rows: a failure means degenerate data (rank too low)
          if (k === 1) notes.push(`rCCA: ${(e as Error).message}`);
        }
      }
      if (k0 < 1) notes.push('rCCA: too few rows');
      step(`layer ${l}: CKA and rCCA`);
      await new Promise((r) => setImmediate(r)); // the analysis is synchronous: let the event loop run
      entries.push({
        layer: l,
        agreement: agreed / positions,
        agreed,
        cka,
        canonicalCorrelations,
        rcca,
        fullMs: Number.NaN,
        draftMs: Number.NaN,
        verifyMs: [],
        speedup: [],
        bestDraft: 0,
        bestSpeedup: Number.NaN,
        ...(notes.length ? { note: notes.join('; ') } : {}),
      });
    }

    // costs
    if (repeats > 0) {
      await timeCosts(context, segments[0].tokens, N, entries, maxDraft, repeats, check, step);
    } else {
      for (const e of entries) {
        e.fullMs = 1;
        e.draftMs = e.layer / N;
        e.verifyMs = Array.from({ length: maxDraft }, (_, i) => estimatedVerifyCost(e.layer / N, i + 2));
      }
    }

    for (const h of heads) {
      const e = entries.find((x) => x.layer === h.exitLayer)!;
      await context.useDraftHead(h);
      try {
        const exit = await pass(h.exitLayer, `layer ${h.exitLayer}: early exit with its draft head`);
        let agreed = 0;
        for (let i = 0; i < positions; i++) if (exit.argmax[i] === full.argmax[i]) agreed++;
        const draftMs = repeats > 0 ? await timeDraftSteps(context, segments[0].tokens, h.exitLayer, maxDraft, repeats, check) : e.draftMs;
        const speedup = e.verifyMs.map((v, i) => predictedSpeedup(agreed / positions, i + 1, draftMs, v, e.fullMs));
        const bestSpeedup = Math.max(...speedup);
        e.head = {
          agreement: agreed / positions,
          draftMs,
          speedup,
          bestDraft: speedup.indexOf(bestSpeedup) + 1,
          bestSpeedup,
          vocabulary: h.tokenIds?.length ?? null,
          adapter: h.adapter !== null,
        };
      } finally {
        await context.useDraftHead(null);
      }
    }

    for (const e of entries) e.speedup = e.verifyMs.map((v, k) => predictedSpeedup(e.agreement, k + 1, e.draftMs, v, e.fullMs));
    const { best, recommendation } = recommendExit(entries);
    return {
      model: { name: info.name, layerCount: N, embeddingSize: nEmbd, vocabularySize: info.vocabularySize },
      calibration: { texts: texts.length, tokens: positions, positions, analysisRows, segments: segments.length },
      costSource: repeats > 0 ? 'measured' : 'estimated',
      fullMs: Math.min(...entries.map((e) => e.fullMs)),
      threads: context.threads,
      maxDraft,
      layers: entries,
      best,
      recommendation,
      elapsedMs: performance.now() - t0,
    };
  } finally {
    if (!context.disposed && !context.state().busy) {
      try {
        context.clear();
      } catch {
        // another operation holds the context: leave it
      }
    }
  }
}

/**
 * Times, for each layer, rounds of: one single-token full step, d + 1 single-token early-exit steps
 * and the verification of those d + 1 positions with layers [l, N) (d = 1..maxDraft, `repeats`
 * times), after a short prefix, rolling back after each round so that the context length stays the
 * same. Full steps are interleaved with the drafts so that both see the same machine load. Each
 * cost is the fastest of its rounds (a draft round counts the mean of its steps): on a shared
 * machine, noise only ever adds time, in bursts that can last longer than a median's window.
 */
async function timeCosts(
  context: Context,
  calibration: number[],
  N: number,
  entries: LayerAnalysisEntry[],
  maxDraft: number,
  repeats: number,
  check: () => void,
  step: (stage: string) => void,
): Promise<void> {
  const { contextSize, batchSize } = context.state();
  const P = Math.max(1, Math.min(16, calibration.length - 1, contextSize - maxDraft - 2, batchSize));
  let next = 0;
  const token = () => calibration[(P + next++) % calibration.length];
  const timed = async (o: Parameters<Context['decodeLayers']>[0]) => {
    const s = performance.now();
    await context.decodeLayers(o);
    return performance.now() - s;
  };
  context.clear();
  await context.decodeLayers({ tokens: calibration.slice(0, P), outputs: 'last' });
  for (const e of entries) {
    const l = e.layer;
    const full: number[] = [];
    const draft: number[] = [];
    const verify: number[][] = Array.from({ length: maxDraft }, () => []);
    for (let r = -1; r < repeats; r++) {
      for (let d = 1; d <= maxDraft; d++) {
        if (r < 0 && d > 2) break; // warm-up round: build the graphs, wake the threads
        check();
        const f = await timed({ tokens: [token()], outputs: 'last' });
        context.removeFrom(P);
        let sum = 0;
        for (let j = 0; j <= d; j++) sum += await timed({ tokens: [token()], layers: [0, l], outputs: 'last' });
        const v = await timed({ layers: [l, N], outputs: 'all' });
        context.removeFrom(P);
        if (r < 0) continue;
        full.push(f);
        draft.push(sum / (d + 1));
        verify[d - 1].push(v);
      }
    }
    e.fullMs = Math.min(...full);
    e.draftMs = Math.min(...draft);
    e.verifyMs = verify.map((v) => Math.min(...v));
    step(`timing: layer ${l}`);
  }
  context.clear();
}

/** The fastest mean single-token early-exit step at layer l (ms), over `repeats` rounds of maxDraft + 1 steps. */
async function timeDraftSteps(context: Context, calibration: number[], l: number, maxDraft: number, repeats: number, check: () => void): Promise<number> {
  const { contextSize, batchSize } = context.state();
  const P = Math.max(1, Math.min(16, calibration.length - 1, contextSize - maxDraft - 2, batchSize));
  context.clear();
  await context.decodeLayers({ tokens: calibration.slice(0, P), outputs: 'last' });
  let best = Infinity;
  for (let r = -1; r < repeats; r++) {
    check();
    const s = performance.now();
    for (let j = 0; j <= maxDraft; j++) await context.decodeLayers({ tokens: [calibration[(P + j) % calibration.length]], layers: [0, l], outputs: 'last' });
    const mean = (performance.now() - s) / (maxDraft + 1);
    context.removeFrom(P);
    if (r >= 0) best = Math.min(best, mean);
  }
  context.clear();
  return best;
}
