// `layerskip sweep -m MODEL [--csv OUT] [--svg OUT] [--tokens N] [--layers 1,2] [--drafts 1,2,4] [--threads T]`
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadModel } from './model.js';
import { sweep, sweepToCsv, sweepToSvg } from './sweep.js';

export const sweepUsage = `  layerskip sweep -m MODEL [--csv OUT] [--svg OUT] [--tokens N] [--layers 1,2,3] [--drafts 1,2,4] [--repeats R] [--threads T]\n`;

const list = (v: string | undefined) => (v === undefined ? undefined : v.split(',').map((x) => Number(x.trim())));

export async function sweepCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string', short: 'm' }, csv: { type: 'string' }, svg: { type: 'string' }, tokens: { type: 'string' },
      layers: { type: 'string' }, drafts: { type: 'string' }, repeats: { type: 'string' }, threads: { type: 'string', short: 't' },
    },
  });
  if (!values.model) throw new Error('sweep needs -m MODEL');
  const model = await loadModel(values.model);
  try {
    const ctx = await model.createContext({ threads: values.threads ? Number(values.threads) : undefined, contextSize: 1024 });
    const t0 = performance.now();
    const r = await sweep(ctx, {
      exitLayers: list(values.layers),
      draftLengths: list(values.drafts),
      maxTokens: values.tokens ? Number(values.tokens) : undefined,
      repeats: values.repeats ? Number(values.repeats) : undefined,
      onProgress: (done, total, label) => {
        const eta = ((performance.now() - t0) / done) * (total - done) / 1000;
        process.stderr.write(`\r[${done}/${total}] ${label.padEnd(12)} ~${eta.toFixed(0)} s left   `);
      },
    });
    process.stderr.write('\n');
    const csvPath = values.csv ?? 'sweep.csv';
    const svgPath = values.svg ?? 'sweep.svg';
    writeFileSync(csvPath, sweepToCsv(r));
    writeFileSync(svgPath, sweepToSvg(r, `${model.info.name || values.model}: self-speculative greedy tokens/s`));
    process.stdout.write(
      `plain: ${r.plainTokensPerSecond.toFixed(1)} tokens/s\nbest: exit layer ${r.best.exitLayer}, draft ${r.best.draftTokens}: ` +
        `${r.best.tokensPerSecond.toFixed(1)} tokens/s (${r.best.speedup.toFixed(2)}x, acceptance ${r.best.acceptance.toFixed(2)})\n` +
        `wrote ${csvPath} and ${svgPath}\n`,
    );
  } finally {
    model.dispose();
  }
}
