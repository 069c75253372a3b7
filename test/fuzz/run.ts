// The fuzz script (npm run fuzz -- [options]): mutated copies of a model file through the built
// library in worker processes; prints progress to stderr and the report to stdout; exits 1 when
// any case crashed, hung or left its worker unusable, or a rejection named no reason.
//
//   --cases N          cases to run (default 5000)
//   --seed S           seed of the first case (default 1); case i has seed S + i
//   --jobs J           worker processes (default 2)
//   --timeout MS       per-case limit before a case counts as a hang (default 30000)
//   --keep-crashes DIR copy the files of crashing / hanging cases into DIR
//   --json FILE        also write the whole report as JSON
//   --model FILE       the seed model (default models/stories260K.gguf)
//   --no-validate      load with validate: false (do the mutations still reach the faults the
//                      library's model-file checks guard against? crashes expected)
//   --reproduce SEED --out FILE   write one case's file and say what it mutated, run nothing
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DIST_ENTRY, REPOSITORY_ROOT, distIsStale, formatReport, reproduce, runFuzz } from './harness.js';

const USAGE =
  'usage: npm run fuzz -- [--cases N] [--seed S] [--jobs J] [--timeout MS] [--keep-crashes DIR] [--json FILE] [--model FILE] [--no-validate] | --reproduce SEED --out FILE';

function parseFlags() {
  try {
    return parseArgs({ strict: true, options: FLAGS });
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}

const FLAGS = {
  cases: { type: 'string', default: '5000' },
  seed: { type: 'string', default: '1' },
  jobs: { type: 'string', default: '2' },
  timeout: { type: 'string', default: '30000' },
  'keep-crashes': { type: 'string' },
  json: { type: 'string' },
  model: { type: 'string' },
  'no-validate': { type: 'boolean', default: false },
  reproduce: { type: 'string' },
  out: { type: 'string' },
  help: { type: 'boolean', default: false },
} as const;

const { values } = parseFlags();
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

function integer(name: string, text: string, min: number): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) {
    console.error(`--${name} must be an integer >= ${min}, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return n;
}

const model = resolve(values.model ?? join(REPOSITORY_ROOT, 'models', 'stories260K.gguf'));

if (values.reproduce !== undefined) {
  if (!values.out) {
    console.error('--reproduce needs --out FILE');
    process.exit(2);
  }
  const m = reproduce(model, integer('reproduce', values.reproduce, 0), values.out);
  console.log(`${values.out}: case ${values.reproduce}, ${m.kind}: ${m.detail} (${m.bytes.length} bytes)`);
  process.exit(0);
}

const cases = integer('cases', values.cases, 1);
if (distIsStale()) console.error(`warning: ${DIST_ENTRY} is missing or older than lib/: the workers run the last build (npm run build)`);
const started = performance.now();
const running: Record<string, number> = { ok: 0, rejected: 0, crash: 0, hang: 0, unusable: 0 };
const report = await runFuzz({
  seedModel: model,
  cases,
  firstSeed: integer('seed', values.seed, 0),
  jobs: integer('jobs', values.jobs, 1),
  timeoutMs: integer('timeout', values.timeout, 1),
  keepFailuresDir: values['keep-crashes'],
  validate: !values['no-validate'],
  onCase: (r, done, total) => {
    running[r.outcome]++;
    if (r.outcome !== 'ok' && r.outcome !== 'rejected') console.error(`  ${r.outcome} seed ${r.seed} ${r.kind} at ${r.stage}: ${r.signature} (${r.detail})`);
    if (done % 100 === 0 || done === total) {
      const counts = Object.entries(running)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');
      console.error(`[${done}/${total}] ${counts} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
    }
  },
});
console.log(formatReport(report));
if (values.json) writeFileSync(values.json, JSON.stringify(report, null, 2));
const failed = report.totals.crash + report.totals.hang + report.totals.unusable;
if (failed + report.vagueRejections.length > 0) {
  console.error(`FAIL: ${failed} crashed, hung or unusable; ${report.vagueRejections.length} rejections without a reason`);
  process.exitCode = 1;
}
