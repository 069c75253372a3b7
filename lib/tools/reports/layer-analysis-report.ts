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
  lines.push('columns:');
  lines.push('  agree     early-exit top-1 = full-model top-1 (the greedy acceptance rate)');
  lines.push('  CKA       linear CKA between layer-l and final hidden states (1: same geometry)');
  lines.push(`  cc1..cc${pairs}  rCCA canonical correlations of the top pairs (in-sample)`);
  lines.push("  rCCA c    rCCA's shrinkage, chosen by cross-validation (0: plain CCA, 1: PLS-like)");
  lines.push("  held-out  rCCA's mean canonical correlation on the held-out folds");
  lines.push(`  full, draft  one full-model step, one early-exit step at layer l${unit && ` (${unit})`}`);
  lines.push(`  ver(2), ver(${D + 1})  verifying 2 and ${D + 1} drafted positions with layers [l, N)${unit && ` (${unit})`}`);
  lines.push('  best d, speedup  the draft length with the highest predicted speedup over plain decoding, and that speedup');
  if (withHeads.length > 0) lines.push('  w/ head   the same measured with the fitted draft head (the recommendation weighs these rows too)');
  const r = result.recommendation;
  lines.push(
    r.mode === 'self-speculative'
      ? `recommended: exit layer ${r.exitLayer}${r.withHead ? ' with its draft head' : ''}, draft ${r.draftTokens} tokens (predicted ${r.speedup.toFixed(2)}x)`
      : `recommended: plain decoding; ${r.reason}`,
  );
  return lines.join('\n') + '\n';
}

/**
 * An SVG chart of agreement, CKA, top canonical correlation and predicted best speedup versus exit
 * layer, with the draft heads' rows when there are any, the 1.0x line of plain decoding and the
 * recommended layer marked.
 */
export function renderLayerAnalysisSvg(result: LayerAnalysisResult): string {
  const pts = (f: (e: LayerAnalysisEntry) => number) => result.layers.map((e) => ({ x: e.layer, y: f(e) }));
  const speedup = { name: 'predicted best speedup', color: '#9467bd', points: pts((e) => e.bestSpeedup) };
  const withHeads = result.layers.some((e) => e.head);
  const headSpeedup = { name: 'with draft head', color: '#ff7f0e', dashed: true, points: pts((e) => e.head?.bestSpeedup ?? Number.NaN) };
  const headAgreement = { name: 'agreement with draft head', color: '#17becf', dashed: true, points: pts((e) => e.head?.agreement ?? Number.NaN) };
  const speeds = result.layers.flatMap((e) => [e.bestSpeedup, e.head?.bestSpeedup ?? Number.NaN]).filter(Number.isFinite);
  // the 1.0x line is always in view, even when every layer is predicted slower
  const top = Math.max(1.1, ...speeds.map((s) => s * 1.05));
  const r = result.recommendation;
  const marks =
    r.mode === 'self-speculative' ? [{ x: r.exitLayer, label: `recommended: layer ${r.exitLayer}${r.withHead ? ' + head' : ''}, d ${r.draftTokens}` }] : [];
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
          ...(withHeads ? [headAgreement] : []),
          { ...speedup, points: [] }, // listed in the shared legend; drawn on the right
          ...(withHeads ? [{ ...headSpeedup, points: [] }] : []),
        ],
        vLines: marks,
      },
      {
        title: 'Predicted self-speculative speedup',
        xLabel,
        yLabel: 'speedup over plain decoding (x)',
        yRange: [0, top],
        series: withHeads ? [speedup, headSpeedup] : [speedup],
        hLines: [{ y: 1, label: '1.0x: plain decoding' }],
        vLines: marks,
      },
    ],
    { title: `Layer analysis: ${result.model.name} (${result.calibration.tokens} calibration tokens)` },
  );
}
