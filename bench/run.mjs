#!/usr/bin/env node
// Runs a benchmark: compiles bench/*.ts (they import the built package as 'layerskip') and runs
// the named one.   node bench/run.mjs <quick|full|costs|adaptive|memory|analysis-synthetic|sampling|draft-head|overhead|round-calls|copy-probe|soak|sequences|rpc|train|train-speed|train-speed-focus|train-throughput|architectures|peers-smoke|lookup|lookup-cost|fusion|verify-cost|prediction-bound|lookup-alone> [args]
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const [name = 'quick', ...rest] = process.argv.slice(2);
const scripts = {
  quick: 'suite.js',
  full: 'suite.js',
  costs: 'costs.js',
  adaptive: 'adaptive.js',
  memory: 'memory.js',
  'analysis-synthetic': 'analysis-synthetic.js',
  sampling: 'sampling.js',
  'draft-head': 'draft-head.js',
  overhead: 'overhead.js',
  'round-calls': 'round-calls.js',
  'copy-probe': 'copy-probe.js',
  soak: 'soak.js',
  sequences: 'sequences.js',
  rpc: 'rpc.js',
  train: 'train.js',
  'train-speed': 'train-speed.js',
  'train-throughput': 'train-throughput.js',
  'train-speed-focus': 'train-speed-focus.js',
  architectures: 'architectures.js',
  'peers-smoke': 'peers-smoke.js',
  lookup: 'lookup.js',
  'lookup-cost': 'lookup-cost.js',
  fusion: 'fusion.js',
  'verify-cost': 'verify-cost.js',
  'prediction-bound': 'prediction-bound.js',
  'lookup-alone': 'lookup-alone.js',
  'before-after': 'before-after.js',
};
if (!scripts[name]) {
  console.error(`unknown benchmark ${name}; one of ${Object.keys(scripts).join(', ')}`);
  process.exit(2);
}
if (!existsSync(join(root, 'dist', 'index.js'))) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
const tsc = join(dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc');
execFileSync(process.execPath, [tsc, '-p', join(root, 'bench', 'tsconfig.json')], { cwd: root, stdio: 'inherit' });
process.argv = [process.argv[0], scripts[name], ...(name === 'quick' || name === 'full' ? [name] : []), ...rest];
await import(pathToFileURL(join(root, '.cache', 'bench', scripts[name])).href);
