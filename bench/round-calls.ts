// One addon call per early-exit round (draftVerify) against the two calls it replaced (draft, then
// the cached verification): plain decoding, then the same self-speculative generation both ways,
// interleaved; each speed is the median over the repetitions (BENCHMARKS.md section 16).
//   node bench/run.mjs round-calls [stories|brown] [exit layer] [draft tokens] [head|nohead] [adaptive|fixed] [repetitions]
import { join } from 'node:path';
import { fitDraftHead, loadModel, type DraftHead } from 'layerskip';
import { ROOT, STORIES } from './models.js';
import { median } from './stats.js';

const which = process.argv[2] ?? 'brown';
const exitLayer = Number(process.argv[3] ?? 6);
const draftTokens = Number(process.argv[4] ?? 3);
const withHead = process.argv[5] === 'head';
const adaptive = process.argv[6] === 'adaptive';
const repetitions = Number(process.argv[7] ?? 7);
const path = which === 'stories' ? STORIES : join(ROOT, 'models', 'layerskip-brown-12L.Q8_0.gguf');
const model = await loadModel(path);
const ctx = await model.createContext({ threads: 1, contextSize: 1024 });
const head: DraftHead | undefined = withHead ? await fitDraftHead(ctx, { exitLayer, selfGenerate: { positions: 4000 } }) : undefined;
// the addon's handle (internal): without draftVerify the driver drafts and verifies in two calls
const handle = (ctx as unknown as { handle: { draftVerify?: unknown } }).handle;
const oneCall = handle.draftVerify;
const prompt = model.tokenize('Once upon a time', { addBos: true });
const speeds: Record<'plain' | 'one call' | 'two calls', number[]> = { plain: [], 'one call': [], 'two calls': [] };
for (let rep = 0; rep < repetitions; rep++) {
  for (const mode of Object.keys(speeds) as (keyof typeof speeds)[]) {
    handle.draftVerify = mode === 'two calls' ? undefined : oneCall;
    ctx.clear();
    const options = mode === 'plain' ? {} : { selfSpeculative: { exitLayer, draftTokens, adaptive, draftHead: head } };
    const r = await ctx.generate(prompt, { maxTokens: 256, ...options }).result;
    speeds[mode].push(r.timings.tokensPerSecond);
  }
}
handle.draftVerify = oneCall;
const plain = median(speeds.plain);
console.log(`${which}, E=${exitLayer} d=${draftTokens}${head ? ' +head' : ''}${adaptive ? ' adaptive' : ''}, 1 thread, 256 tokens, ${repetitions} repetitions`);
console.log('| mode | tokens/s (median) | x plain |');
console.log('|---|---:|---:|');
for (const [mode, xs] of Object.entries(speeds)) console.log(`| ${mode} | ${median(xs).toFixed(0)} | ${(median(xs) / plain).toFixed(2)} |`);
console.log(`one call / two calls: ${(median(speeds['one call']) / median(speeds['two calls'])).toFixed(3)}`);
ctx.dispose();
model.dispose();
