// `layerskip calibrate`: fits a draft head (exit adapter and draft vocabulary) for one exit layer
// and writes it as a small GGUF file, with a progress bar on the terminal.
import { fitDraftHead, type FitDraftHeadOptions } from '../tools/draft-head-fit.js';
import type { DraftHeadStats } from '../draft-head/draft-head.js';
import { loadModel } from '../runtime/model.js';
import { intFlag, numberFlag, parse, readFlagFile, required, UsageError } from './args.js';
import { progressBar } from './progress.js';

export const calibrateUsage = `  layerskip calibrate -m MODEL --exit-layer E [--text FILE] [--out FILE] [--vocab N|full|COVERAGE%]
                      [--steps N] [--positions N] [--threads T] [--no-adapter]
`;

function vocabulary(v: string | undefined): FitDraftHeadOptions['vocabulary'] {
  if (v === undefined || v === 'full') return v;
  if (v.endsWith('%')) return { coverage: numberFlag('vocab', v.slice(0, -1), { min: 0.001, max: 100 })! / 100 };
  return intFlag('vocab', v, 1);
}

export async function calibrateCommand(argv: string[]): Promise<void> {
  const { values } = parse('calibrate', argv, {
    model: { type: 'string', short: 'm' },
    'exit-layer': { type: 'string' },
    text: { type: 'string' },
    out: { type: 'string', short: 'o' },
    vocab: { type: 'string' },
    steps: { type: 'string' },
    positions: { type: 'string' },
    threads: { type: 'string', short: 't' },
    'no-adapter': { type: 'boolean' },
  });
  const path = required('calibrate', '-m MODEL', values.model);
  const exitLayer = required('calibrate', '--exit-layer E', intFlag('exit-layer', values['exit-layer'], 1));
  const out = values.out ?? `${path.replace(/\.gguf$/i, '')}.head-E${exitLayer}.gguf`;
  const positions = intFlag('positions', values.positions, 16);
  if (positions !== undefined && values.text !== undefined) throw new UsageError('calibrate: --positions is for self-generated data, not --text');
  const options: FitDraftHeadOptions = {
    exitLayer,
    text: values.text !== undefined ? readFlagFile('calibrate', 'text', values.text) : undefined,
    vocabulary: vocabulary(values.vocab),
    steps: intFlag('steps', values.steps, 0),
    adapter: !values['no-adapter'],
    threads: intFlag('threads', values.threads, 1),
    selfGenerate: positions !== undefined ? { positions } : undefined,
  };
  const model = await loadModel(path);
  const bar = progressBar();
  try {
    const ctx = await model.createContext({ contextSize: 512, threads: options.threads });
    const controller = new AbortController();
    process.once('SIGINT', () => controller.abort());
    const head = await fitDraftHead(ctx, {
      ...options,
      signal: controller.signal,
      onProgress: (p) => bar.update(p.phase, p.done, p.total, p.loss !== undefined ? `loss ${p.loss.toFixed(4)}` : ''),
    });
    bar.end();
    head.save(out);
    const s = head.stats!;
    process.stderr.write(
      `exit layer ${exitLayer}/${model.layerCount}: held-out agreement ${s.agreementBefore.toFixed(3)} (plain exit) -> ` +
        (head.tokenIds ? `${s.agreementVocabulary.toFixed(3)} (draft vocabulary alone) -> ` : '') +
        `${s.agreementRidge.toFixed(3)} (ridge, lambda ${s.ridgeLambda}) -> ${refinement(s)}; ` +
        `${head.tokenIds ? `draft vocabulary ${head.tokenIds.length} tokens (coverage ${(s.vocabularyCoverage * 100).toFixed(1)}%)` : 'full vocabulary'}; ` +
        `${s.fitPositions} fit + ${s.heldOutPositions} held-out positions; ${(s.calibrationMs / 1000).toFixed(1)} s\nwrote ${out}\n`,
    );
  } finally {
    bar.end();
    model.dispose();
  }
}

/** The refinement's part of the calibration line: kept, or discarded for the ridge adapter. */
function refinement(s: DraftHeadStats): string {
  if (s.agreementRefined === undefined || s.refinementKept !== false) return `${s.agreementAfter.toFixed(3)} (refined, ${s.refinementSteps} steps)`;
  return `${s.agreementRefined.toFixed(3)} (refined, ${s.refinementSteps} steps: worse held out, the ridge adapter is kept)`;
}
