// What a verification of k rows costs against a one-token decode, the number that decides whether
// free drafts pay: after a context of C tokens, one decode of k tokens (logits for every row, as a
// verification reads them), for k = 1, 2, 4, 8, 16, 17 and 32, the median of the repetitions,
// interleaved. Prints milliseconds and the cost in one-token decodes. To compare two builds, run
// it with LAYERSKIP_BINARY set to each (BENCHMARKS.md section 16, "Stop 34").
//   node bench/run.mjs verify-cost [model.gguf] [context tokens] [repetitions]
import { join } from 'node:path';
import { loadModel } from 'layerskip';
import { ROOT } from './models.js';
import { median } from './stats.js';

const path = process.argv[2] ?? join(ROOT, 'models', 'layerskip-brown-12L.Q8_0.gguf');
const contextTokens = Number(process.argv[3] ?? 60);
const repetitions = Number(process.argv[4] ?? 41);
const ROWS = [1, 2, 4, 8, 16, 17, 32];

const model = await loadModel(path);
const ctx = await model.createContext({ threads: 1, contextSize: 2048 });
const vocab = model.info.vocabularySize;
// any tokens do: the cost does not depend on them
const tokens = Array.from({ length: contextTokens + 32 }, (_, i) => 3 + ((i * 7919) % (vocab - 3)));
const times = new Map<number, number[]>(ROWS.map((k) => [k, []]));
for (let rep = 0; rep < repetitions; rep++) {
  for (const k of ROWS) {
    ctx.clear();
    // in batches: a context longer than the batch size is several decodes
    for (let at = 0; at < contextTokens; at += 512) await ctx.decodeLayers({ tokens: tokens.slice(at, Math.min(at + 512, contextTokens)), outputs: 'none' });
    // a one-token decode first, so that the timed call switches graphs as a verification after a
    // plain step does
    await ctx.decodeLayers({ tokens: tokens.slice(contextTokens, contextTokens + 1) });
    const t0 = process.hrtime.bigint();
    await ctx.decodeLayers({ tokens: tokens.slice(contextTokens + 1, contextTokens + 1 + k), outputs: 'all', logits: true });
    times.get(k)!.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
}
const one = median(times.get(1)!);
console.log(`${path}, 1 thread, after ${contextTokens} tokens, ${repetitions} repetitions, binary ${process.env.LAYERSKIP_BINARY ?? '(default)'}`);
console.log('| rows | ms (median) | one-token decodes | per row |');
console.log('|---:|---:|---:|---:|');
for (const k of ROWS) {
  const ms = median(times.get(k)!);
  console.log(`| ${k} | ${ms.toFixed(3)} | ${(ms / one).toFixed(2)} | ${(ms / one / k).toFixed(2)} |`);
}
ctx.dispose();
model.dispose();
