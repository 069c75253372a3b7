// Early-exit rounds in the addon's loop (decodeRun's earlyExit: many rounds per call, fixed draft
// lengths only), one addon call per round (draftVerify, the in-turn loop through the internal
// freeDraftChoice 'in-turn'), and the two calls that replaced (draft, then the cached verification):
// plain decoding, then the same self-speculative generation each way, interleaved; each speed is
// the median over the repetitions, and the median of per-repetition ratios (BENCHMARKS.md section 16).
//   node bench/run.mjs round-calls [stories|brown] [exit layer] [draft tokens] [head|nohead] [adaptive|fixed] [repetitions]
import { join } from 'node:path';
import { fitDraftHead, loadModel, type DraftHead } from 'layerskip';
import { ROOT, STORIES, withFreeDraftChoice } from './models.js';
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
const speeds: Record<'plain' | 'addon loop' | 'one call' | 'two calls', number[]> = { plain: [], 'addon loop': [], 'one call': [], 'two calls': [] };
const modes = Object.keys(speeds) as (keyof typeof speeds)[];
let reference = '';
for (let rep = 0; rep < repetitions; rep++) {
  for (let k = 0; k < modes.length; k++) {
    const mode = modes[(k + rep) % modes.length];
    handle.draftVerify = mode === 'two calls' ? undefined : oneCall;
    ctx.clear();
    const selfSpeculative = { exitLayer, draftTokens, adaptive, draftHead: head };
    const options = mode === 'plain' ? {} : mode === 'addon loop' ? { selfSpeculative } : withFreeDraftChoice({ selfSpeculative, freeDraftChoice: 'in-turn' });
    const r = await ctx.generate(prompt, { maxTokens: 256, ...options }).result;
    if (mode === 'plain') reference ||= r.tokens.join();
    else if (reference && r.tokens.join() !== reference) throw new Error(`${mode} changed the greedy output`);
    speeds[mode].push(r.timings.tokensPerSecond);
  }
}
handle.draftVerify = oneCall;
const plain = median(speeds.plain);
console.log(`${which}, E=${exitLayer} d=${draftTokens}${head ? ' +head' : ''}${adaptive ? ' adaptive' : ''}, 1 thread, 256 tokens, ${repetitions} repetitions`);
console.log('| mode | tokens/s (median) | x plain | median of ratios |');
console.log('|---|---:|---:|---:|');
const ratio = (a: number[], b: number[]) => median(a.map((x, i) => x / b[i])).toFixed(3);
for (const [mode, xs] of Object.entries(speeds))
  console.log(`| ${mode} | ${median(xs).toFixed(0)} | ${(median(xs) / plain).toFixed(2)} | ${ratio(xs, speeds.plain)} |`);
console.log(
  `addon loop / one call: ${ratio(speeds['addon loop'], speeds['one call'])}; one call / two calls: ${ratio(speeds['one call'], speeds['two calls'])}`,
);
ctx.dispose();
model.dispose();
