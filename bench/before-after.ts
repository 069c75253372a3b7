// Speed of this build against another build of the package (a restructuring must not change it):
// plain and self-speculative greedy tokens/s on stories260K and the 1B shape ("late" variant,
// Q8_0), each measurement in a fresh process (the fastest of three generations), the two builds alternating within every iteration so
// that drift hits both alike. Prints the median tokens/s of each and their ratio.
//   node bench/run.mjs before-after --before DIR [--iterations 5] [--tokens 96] [--skip-1b] [--q8]
// --q8 adds two Q8_0 models at 1 thread: the committed trained brown-12L (E=6 d=3) and the 100M
// synthetic "late" model (E=3 d=3), whose quantized products round their activations to 8 bits.
// DIR is a package root holding dist/ and build/Release/ of the earlier build.
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { benchModel, ROOT, SHAPE_100M, SHAPE_1B, STORIES } from './models.js';

const { values } = parseArgs({
  options: {
    before: { type: 'string' },
    iterations: { type: 'string', default: '5' },
    tokens: { type: 'string', default: '96' },
    'skip-1b': { type: 'boolean', default: false },
    q8: { type: 'boolean', default: false },
  },
});
if (!values.before) throw new Error('--before DIR is required (a package root with dist/ and build/Release/)');
const builds = { before: resolve(values.before), after: ROOT };
const iterations = Number(values.iterations);
const tokens = Number(values.tokens);

interface Case {
  model: string;
  label: string;
  threads: number;
  spec: { exitLayer: number; draftTokens: number } | null;
}
const cases: Case[] = [
  { model: STORIES, label: 'stories260K plain', threads: 1, spec: null },
  { model: STORIES, label: 'stories260K E=3 d=3', threads: 1, spec: { exitLayer: 3, draftTokens: 3 } },
];
if (values.q8) {
  const brown = join(ROOT, 'models', 'layerskip-brown-12L.Q8_0.gguf');
  const m100 = await benchModel(SHAPE_100M, 'late', 'Q8_0');
  cases.push(
    { model: brown, label: 'brown-12L Q8_0 plain', threads: 1, spec: null },
    { model: brown, label: 'brown-12L Q8_0 E=6 d=3', threads: 1, spec: { exitLayer: 6, draftTokens: 3 } },
    { model: m100, label: '100M late Q8_0 plain', threads: 1, spec: null },
    { model: m100, label: '100M late Q8_0 E=3 d=3', threads: 1, spec: { exitLayer: 3, draftTokens: 3 } },
  );
}
if (!values['skip-1b']) {
  const oneB = await benchModel(SHAPE_1B, 'late', 'Q8_0');
  cases.push(
    { model: oneB, label: '1B late Q8_0 plain', threads: 2, spec: null },
    { model: oneB, label: '1B late Q8_0 E=4 d=4', threads: 2, spec: { exitLayer: 4, draftTokens: 4 } },
  );
}

// one process per measurement: load, warm up, then the fastest of three timed runs; prints tokens/s
const CHILD = `
const [pkg, model, threads, tokens, spec] = process.argv.slice(1);
const { loadModel } = await import(pkg + '/dist/index.js');
const m = await loadModel(model);
const ctx = await m.createContext({ contextSize: 1024, threads: Number(threads) });
const selfSpeculative = spec === 'null' ? undefined : JSON.parse(spec);
const prompt = 'Once upon a time, there was a little girl who';
await ctx.generate(prompt, { maxTokens: 8, selfSpeculative }).result;
// the fastest of 3 runs: noise on a shared machine only ever adds time
let best = 0;
for (let i = 0; i < 3; i++) {
  ctx.clear();
  const r = await ctx.generate(prompt, { maxTokens: Number(tokens), selfSpeculative, lookup: false }).result;
  best = Math.max(best, r.timings.tokensPerSecond);
}
process.stdout.write(String(best));
m.dispose();
`;

function run(pkg: string, c: Case): number {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', CHILD, pkg, c.model, String(c.threads), String(tokens), JSON.stringify(c.spec)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return Number(out);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const results = new Map<string, { before: number[]; after: number[] }>();
for (let i = 0; i < iterations; i++) {
  for (const c of cases) {
    const r = results.get(c.label) ?? { before: [], after: [] };
    // alternate which build goes first
    const order = i % 2 === 0 ? (['before', 'after'] as const) : (['after', 'before'] as const);
    for (const b of order) r[b].push(run(builds[b], c));
    results.set(c.label, r);
  }
  process.stderr.write(`iteration ${i + 1}/${iterations} done\n`);
}

console.log(`before: ${builds.before}\nafter:  ${builds.after}\n${iterations} iterations, ${tokens} tokens, median tokens/s (min-max)\n`);
console.log('| case | before | after | after / before |');
console.log('| --- | ---: | ---: | ---: |');
for (const [label, r] of results) {
  const [b, a] = [median(r.before), median(r.after)];
  const span = (xs: number[]) => `${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)}`;
  console.log(`| ${label} | ${b.toFixed(1)} (${span(r.before)}) | ${a.toFixed(1)} (${span(r.after)}) | ${(a / b).toFixed(3)} |`);
}
