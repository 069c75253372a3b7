/**
 * Reproduce the SDR paper's sample-efficiency comparison on its synthetic linear
 * model: subspace recovery and held-out reconstructed correlation versus the
 * number of training samples, for PCA, PLS, CCA and cross-validated rCCA.
 *
 * Writes bench/results/analysis-synthetic.csv and .svg (paths relative to the
 * current directory; run from the repository root).
 *
 * Run it with `node bench/run.mjs analysis-synthetic [--repeats N] [--samples 10,20,50] [--dx D] [--dy D]`
 * (bench/run.mjs compiles bench/*.ts with tsc; they import the built package as 'layerskip').
 *
 * The logic lives in lib/analysis/synthetic-sweep.ts (`runSyntheticSweep`), so
 * the compiled library (and a CLI wrapping it) produce the same output.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runSyntheticSweep, syntheticSweepSvg, type SyntheticSweepOptions } from 'layerskip/analysis';

function parseArgs(argv: string[]): SyntheticSweepOptions {
  const options: SyntheticSweepOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = argv[i + 1];
    const num = () => {
      const v = Number(value);
      if (!Number.isFinite(v)) throw new Error(`${arg} needs a number, got ${value}`);
      i++;
      return v;
    };
    switch (arg) {
      case '--repeats':
        options.repeats = num();
        break;
      case '--dx':
        options.dx = num();
        break;
      case '--dy':
        options.dy = num();
        break;
      case '--seed':
        options.seed = num();
        break;
      case '--snr-shared':
        options.snrShared = num();
        break;
      case '--snr-self':
        options.snrSelf = num();
        break;
      case '--samples':
        options.sampleCounts = (value ?? '').split(',').map(Number);
        i++;
        break;
      default:
        throw new Error(`unknown argument ${arg}`);
    }
  }
  return options;
}

const started = Date.now();
const result = runSyntheticSweep(parseArgs(process.argv.slice(2)));
const outDir = join('bench', 'results');
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'analysis-synthetic.csv'), result.csv);
writeFileSync(join(outDir, 'analysis-synthetic.svg'), syntheticSweepSvg(result.rows, result.options, result.chance));

const fmt = (v: number) => (Number.isNaN(v) ? '   -  ' : v.toFixed(3).padStart(6));
console.log(`chance level k/d = ${result.chance.toFixed(3)}; ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log('method  samples  quality   ±sd   heldOut  rCCA c');
for (const r of result.rows) {
  console.log(
    `${r.method.padEnd(6)} ${String(r.samples).padStart(8)}  ${fmt(r.subspaceQuality)} ${fmt(r.subspaceQualitySd)}  ${fmt(r.reconstructedScore)}  ${fmt(r.rccaCoefficient)}`,
  );
}
console.log(`wrote ${join(outDir, 'analysis-synthetic.csv')} and .svg`);
