// `layerskip analyze`: the per-layer analysis of a model (agreement, CKA, rCCA, costs, predicted
// speedup), or with --synthetic the SDR paper's synthetic sweep (PCA / PLS / CCA / rCCA).
import { writeFileSync } from 'node:fs';
import { runSyntheticSweep } from '../analysis/index.js';
import { syntheticSweepSvg } from '../analysis/synthetic-sweep-chart.js';
import { DraftHead } from '../draft-head/draft-head.js';
import { analyzeLayers, DEFAULT_CALIBRATION_TEXTS } from '../tools/layer-analysis.js';
import { loadModel } from '../runtime/model.js';
import { formatLayerAnalysis, renderLayerAnalysisSvg } from '../tools/reports/layer-analysis-report.js';
import { intFlag, intListFlag, parse, readFlagFile, UsageError } from './args.js';
import { progressBar } from './progress.js';

export const analyzeUsage = `  layerskip analyze -m MODEL [--text FILE] [--json OUT] [--svg OUT] [--layers 1,2,3] [--threads T]
                    [--max-tokens N] [--max-draft D] [--repeats R] [--draft-head FILE ...]
  layerskip analyze --synthetic [--svg OUT] [--csv OUT]
`;

export async function analyzeCommand(argv: string[]): Promise<void> {
  const { values } = parse('analyze', argv, {
    model: { type: 'string', short: 'm' },
    text: { type: 'string' },
    json: { type: 'string' },
    svg: { type: 'string' },
    csv: { type: 'string' },
    layers: { type: 'string' },
    threads: { type: 'string', short: 't' },
    'max-tokens': { type: 'string' },
    'max-draft': { type: 'string' },
    repeats: { type: 'string' },
    synthetic: { type: 'boolean' },
    'draft-head': { type: 'string', multiple: true },
  });
  if (values.synthetic) {
    if (values.model || values.text || values.json || values.layers) {
      throw new UsageError('analyze --synthetic takes only --svg and --csv');
    }
    process.stderr.write('running the synthetic PCA / PLS / CCA / rCCA sweep...\n');
    const r = runSyntheticSweep();
    if (values.csv) writeFileSync(values.csv, r.csv);
    if (values.svg) writeFileSync(values.svg, syntheticSweepSvg(r.rows, r.options, r.chance));
    if (!values.csv) process.stdout.write(r.csv);
    for (const [k, f] of [
      ['csv', values.csv],
      ['svg', values.svg],
    ] as const)
      if (f) process.stderr.write(`wrote ${k} to ${f}\n`);
    return;
  }
  if (values.csv) throw new UsageError('--csv is for analyze --synthetic (the layer analysis writes --json and --svg)');
  if (!values.model) throw new UsageError('analyze needs -m MODEL (or --synthetic)');
  const layers = intListFlag('layers', values.layers, 1);
  const texts = values.text !== undefined ? [readFlagFile('analyze', 'text', values.text)] : [...DEFAULT_CALIBRATION_TEXTS];
  const threads = intFlag('threads', values.threads, 1);
  const maxTokens = intFlag('max-tokens', values['max-tokens'], 8);
  const model = await loadModel(values.model);
  const progress = progressBar();
  try {
    const batch = Math.min(512, maxTokens ?? 512);
    const ctx = await model.createContext({ contextSize: Math.max(batch, 64), batchSize: batch, threads });
    const result = await analyzeLayers(ctx, texts, {
      layers,
      maxTokens,
      maxDraft: intFlag('max-draft', values['max-draft'], 1),
      timingRepeats: intFlag('repeats', values.repeats, 0),
      draftHeads: (values['draft-head'] ?? []).map((f) => DraftHead.load(f)),
      onProgress: (done, total, stage) => progress.update(stage, done, total),
    });
    progress.end();
    process.stdout.write(formatLayerAnalysis(result));
    if (values.json) {
      writeFileSync(values.json, JSON.stringify(result, null, 2) + '\n');
      process.stderr.write(`wrote JSON to ${values.json}\n`);
    }
    if (values.svg) {
      writeFileSync(values.svg, renderLayerAnalysisSvg(result));
      process.stderr.write(`wrote SVG to ${values.svg}\n`);
    }
  } finally {
    progress.end();
    model.dispose();
  }
}
