// The exit layer to recommend from a layer analysis's predictions (pure: tested on hand-made rows).
import type { LayerAnalysisEntry, LayerAnalysisResult, LayerRecommendation } from './layer-analysis.js';

/**
 * The exit layer and draft length to recommend from each layer's predicted speedups (`speedup`
 * filled in): the best over every layer alone and every layer with its draft head, and plain
 * decoding when none is predicted above 1.
 */
export function recommendExit(entries: LayerAnalysisEntry[]): { best: LayerAnalysisResult['best']; recommendation: LayerRecommendation } {
  let best = { layer: entries[0].layer, draft: 1, speedup: -Infinity, withHead: false };
  for (const e of entries) {
    e.bestDraft = 1;
    e.bestSpeedup = e.speedup[0];
    e.speedup.forEach((s, i) => {
      if (s > e.bestSpeedup) {
        e.bestSpeedup = s;
        e.bestDraft = i + 1;
      }
    });
    if (e.bestSpeedup > best.speedup) best = { layer: e.layer, draft: e.bestDraft, speedup: e.bestSpeedup, withHead: false };
    // a head's row competes too: the head is what the user would generate with
    if (e.head && e.head.bestSpeedup > best.speedup) best = { layer: e.layer, draft: e.head.bestDraft, speedup: e.head.bestSpeedup, withHead: true };
  }
  const recommendation: LayerRecommendation =
    best.speedup > 1
      ? { mode: 'self-speculative', exitLayer: best.layer, draftTokens: best.draft, speedup: best.speedup, withHead: best.withHead }
      : {
          mode: 'plain',
          reason: `no exit layer is predicted to beat plain decoding (best: layer ${best.layer}${best.withHead ? ' with its draft head' : ''}, draft ${best.draft}, ${best.speedup.toFixed(2)}x)`,
          bestSpeedup: best.speedup,
        };
  return { best, recommendation };
}
