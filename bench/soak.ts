// Soak: load -> create a context -> generate (plain, then self-speculative) -> dispose, many times
// over. Reports the process's resident memory along the way; a leak of native objects (a model, a
// context, a KV cache, a thread pool) shows as RSS growing with the cycle count.
//   node bench/run.mjs soak [cycles=1000] [MODEL]
// Exits with status 1 when RSS grows by 20 MB or more from cycle 100 to the last.
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { loadModel } from 'layerskip';
import { STORIES } from './models.js';

setFlagsFromString('--expose_gc');
const gc = runInNewContext('gc') as () => void; // a full collection before each reading: JS garbage is not a leak

const cycles = Number(process.argv[2] ?? 1000);
const path = process.argv[3] ?? STORIES;
if (!Number.isInteger(cycles) || cycles < 200) throw new Error('cycles must be an integer >= 200');

const mb = (bytes: number) => bytes / 2 ** 20;
const readings: { cycle: number; rss: number; heap: number }[] = [];
const t0 = performance.now();
for (let cycle = 1; cycle <= cycles; cycle++) {
  const model = await loadModel(path);
  const ctx = await model.createContext({ contextSize: 256, threads: 1 });
  const plain = await ctx.generate('Once upon a time', { maxTokens: 16 }).result;
  const spec = await ctx.generate('Once upon a time', { maxTokens: 16, selfSpeculative: { exitLayer: 3, draftTokens: 3 } }).result;
  if (spec.text !== plain.text) throw new Error(`cycle ${cycle}: self-speculative output differs from plain`);
  ctx.dispose();
  model.dispose();
  if (cycle === 1 || cycle % 100 === 0) {
    gc();
    const m = process.memoryUsage();
    readings.push({ cycle, rss: mb(m.rss), heap: mb(m.heapUsed) });
    console.error(`cycle ${cycle}: rss ${mb(m.rss).toFixed(1)} MB, heap ${mb(m.heapUsed).toFixed(1)} MB`);
  }
}
const at100 = readings.find((r) => r.cycle === 100)!;
const last = readings[readings.length - 1];
const growth = last.rss - at100.rss;
console.log(`\n| cycle | RSS MB | JS heap MB |\n|---|---|---|`);
for (const r of readings) console.log(`| ${r.cycle} | ${r.rss.toFixed(1)} | ${r.heap.toFixed(1)} |`);
console.log(
  `\n${cycles} cycles in ${((performance.now() - t0) / 1000).toFixed(1)} s; RSS growth from cycle 100 to ${last.cycle}: ${growth.toFixed(1)} MB (limit 20 MB)`,
);
process.exitCode = growth < 20 ? 0 : 1;
