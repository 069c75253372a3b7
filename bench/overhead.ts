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
const n = 1000;
for (let rep = 0; rep < 3; rep++) {
  ctx.clear();
  let r = await ctx.decodeLayers({ tokens: prompt });
  let wall = 0;
  let nativeMs = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    r = await ctx.decodeLayers({ tokens: [r.argmax[0]] });
    wall += performance.now() - s;
    nativeMs += r.nativeMs ?? 0;
  }
  const total = performance.now() - t0;
  const gen = await ctx.generate(prompt, { maxTokens: 1000 }).result;
  console.log(
    `${n} one-token decodes: ${(total / n * 1000).toFixed(1)} us per token (${(n / total * 1000).toFixed(0)} tokens/s); ` +
    `in the addon's worker ${(nativeMs / n * 1000).toFixed(1)} us (${(n / nativeMs * 1000).toFixed(0)} tokens/s if nothing else), ` +
    `hand-off ${((wall - nativeMs) / n * 1000).toFixed(1)} us, loop ${((total - wall) / n * 1000).toFixed(1)} us; ` +
    `generate(): ${gen.timings.tokensPerSecond.toFixed(0)} tokens/s`,
  );
}
model.dispose();
