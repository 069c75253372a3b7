// tools/layer-analysis: per-layer analysis for choosing an exit layer. Agreement is checked against an
// independent computation (argmax of the logits rows of a direct early-exit and full decode), CKA
// against linearCka on directly decoded hidden states; the predicted speedups follow the cost model;
// a model whose late layers barely move the residual stream agrees well at its deep exits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  analyzeLayers,
  DEFAULT_CALIBRATION_TEXTS,
  DisposedError,
  DraftHead,
  formatLayerAnalysis,
  LAYER_ANALYSIS_RCCA_GRID,
  loadModel,
  predictedSpeedup,
  renderLayerAnalysisSvg,
  type Context,
  type LayerAnalysisResult,
  type Model,
} from '../lib/index.js';
import { linearCka } from '../lib/analysis/index.js';
import { EXACT, STORIES, randomModel } from './helpers.js';

const LATE_SCALED = {
  nLayer: 6,
  nEmbd: 96,
  nHead: 6,
  nHeadKv: 2,
  nFf: 192,
  nVocab: 400,
  nCtx: 512,
  tiedOutput: false,
  seed: 21,
  tensorType: 'f32',
  lateLayerScale: { fromLayer: 3, scale: 0.05 },
} as const;

function argmaxRows(logits: Float32Array, nVocab: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < logits.length / nVocab; r++) {
    let best = 0;
    for (let j = 1; j < nVocab; j++) if (logits[r * nVocab + j] > logits[r * nVocab + best]) best = j;
    out.push(best);
  }
  return out;
}

function checkInvariants(result: LayerAnalysisResult, N: number): void {
  expect(result.layers.length).toBeGreaterThan(0);
  for (const e of result.layers) {
    expect(e.layer).toBeGreaterThanOrEqual(1);
    expect(e.layer).toBeLessThan(N);
    expect(e.agreement).toBeGreaterThanOrEqual(0);
    expect(e.agreement).toBeLessThanOrEqual(1);
    expect(e.agreement).toBeCloseTo(e.agreed / result.calibration.positions, 12);
    expect(e.cka).toBeGreaterThanOrEqual(0);
    expect(e.cka).toBeLessThanOrEqual(1);
    expect(e.rcca).not.toBeNull();
    expect(LAYER_ANALYSIS_RCCA_GRID).toContain(e.rcca!.regularization);
    expect(e.canonicalCorrelations.length).toBeGreaterThan(0);
    for (const c of e.canonicalCorrelations) {
      expect(c).toBeGreaterThanOrEqual(-1e-9);
      expect(c).toBeLessThanOrEqual(1 + 1e-9);
    }
    // the cost model: speedup[d-1] from the agreement and the costs
    expect(e.speedup.length).toBe(result.maxDraft);
    e.speedup.forEach((s, i) => {
      expect(s).toBeGreaterThan(0);
      expect(s).toBeCloseTo(predictedSpeedup(e.agreement, i + 1, e.draftMs, e.verifyMs[i], e.fullMs), 12);
    });
    expect(e.bestSpeedup).toBe(Math.max(...e.speedup));
    expect(e.speedup[e.bestDraft - 1]).toBe(e.bestSpeedup);
  }
  const top = Math.max(...result.layers.map((e) => e.bestSpeedup));
  expect(result.best.speedup).toBe(top);
  const r = result.recommendation;
  if (r.mode === 'self-speculative') {
    expect(r.speedup).toBeGreaterThan(1);
    expect(r.exitLayer).toBeGreaterThanOrEqual(1);
    expect(r.exitLayer).toBeLessThan(N);
    expect(r.draftTokens).toBeGreaterThanOrEqual(1);
    expect(r.draftTokens).toBeLessThanOrEqual(result.maxDraft);
  } else {
    expect(top).toBeLessThanOrEqual(1);
    expect(result.best.layer).toBeGreaterThanOrEqual(1);
    expect(result.best.layer).toBeLessThan(N);
  }
}

describe('analyzeLayers: stories260K', () => {
  let model: Model;
  let ctx: Context;
  let N: number;
  let result: LayerAnalysisResult;
  const progress: [number, number, string][] = [];
  beforeAll(async () => {
    model = await loadModel(STORIES);
    N = model.layerCount;
    ctx = await model.createContext({ contextSize: 512, batchSize: 512, threads: 1, ...EXACT });
    result = await analyzeLayers(ctx, DEFAULT_CALIBRATION_TEXTS, {
      timingRepeats: 1,
      onProgress: (done, total, stage) => progress.push([done, total, stage]),
    });
  });
  afterAll(() => model?.dispose());

  it('covers every exit layer with metrics in range, measured costs and a consistent recommendation', () => {
    expect(result.layers.map((e) => e.layer)).toEqual(Array.from({ length: N - 1 }, (_, i) => i + 1));
    expect(result.costSource).toBe('measured');
    expect(result.fullMs).toBeGreaterThan(0);
    for (const e of result.layers) {
      expect(e.fullMs).toBeGreaterThanOrEqual(result.fullMs);
      expect(e.draftMs).toBeGreaterThan(0);
      for (const v of e.verifyMs) expect(v).toBeGreaterThan(0);
    }
    checkInvariants(result, N);
    // a deeper exit is closer to the final layer (CKA), on this trained model
    expect(result.layers[N - 2].cka).toBeGreaterThan(result.layers[0].cka);
    expect(result.calibration.texts).toBe(DEFAULT_CALIBRATION_TEXTS.length);
    expect(result.calibration.analysisRows).toBe(result.calibration.positions - result.calibration.segments);
  });

  it('reports progress up to done = total', () => {
    expect(progress.length).toBeGreaterThan(N);
    const total = progress[0][1];
    progress.forEach(([done, t], i) => {
      expect(t).toBe(total);
      expect(done).toBe(i + 1);
    });
    expect(progress.at(-1)![0]).toBe(total);
    expect(progress.some(([, , s]) => s.includes('timing'))).toBe(true);
  });

  it('agreement and CKA equal an independent computation from direct decodes', async () => {
    const text = DEFAULT_CALIBRATION_TEXTS[0];
    const L = 3;
    const nVocab = model.info.vocabularySize;
    const nEmbd = model.info.embeddingSize;
    const tokens = model.tokenize(text);
    ctx.clear();
    const full = await ctx.decodeLayers({ tokens, outputs: 'all', logits: true, returnHidden: true });
    ctx.clear();
    const exit = await ctx.decodeLayers({ tokens, layers: [0, L], outputs: 'all', logits: true, returnHidden: true });
    ctx.clear();
    const a = argmaxRows(exit.logits!, nVocab);
    const b = argmaxRows(full.logits!, nVocab);
    const agreed = a.filter((t, i) => t === b[i]).length;
    const rows = (h: Float32Array) => Array.from({ length: tokens.length - 1 }, (_, i) => h.subarray((i + 1) * nEmbd, (i + 2) * nEmbd));
    const cka = linearCka(rows(exit.hidden!), rows(full.hidden!));

    const one = await analyzeLayers(ctx, [text], { layers: [L], timingRepeats: 0 });
    expect(one.calibration.positions).toBe(tokens.length);
    expect(one.layers[0].agreed).toBe(agreed);
    expect(one.layers[0].agreement).toBeCloseTo(agreed / tokens.length, 12);
    expect(one.layers[0].cka).toBeCloseTo(cka, 6);
    expect(ctx.state().nextPosition).toBe(0); // the cache is left empty
  });

  it('estimated costs (timingRepeats 0) follow the layer-proportional model', async () => {
    const r = await analyzeLayers(ctx, DEFAULT_CALIBRATION_TEXTS, { layers: [2, 4, 2], timingRepeats: 0, maxDraft: 3 });
    expect(r.costSource).toBe('estimated');
    expect(r.fullMs).toBe(1);
    for (const e of r.layers) expect(e.fullMs).toBe(1);
    expect(r.layers.map((e) => e.layer)).toEqual([2, 4]);
    for (const e of r.layers) {
      expect(e.draftMs).toBeCloseTo(e.layer / N, 12);
      expect(e.verifyMs).toHaveLength(3);
      expect(e.verifyMs[1]).toBeCloseTo(((N - e.layer) / N) * 1.5, 12);
    }
    checkInvariants(r, N);
  });

  it('splits long texts into segments and batches into chunks (chained early-exit drafts)', async () => {
    // small batches: the early-exit pass continues pending drafts chunk after chunk
    const small = await model.createContext({ contextSize: 512, batchSize: 8, threads: 1, ...EXACT });
    const chunked = await analyzeLayers(small, DEFAULT_CALIBRATION_TEXTS, { layers: [2, 4], timingRepeats: 1, maxDraft: 4 });
    expect(chunked.calibration.positions).toBe(result.calibration.positions);
    for (const e of chunked.layers) {
      const ref = result.layers.find((r) => r.layer === e.layer)!;
      // same computation up to batch-size rounding (which may flip a near-tie)
      expect(Math.abs(e.agreed - ref.agreed)).toBeLessThanOrEqual(2);
      expect(e.cka).toBeCloseTo(ref.cka, 3);
    }
    checkInvariants(chunked, N);
    small.dispose();
    // a text longer than the context: segments that restart with a BOS
    const short = await model.createContext({ contextSize: 256, batchSize: 256, threads: 1, ...EXACT });
    const C = short.state().contextSize;
    const long = DEFAULT_CALIBRATION_TEXTS.join(' ').repeat(2);
    const n = model.tokenize(long).length;
    expect(n).toBeGreaterThan(C);
    const seg = await analyzeLayers(short, [long], { layers: [4], timingRepeats: 0, maxTokens: 4096 });
    const segments = 1 + Math.ceil((n - C) / (C - 1));
    expect(seg.calibration.segments).toBe(segments);
    expect(seg.calibration.positions).toBe(n + segments - 1);
    expect(seg.calibration.analysisRows).toBe(seg.calibration.positions - segments);
    checkInvariants(seg, N);
    short.dispose();
    // maxTokens caps the calibration text
    const capped = await analyzeLayers(ctx, DEFAULT_CALIBRATION_TEXTS, { layers: [4], timingRepeats: 0, maxTokens: 40 });
    expect(capped.calibration.positions).toBe(40);
    expect(capped.calibration.segments).toBe(1);
  });

  it('formats a table, JSON and an SVG with labelled axes', () => {
    const table = formatLayerAnalysis(result);
    expect(table).toMatch(/layer\s+agree\s+CKA\s+cc1/);
    for (const e of result.layers) expect(table).toMatch(new RegExp(`^\\s+${e.layer}\\s+${e.agreement.toFixed(3)}`, 'm'));
    expect(table).toMatch(/recommended: (exit layer \d+, draft \d+ tokens|plain decoding)/);
    const json = JSON.parse(JSON.stringify(result)) as LayerAnalysisResult;
    expect(json.layers).toHaveLength(result.layers.length);
    expect(json.recommendation.mode).toBe(result.recommendation.mode);
    const svg = renderLayerAnalysisSvg(result);
    expect(svg.startsWith('<svg')).toBe(true);
    for (const label of [
      'exit layer (of 5)',
      'agreement / similarity',
      'speedup over plain decoding (x)',
      'top-1 agreement',
      'linear CKA',
      'top canonical correlation (rCCA)',
      'predicted best speedup',
    ]) {
      expect(svg).toContain(label);
    }
  });

  it("measures a layer with its draft head: a vocabulary without the full model's tokens never agrees", async () => {
    const full = await ctx.decodeLayers({ tokens: model.tokenize(DEFAULT_CALIBRATION_TEXTS[0]), outputs: 'all' });
    ctx.clear();
    const unused = [...Array(model.info.vocabularySize).keys()].filter((t) => !full.argmax.includes(t)).slice(0, 5);
    const base = {
      embeddingSize: model.info.embeddingSize,
      vocabularySize: model.info.vocabularySize,
      baseModel: model.identity,
      adapter: null,
      bias: null,
      stats: null,
    };
    const r = await analyzeLayers(ctx, [DEFAULT_CALIBRATION_TEXTS[0]], {
      layers: [2, 3],
      timingRepeats: 1,
      draftHeads: [new DraftHead({ ...base, exitLayer: 3, tokenIds: Int32Array.from(unused) })],
    });
    expect(r.layers[0].head).toBeUndefined();
    const h = r.layers[1].head!;
    expect(h.agreement).toBe(0);
    expect(r.layers[1].agreement).toBeGreaterThan(0);
    expect(h.vocabulary).toBe(unused.length);
    expect(h.draftMs).toBeGreaterThan(0);
    expect(formatLayerAnalysis(r)).toMatch(/w\/ head/);
    await expect(
      analyzeLayers(ctx, undefined, { layers: [2], draftHeads: [new DraftHead({ ...base, exitLayer: 3, tokenIds: Int32Array.of(5) })] }),
    ).rejects.toThrow(/not analysed/);
    expect(ctx.draftHead).toBeNull();
  });

  it('rejects bad inputs with clear errors', async () => {
    await expect(analyzeLayers(ctx, [])).rejects.toThrow(/texts is empty/);
    await expect(analyzeLayers(ctx, ['  '])).rejects.toThrow(/texts\[0\] is empty/);
    await expect(analyzeLayers(ctx, [42 as unknown as string])).rejects.toThrow(TypeError);
    await expect(analyzeLayers(ctx, ['Hi.'])).rejects.toThrow(/too short/);
    for (const layers of [[0], [N], [1, N], [1.5], []]) {
      await expect(analyzeLayers(ctx, undefined, { layers, timingRepeats: 0 })).rejects.toThrow(RangeError);
    }
    await expect(analyzeLayers(ctx, undefined, { layers: [N] })).rejects.toThrow(/exit layer must be an integer in \[1, 4\]/);
    await expect(analyzeLayers(ctx, undefined, { maxDraft: 0 })).rejects.toThrow(/maxDraft/);
    await expect(analyzeLayers(ctx, undefined, { rccaGrid: [2] })).rejects.toThrow(/rccaGrid/);
    await expect(analyzeLayers(ctx, undefined, { signal: AbortSignal.abort() })).rejects.toThrow(/aborted/);
    const gone = await model.createContext({ contextSize: 64, threads: 1 });
    gone.dispose();
    await expect(analyzeLayers(gone)).rejects.toThrow(DisposedError);
    await expect(analyzeLayers(gone)).rejects.toThrow(/disposed/);
    // the shared context still works
    expect(ctx.state().nextPosition).toBe(0);
  });
});

describe('analyzeLayers: random model with scaled-down late layers', () => {
  let model: Model;
  let ctx: Context;
  let result: LayerAnalysisResult;
  beforeAll(async () => {
    model = await loadModel(randomModel(LATE_SCALED));
    ctx = await model.createContext({ contextSize: 512, batchSize: 512, threads: 1, ...EXACT });
    result = await analyzeLayers(ctx, DEFAULT_CALIBRATION_TEXTS, { timingRepeats: 1 });
  });
  afterAll(() => model?.dispose());

  it('agrees well at the deepest exits, better than at layer 1', () => {
    // Safe: layers >= 3 write into the residual stream with 0.05x the usual weights, so skipping
    // layers 4..5 (exit at 4) or 5 (exit at 5) perturbs the final residual by a few percent and only
    // flips near-ties of the top-1; the exit at 1 skips the full-size layers 1 and 2.
    checkInvariants(result, 6);
    const at = (l: number) => result.layers.find((e) => e.layer === l)!;
    for (const l of [4, 5]) {
      expect(at(l).agreement).toBeGreaterThan(0.6);
      expect(at(l).agreement).toBeGreaterThan(at(1).agreement);
      expect(at(l).cka).toBeGreaterThan(at(1).cka);
    }
  });
});
