// The layer analysis's recommendation and reports on hand-made results: the draft heads' rows
// compete with the exits alone, every column of the table is explained, and the chart keeps the
// 1.0x line in view, marks the recommended layer and draws the heads' series.
import { describe, expect, it } from 'vitest';
import { formatLayerAnalysis, type LayerAnalysisResult, renderLayerAnalysisSvg } from '../lib/index.js';
import type { LayerAnalysisEntry } from '../lib/tools/layer-analysis.js';
import { recommendExit } from '../lib/tools/layer-recommendation.js';

function entry(layer: number, speedup: number[], head?: number[]): LayerAnalysisEntry {
  return {
    layer,
    agreement: 0.3 + 0.1 * layer,
    agreed: 30,
    cka: 0.5,
    canonicalCorrelations: [0.9, 0.8],
    rcca: { regularization: 0.1, heldOutCorrelation: 0.7, folds: 5 },
    fullMs: 1,
    draftMs: layer / 5,
    verifyMs: [0.5, 0.7, 0.9],
    speedup,
    bestDraft: 0,
    bestSpeedup: Number.NaN,
    head: head && {
      agreement: 0.7,
      draftMs: layer / 5,
      speedup: head,
      bestDraft: head.indexOf(Math.max(...head)) + 1,
      bestSpeedup: Math.max(...head),
      vocabulary: 500,
      adapter: true,
    },
  };
}

function result(entries: LayerAnalysisEntry[]): LayerAnalysisResult {
  const { best, recommendation } = recommendExit(entries);
  return {
    model: { name: 'm', layerCount: 5, embeddingSize: 64, vocabularySize: 512 },
    calibration: { texts: 1, tokens: 100, positions: 100, analysisRows: 99, segments: 1 },
    costSource: 'measured',
    fullMs: 1,
    threads: 1,
    maxDraft: 3,
    layers: entries,
    best,
    recommendation,
    elapsedMs: 1,
  };
}

describe('recommendExit', () => {
  it('picks the best (layer, draft length) over the exits alone', () => {
    const { best, recommendation } = recommendExit([entry(2, [1.1, 1.3, 1.2]), entry(3, [1.05, 1.2, 1.25])]);
    expect(best).toEqual({ layer: 2, draft: 2, speedup: 1.3, withHead: false });
    expect(recommendation).toEqual({ mode: 'self-speculative', exitLayer: 2, draftTokens: 2, speedup: 1.3, withHead: false });
  });

  it("weighs a draft head's row: layer 3 with its head at 0.79x beats layer 4 alone at 0.74x", () => {
    const { best, recommendation } = recommendExit([entry(3, [0.6, 0.65, 0.6], [0.7, 0.79, 0.75]), entry(4, [0.7, 0.74, 0.72])]);
    expect(best).toEqual({ layer: 3, draft: 2, speedup: 0.79, withHead: true });
    expect(recommendation.mode).toBe('plain'); // still below 1
    expect(recommendation.mode === 'plain' && recommendation.reason).toMatch(/layer 3 with its draft head, draft 2, 0\.79x/);
    const faster = recommendExit([entry(3, [0.9, 1.0, 0.95], [1.1, 1.4, 1.3]), entry(4, [1.2, 1.3, 1.25])]);
    expect(faster.recommendation).toEqual({ mode: 'self-speculative', exitLayer: 3, draftTokens: 2, speedup: 1.4, withHead: true });
  });
});

describe('layer analysis reports', () => {
  it('the table explains every column it prints, and the recommendation names the head', () => {
    const text = formatLayerAnalysis(result([entry(2, [1.1, 1.3, 1.2]), entry(3, [0.9, 1.0, 0.95], [1.1, 1.4, 1.3])]));
    const header = text.split('\n').find((l) => l.trimStart().startsWith('layer'))!;
    const columns = header.trim().split(/\s{2,}|\s(?=\w)/);
    const legend = text.slice(text.indexOf('columns:'));
    for (const name of ['agree', 'CKA', 'cc1', 'rCCA c', 'held-out', 'full', 'draft', 'ver(2)', 'ver(4)', 'best d', 'speedup', 'w/ head']) {
      expect(legend, name).toContain(name);
    }
    expect(columns.length).toBeGreaterThan(8);
    expect(text).toContain('recommended: exit layer 3 with its draft head, draft 2 tokens (predicted 1.40x)');
  });

  it('the chart keeps the 1.0x line in view when every layer is slower, and draws the head series', () => {
    const svg = renderLayerAnalysisSvg(result([entry(2, [0.5, 0.6, 0.55], [0.7, 0.8, 0.75]), entry(3, [0.4, 0.5, 0.45])]));
    expect(svg).toContain('>1.0x: plain decoding<');
    expect(svg).toContain('with draft head');
    expect(svg).not.toContain('recommended:'); // plain decoding is recommended: no layer marked
  });

  it('the chart marks the recommended layer', () => {
    const svg = renderLayerAnalysisSvg(result([entry(2, [1.1, 1.3, 1.2]), entry(3, [1.0, 1.1, 1.05])]));
    expect(svg).toContain('>recommended: layer 2, d 2<');
    expect(svg).not.toContain('with draft head');
  });
});
