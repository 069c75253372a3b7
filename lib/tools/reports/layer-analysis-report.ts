// The layer analysis's reports: a plain-text table and an SVG chart (JSON is the result itself).
import type { LayerAnalysisEntry, LayerAnalysisResult } from '../layer-analysis.js';
import { renderLineCharts } from '../../analysis/svg-chart.js';

function fmt(v: number, digits: number, width: number): string {
  return (Number.isFinite(v) ? v.toFixed(digits) : '-').padStart(width);
}

/** A plain-text table of a {@link LayerAnalysisResult}. */
export function formatLayerAnalysis(result: LayerAnalysisResult): string {
  const m = result.model;
  const c = result.calibration;
  const pairs = Math.max(1, ...result.layers.map((e) => e.canonicalCorrelations.length));
  const D = result.maxDraft;
  const lines: string[] = [];
  lines.push(`model: ${m.name} (${m.layerCount} layers, embedding ${m.embeddingSize}, vocabulary ${m.vocabularySize})`);
  lines.push(`calibration: ${c.texts} text(s), ${c.tokens} tokens in ${c.segments} segment(s); ${c.analysisRows} rows for CKA/rCCA`);
  lines.push(
    result.costSource === 'measured'
      ? `costs: measured with ${result.threads} thread(s); fastest full step ${result.fullMs.toFixed(3)} ms (each layer's costs are timed together with full steps)`
      : 'costs: estimated (layer-proportional, in units of one full step)',
  );
  lines.push('');
  const unit = result.costSource === 'measured' ? 'ms' : '';
  const head = [
    'layer'.padStart(5),
    'agree'.padStart(6),
    'CKA'.padStart(6),
    ...Array.from({ length: pairs }, (_, i) => `cc${i + 1}`.padStart(6)),
    'rCCA c'.padStart(7),
    'held-out'.padStart(8),
    `full${unit && ' ' + unit}`.padStart(8),
    `draft${unit && ' ' + unit}`.padStart(9),
    `ver(2)${unit && ' ' + unit}`.padStart(10),
    `ver(${D + 1})${unit && ' ' + unit}`.padStart(10),
    'best d'.padStart(6),
    'speedup'.padStart(8),
  ];
  lines.push(head.join(' '));
  for (const e of result.layers) {
    lines.push(
      [
        String(e.layer).padStart(5),
        fmt(e.agreement, 3, 6),
        fmt(e.cka, 3, 6),
        ...Array.from({ length: pairs }, (_, i) => fmt(e.canonicalCorrelations[i] ?? Number.NaN, 3, 6)),
        (e.rcca ? String(e.rcca.regularization) : '-').padStart(7),
        fmt(e.rcca?.heldOutCorrelation ?? Number.NaN, 3, 8),
        fmt(e.fullMs, 3, 8),
        fmt(e.draftMs, 3, 9),
        fmt(e.verifyMs[0], 3, 10),
        fmt(e.verifyMs[D - 1], 3, 10),
        String(e.bestDraft).padStart(6),
        `${fmt(e.bestSpeedup, 2, 7)}x`,
      ].join(' '),
    );
  }
  const withHeads = result.layers.filter((e) => e.head);
  if (withHeads.length > 0) {
    lines.push('');
    lines.push(
      [
        'layer'.padStart(5),
        'head'.padStart(16),
        'agree'.padStart(6),
        'w/ head'.padStart(8),
        `draft${unit && ' ' + unit}`.padStart(9),
        `w/ head`.padStart(8),
        'best d'.padStart(6),
        'speedup'.padStart(8),
      ].join(' '),
    );
    for (const e of withHeads) {
      const h = e.head!;
      const kind = `${h.adapter ? 'adapter' : ''}${h.adapter && h.vocabulary ? '+' : ''}${h.vocabulary ? `${h.vocabulary} tok` : ''}`;
      lines.push(
        [
          String(e.layer).padStart(5),
          kind.padStart(16),
          fmt(e.agreement, 3, 6),
          fmt(h.agreement, 3, 8),
          fmt(e.draftMs, 3, 9),
          fmt(h.draftMs, 3, 8),
          String(h.bestDraft).padStart(6),
          `${fmt(h.bestSpeedup, 2, 7)}x`,
        ].join(' '),
      );
    }
  }
  const notes = result.layers.filter((e) => e.note);
  for (const e of notes) lines.push(`note (layer ${e.layer}): ${e.note}`);
  lines.push('');
  lines.push(
    'agree: early-exit top-1 = full-model top-1 (greedy acceptance); cc: rCCA canonical correlations (in-sample) ' +
      'between layer-l and final hidden states; speedup: predicted, best draft length d',
  );
  const r = result.recommendation;
  lines.push(
    r.mode === 'self-speculative'
      ? `recommended: exit layer ${r.exitLayer}, draft ${r.draftTokens} tokens (predicted ${r.speedup.toFixed(2)}x)`
      : `recommended: plain decoding; ${r.reason}`,
  );
  return lines.join('\n') + '\n';
}

/** An SVG chart of agreement, CKA, top canonical correlation and predicted best speedup versus exit layer. */
export function renderLayerAnalysisSvg(result: LayerAnalysisResult): string {
  const pts = (f: (e: LayerAnalysisEntry) => number) => result.layers.map((e) => ({ x: e.layer, y: f(e) }));
  const speedup = { name: 'predicted best speedup', color: '#9467bd', points: pts((e) => e.bestSpeedup) };
  const xLabel = `exit layer (of ${result.model.layerCount})`;
  return renderLineCharts(
    [
      {
        title: 'Early exit vs the full model',
        xLabel,
        yLabel: 'agreement / similarity',
        yRange: [0, 1],
        series: [
          { name: 'top-1 agreement', color: '#1f77b4', points: pts((e) => e.agreement) },
          { name: 'linear CKA', color: '#2ca02c', points: pts((e) => e.cka) },
          { name: 'top canonical correlation (rCCA)', color: '#d62728', dashed: true, points: pts((e) => e.canonicalCorrelations[0] ?? Number.NaN) },
          { ...speedup, points: [] }, // listed in the shared legend; drawn on the right
        ],
      },
      {
        title: 'Predicted self-speculative speedup',
        xLabel,
        yLabel: 'speedup over plain decoding (x)',
        series: [speedup],
        hLines: [{ y: 1, label: 'plain decoding' }],
      },
    ],
    { title: `Layer analysis: ${result.model.name} (${result.calibration.tokens} calibration tokens)` },
  );
}
