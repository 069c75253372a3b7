// Concurrent sequences on one context against one sequence: aggregate tokens/s of 4 generations at
// once (their full-model steps batched into one decode by the scheduler) over the same 4 run one
// after another on a single-sequence context, plain and self-speculative, at 2 threads.
//   node bench/run.mjs sequences [tokens100m=48] [tokens1b=24]
import { loadModel, type GenerateOptions } from 'layerskip';
import { SHAPE_100M, SHAPE_1B, benchModel, sourceModel } from './models.js';

const PROMPTS = [
  [1, 300, 301, 302],
  [1, 400, 401, 402],
  [1, 500, 501, 502],
  [1, 600, 601, 602],
];
const THREADS = 2;

async function measure(path: string, label: string, exitLayer: number, tokens: number): Promise<void> {
  const model = await loadModel(path);
  try {
    const one = await model.createContext({ contextSize: 2048, threads: THREADS });
    const many = await model.createContext({ contextSize: 2048, threads: THREADS, sequences: 4 });
    const rows: string[] = [];
    for (const [mode, extra] of [
      ['plain', {}],
      [`self-speculative E=${exitLayer} d=3`, { selfSpeculative: { exitLayer, draftTokens: 3 } }],
    ] as [string, GenerateOptions][]) {
      const opts = { maxTokens: tokens, ...extra };
      await one.generate(PROMPTS[0], { ...opts, maxTokens: 4 }).result; // warm-up
      let t0 = performance.now();
      let n1 = 0;
      for (const p of PROMPTS) {
        one.clear();
        n1 += (await one.generate(p, opts).result).tokens.length;
      }
      const single = (n1 / (performance.now() - t0)) * 1000;
      many.clear();
      await Promise.all(PROMPTS.map((p, i) => many.sequence(i).generate(p, { ...opts, maxTokens: 4 }).result));
      many.clear();
      t0 = performance.now();
      const rs = await Promise.all(PROMPTS.map((p, i) => many.sequence(i).generate(p, opts).result));
      const n4 = rs.reduce((a, r) => a + r.tokens.length, 0);
      const aggregate = (n4 / (performance.now() - t0)) * 1000;
      rows.push(`| ${label} | ${mode} | ${single.toFixed(1)} | ${aggregate.toFixed(1)} | **${(aggregate / single).toFixed(2)}x** | ${n1} / ${n4} |`);
    }
    console.log(rows.join('\n'));
  } finally {
    model.dispose();
  }
}

const t100 = Number(process.argv[2] ?? 48);
const t1b = Number(process.argv[3] ?? 24);
console.log(`| model | decoding | 1 sequence, 4 prompts in turn (tok/s) | 4 sequences at once (aggregate tok/s) | ratio | tokens |\n|---|---|---|---|---|---|`);
await measure(sourceModel(SHAPE_100M, 'late'), '100M F16 (late)', 3, t100);
await measure(await benchModel(SHAPE_1B, 'late', 'Q8_0'), '1B shape Q8_0 (late)', 4, t1b);
