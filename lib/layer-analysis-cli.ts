// `layerskip analyze`: the per-layer analysis of a model (agreement, CKA, rCCA, costs, predicted
// speedup), or with --synthetic the SDR paper's synthetic sweep (PCA / PLS / CCA / rCCA).
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runSyntheticSweep } from './analysis/index.js';
import { analyzeLayers, DEFAULT_CALIBRATION_TEXTS, formatLayerAnalysis, renderLayerAnalysisSvg } from './layer-analysis.js';
import { loadModel } from './model.js';
import { DraftHead } from './draft-head/draft-head.js';

export const analyzeUsage = `  layerskip analyze -m MODEL [--text FILE] [--json OUT] [--svg OUT] [--layers 1,2,3] [--threads T]
                    [--max-tokens N] [--max-draft D] [--repeats R] [--draft-head FILE ...]
  layerskip analyze --synthetic [--svg OUT] [--csv OUT]
`;

class UsageError extends Error {}

function int(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got ${v}`);
  return n;
}

function progressPrinter(): { update: (done: number, total: number, stage: string) => void; end: () => void } {
  const tty = process.stderr.isTTY;
  let lastStage = '';
  let lastPct = -1;
  return {
    update(done, total, stage) {
      const pct = Math.floor((100 * done) / total);
      if (tty) {
        if (pct !== lastPct || stage !== lastStage) process.stderr.write(`\r\x1b[K[${String(pct).padStart(3)}%] ${stage}`);
      } else if (stage !== lastStage) {
        process.stderr.write(`[${String(pct).padStart(3)}%] ${stage}\n`);
      }
      lastPct = pct;
      lastStage = stage;
    },
    end() {
      if (tty && lastStage) process.stderr.write('\r\x1b[K');
    },
  };
}

async function run(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
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
    },
  });
  if (positionals.length) throw new UsageError(`analyze: unexpected argument ${positionals[0]}`);
  if (values.synthetic) {
    if (values.model || values.text || values.json || values.layers) {
      throw new UsageError('analyze --synthetic takes only --svg and --csv');
    }
    process.stderr.write('running the synthetic PCA / PLS / CCA / rCCA sweep...\n');
    const r = runSyntheticSweep();
    if (values.csv) writeFileSync(values.csv, r.csv);
    if (values.svg) writeFileSync(values.svg, r.svg);
    if (!values.csv) process.stdout.write(r.csv);
    for (const [k, f] of [['csv', values.csv], ['svg', values.svg]] as const) if (f) process.stderr.write(`wrote ${k} to ${f}\n`);
    return;
  }
  if (values.csv) throw new UsageError('--csv is for analyze --synthetic (the layer analysis writes --json and --svg)');
  if (!values.model) throw new UsageError('analyze needs -m MODEL (or --synthetic)');
  let layers: number[] | undefined;
  if (values.layers !== undefined) {
    layers = values.layers.split(',').map((s) => s.trim()).filter(Boolean).map((s) => int('layers', s)!);
    if (layers.length === 0) throw new UsageError('--layers needs a comma-separated list of exit layers, e.g. 1,2,3');
  }
  const texts = values.text !== undefined ? [readFileSync(values.text, 'utf8')] : [...DEFAULT_CALIBRATION_TEXTS];
  const threads = int('threads', values.threads);
  const maxTokens = int('max-tokens', values['max-tokens']);
  const model = await loadModel(values.model);
  const progress = progressPrinter();
  try {
    const batch = Math.min(512, maxTokens ?? 512);
    const ctx = await model.createContext({ contextSize: Math.max(batch, 64), batchSize: batch, threads });
    const result = await analyzeLayers(ctx, texts, {
      layers,
      maxTokens,
      maxDraft: int('max-draft', values['max-draft']),
      timingRepeats: int('repeats', values.repeats),
      draftHeads: (values['draft-head'] ?? []).map((f) => DraftHead.load(f)),
      onProgress: progress.update,
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

/** The `analyze` command; usage errors exit with status 2 and the usage text. */
export async function analyzeCommand(argv: string[]): Promise<void> {
  try {
    await run(argv);
  } catch (e) {
    if (e instanceof UsageError || (e as NodeJS.ErrnoException).code?.startsWith?.('ERR_PARSE_ARGS')) {
      process.stderr.write(`layerskip: ${(e as Error).message}\nUsage:\n${analyzeUsage}`);
      process.exit(2);
    }
    throw e;
  }
}
