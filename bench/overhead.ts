// Where a plain decoding step's time goes on a tiny model: the addon's worker-thread time (llama.cpp
// plus the argmax, `nativeMs`) against the wall time of the awaited call; the difference is the
// hand-off (libuv thread pool in and out, Promise settlement, JavaScript).
//   node bench/run.mjs overhead [MODEL] [threads]
import { loadModel } from 'layerskip';
import { STORIES } from './models.js';

const path = process.argv[2] ?? STORIES;
const threads = Number(process.argv[3] ?? 1);
const model = await loadModel(path);
const ctx = await model.createContext({ threads, contextSize: 2048 });
const prompt = model.tokenize('Once upon a time');
const n = Number(process.argv[4] ?? 128); // llama-bench's tg128
const rows: { wall: number; native: number; gen: number }[] = [];
for (let rep = 0; rep < 15; rep++) {
  ctx.clear();
  let r = await ctx.decodeLayers({ tokens: prompt });
  let nativeMs = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    r = await ctx.decodeLayers({ tokens: [r.argmax[0]] });
    nativeMs += r.nativeMs ?? 0;
  }
  const total = performance.now() - t0;
  const gen = await ctx.generate(prompt, { maxTokens: n }).result;
  rows.push({ wall: total / n, native: nativeMs / n, gen: gen.timings.generateMs / gen.tokens.length });
}
// medians over the repetitions (each figure per token, in microseconds)
const med = (f: (r: (typeof rows)[number]) => number) => rows.map(f).sort((a, b) => a - b)[rows.length >> 1] * 1000;
const wall = med((r) => r.wall);
const nat = med((r) => r.native);
const gen = med((r) => r.gen);
console.log(`${n}-token runs, ${threads} thread(s), medians of ${rows.length}:`);
console.log(`  awaited one-token decodes: ${wall.toFixed(1)} us per token (${(1e6 / wall).toFixed(0)} tokens/s)`);
console.log(`  of which in the addon's worker (llama_decode + argmax): ${nat.toFixed(1)} us (${(1e6 / nat).toFixed(0)} tokens/s if nothing else)`);
console.log(`  hand-off (thread pool in and out, Promise): ${(wall - nat).toFixed(1)} us = ${((100 * (wall - nat)) / wall).toFixed(0)}%`);
console.log(`  generate() (adds token to text, stop checks): ${gen.toFixed(1)} us per token (${(1e6 / gen).toFixed(0)} tokens/s)`);
model.dispose();
