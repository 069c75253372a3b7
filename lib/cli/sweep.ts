// `layerskip sweep`: greedy self-speculative tokens/s for every (exit layer, draft length), as CSV and an SVG heat map.
import { writeFileSync } from 'node:fs';
import { loadModel } from '../runtime/model.js';
import { sweepToCsv, sweepToSvg } from '../tools/reports/sweep-report.js';
import { sweep } from '../tools/sweep.js';
import { intFlag, intListFlag, parse, required } from './args.js';

export const sweepUsage = `  layerskip sweep -m MODEL [--csv OUT] [--svg OUT] [--tokens N] [--layers 1,2,3] [--drafts 1,2,4] [--repeats R] [--threads T]\n`;

export async function sweepCommand(argv: string[]): Promise<void> {
  const { values } = parse('sweep', argv, {
    model: { type: 'string', short: 'm' },
    csv: { type: 'string' },
    svg: { type: 'string' },
    tokens: { type: 'string' },
    layers: { type: 'string' },
    drafts: { type: 'string' },
    repeats: { type: 'string' },
    threads: { type: 'string', short: 't' },
  });
  const path = required('sweep', '-m MODEL', values.model);
  const options = {
    exitLayers: intListFlag('layers', values.layers, 1),
    draftLengths: intListFlag('drafts', values.drafts, 1),
    maxTokens: intFlag('tokens', values.tokens, 1),
    repeats: intFlag('repeats', values.repeats, 1),
  };
  const threads = intFlag('threads', values.threads, 1);
  const model = await loadModel(path);
  try {
    const ctx = await model.createContext({ threads, contextSize: 1024 });
    const t0 = performance.now();
    const r = await sweep(ctx, {
      ...options,
      onProgress: (done, total, label) => {
        const eta = (((performance.now() - t0) / done) * (total - done)) / 1000;
        process.stderr.write(`\r[${done}/${total}] ${label.padEnd(12)} ~${eta.toFixed(0)} s left   `);
      },
    });
    process.stderr.write('\n');
    const csvPath = values.csv ?? 'sweep.csv';
    const svgPath = values.svg ?? 'sweep.svg';
    writeFileSync(csvPath, sweepToCsv(r));
    writeFileSync(svgPath, sweepToSvg(r, `${model.info.name || path}: self-speculative greedy tokens/s`));
    const [plo, phi] = r.plainTokensPerSecondRange;
    const [blo, bhi] = r.best.tokensPerSecondRange;
    const cell = `exit layer ${r.best.exitLayer}, draft ${r.best.draftTokens}: ${r.best.tokensPerSecond.toFixed(1)} tokens/s (repeats ${blo.toFixed(1)}-${bhi.toFixed(1)}; ${r.best.speedup.toFixed(2)}x, acceptance ${r.best.acceptance.toFixed(2)})`;
    process.stdout.write(
      `plain: ${r.plainTokensPerSecond.toFixed(1)} tokens/s (runs ${plo.toFixed(1)}-${phi.toFixed(1)})\n` +
        (r.beatsPlain ? `best: ${cell}\n` : `no cell beats plain decoding; fastest: ${cell}\n`) +
        `wrote ${csvPath} and ${svgPath}\n`,
    );
  } finally {
    model.dispose();
  }
}
