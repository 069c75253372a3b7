// `layerskip calibrate`: fits a draft head (exit adapter and draft vocabulary) for one exit layer
// and writes it as a small GGUF file, with a progress bar on the terminal.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fitDraftHead, type FitDraftHeadOptions } from './draft-head/fit.js';
import { loadModel } from './model.js';

export const calibrateUsage = `  layerskip calibrate -m MODEL --exit-layer E [--text FILE] [--out FILE] [--vocab N|full|COVERAGE%]
                      [--steps N] [--positions N] [--threads T] [--no-adapter]
`;

function fail(message: string): never {
  process.stderr.write(`layerskip calibrate: ${message}\n`);
  process.exit(2);
}

function int(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) fail(`--${name} must be a non-negative integer, got ${v}`);
  return n;
}

function vocabulary(v: string | undefined): FitDraftHeadOptions['vocabulary'] {
  if (v === undefined) return undefined;
  if (v === 'full') return 'full';
  if (v.endsWith('%')) {
    const c = Number(v.slice(0, -1)) / 100;
    if (!(c > 0 && c <= 1)) fail(`--vocab coverage must be in (0%, 100%], got ${v}`);
    return { coverage: c };
  }
  return int('vocab', v);
}

/** A one-line progress bar on a terminal; one line per phase otherwise. */
function progressBar(): { update: (phase: string, done: number, total: number, extra?: string) => void; end: () => void } {
  const tty = process.stderr.isTTY;
  let last = '';
  return {
    update(phase, done, total, extra = '') {
      const width = 30;
      const filled = Math.round((width * done) / Math.max(total, 1));
      if (tty) process.stderr.write(`\r\x1b[K${phase.padEnd(9)}[${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${done}/${total} ${extra}`);
      else if (phase !== last) process.stderr.write(`${phase}...\n`);
      last = phase;
    },
    end() {
      if (tty) process.stderr.write('\r\x1b[K');
    },
  };
}

export async function calibrateCommand(argv: string[]): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string', short: 'm' },
        'exit-layer': { type: 'string' },
        text: { type: 'string' },
        out: { type: 'string', short: 'o' },
        vocab: { type: 'string' },
        steps: { type: 'string' },
        positions: { type: 'string' },
        threads: { type: 'string', short: 't' },
        'no-adapter': { type: 'boolean' },
      },
    }));
  } catch (e) {
    fail((e as Error).message);
  }
  if (!values.model) fail('needs -m MODEL');
  const exitLayer = int('exit-layer', values['exit-layer']);
  if (exitLayer === undefined) fail('needs --exit-layer E');
  const out = values.out ?? `${values.model.replace(/\.gguf$/i, '')}.head-E${exitLayer}.gguf`;
  const text = values.text !== undefined ? readFileSync(values.text, 'utf8') : undefined;
  const options: FitDraftHeadOptions = {
    exitLayer, text, vocabulary: vocabulary(values.vocab), steps: int('steps', values.steps),
    adapter: !values['no-adapter'], threads: int('threads', values.threads),
    selfGenerate: values.positions !== undefined ? { positions: int('positions', values.positions) } : undefined,
  };
  const model = await loadModel(values.model);
  const bar = progressBar();
  try {
    const ctx = await model.createContext({ contextSize: 512, threads: options.threads });
    const controller = new AbortController();
    process.once('SIGINT', () => controller.abort());
    const head = await fitDraftHead(ctx, {
      ...options, signal: controller.signal,
      onProgress: (p) => bar.update(p.phase, p.done, p.total, p.loss !== undefined ? `loss ${p.loss.toFixed(4)}` : ''),
    });
    bar.end();
    head.save(out);
    const s = head.stats!;
    process.stderr.write(
      `exit layer ${exitLayer}/${model.layerCount}: held-out agreement ${s.agreementBefore.toFixed(3)} (plain exit) -> ` +
        (head.tokenIds ? `${s.agreementVocabulary.toFixed(3)} (draft vocabulary alone) -> ` : '') +
        `${s.agreementRidge.toFixed(3)} (ridge, lambda ${s.ridgeLambda}) -> ${s.agreementAfter.toFixed(3)} (refined, ${s.refinementSteps} steps); ` +
        `${head.tokenIds ? `draft vocabulary ${head.tokenIds.length} tokens (coverage ${(s.vocabularyCoverage * 100).toFixed(1)}%)` : 'full vocabulary'}; ` +
        `${s.fitPositions} fit + ${s.heldOutPositions} held-out positions; ${(s.calibrationMs / 1000).toFixed(1)} s\nwrote ${out}\n`,
    );
  } finally {
    bar.end();
    model.dispose();
  }
}
