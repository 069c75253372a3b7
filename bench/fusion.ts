// Free continuation with lookup fused into early exit, against early exit alone and plain decoding
// (BENCHMARKS.md section 16, "Stop 32"): plain, lookup alone, early exit with a fixed draft length,
// the same with lookup (also with lookup rounds of one draft), adaptive early exit, the same with
// lookup; every configuration once per repetition, interleaved, each speed the median of its
// per-repetition ratios to plain decoding.
// Greedy output must equal plain output in every generation (the run stops if not).
//   node bench/run.mjs fusion [stories|brown] [repetitions] [tokens]
import { join } from 'node:path';
import { fitDraftHead, loadModel, type GenerateOptions } from 'layerskip';
import { BROWN_PROMPTS, ROOT, STORIES } from './models.js';
import { median } from './stats.js';

const which = process.argv[2] ?? 'stories';
if (which !== 'stories' && which !== 'brown') throw new Error(`unknown model ${which}; one of stories, brown`);
const repetitions = Number(process.argv[3] ?? 9);
const tokens = Number(process.argv[4] ?? 256);
const stories = which === 'stories';
const model = await loadModel(stories ? STORIES : join(ROOT, 'models', 'layerskip-brown-12L.Q8_0.gguf'));
const ctx = await model.createContext({ threads: 1, contextSize: 1024 });
// stories260K's exits agree little without a fitted head (section 10); brown's is a LayerSkip model
const [exitLayer, draftTokens] = stories ? [3, 2] : [6, 3];
const draftHead = stories ? await fitDraftHead(ctx, { exitLayer, selfGenerate: { positions: 4000 } }) : undefined;
const prompts = stories
  ? ['Once upon a time', 'Lily and Ben were', 'One day, a little bird', 'Tom had a big red ball', 'The sun was shining and', 'Sara wanted to play']
  : BROWN_PROMPTS;
const fixed = { exitLayer, draftTokens, draftHead };
const adaptive = { exitLayer, draftTokens: 4, adaptive: true, draftHead };
const configs: Record<string, GenerateOptions> = {
  plain: {},
  lookup: { lookup: true },
  'E fixed': { selfSpeculative: fixed },
  'E fixed + lookup': { selfSpeculative: fixed, lookup: true },
  // lookup rounds of one draft: one graph shape beside early exit's, and on stories260K the one length
  // whose rounds beat early-exit rounds at every match length (BENCHMARKS.md section 16, "Stop 47")
  'E fixed + lookup (1 draft)': { selfSpeculative: fixed, lookup: { maxTokens: 1 } },
  adaptive: { selfSpeculative: adaptive },
  'adaptive + lookup': { selfSpeculative: adaptive, lookup: true },
};
const names = Object.keys(configs);
const range = (xs: number[]) => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`;

console.log(
  `${which}, E=${exitLayer} d=${draftTokens}${draftHead ? ' + head' : ''}, ${tokens} tokens, ${repetitions} interleaved repetitions, 1 thread: speed / plain`,
);
console.log(`| prompt | ${names.slice(1).join(' | ')} | fusion / E fixed | fusion (1 draft) / E fixed | fusion / adaptive |`);
console.log(
  `|---|${names
    .slice(1)
    .map(() => '---:|')
    .join('')}---:|---:|---:|`,
);
const perPrompt: Record<string, number[]> = Object.fromEntries([...names, 'fusion fixed', 'fusion 1', 'fusion adaptive'].map((n) => [n, []]));
for (const prompt of prompts) {
  const ms: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  let reference = '';
  for (let rep = 0; rep < repetitions; rep++) {
    for (const name of names) {
      ctx.clear();
      const r = await ctx.generate(prompt, { maxTokens: tokens, ...configs[name] }).result;
      if (name === 'plain') reference = r.tokens.join();
      else if (r.tokens.join() !== reference) throw new Error(`${name} changed the greedy output of "${prompt}"`);
      ms[name].push(r.timings.generateMs);
    }
  }
  const ratio = (fast: string, slow: string) => median(ms[fast].map((v, i) => ms[slow][i] / v));
  const row = names.slice(1).map((n) => ratio(n, 'plain'));
  names.slice(1).forEach((n, i) => perPrompt[n].push(row[i]));
  perPrompt['fusion fixed'].push(ratio('E fixed + lookup', 'E fixed'));
  perPrompt['fusion 1'].push(ratio('E fixed + lookup (1 draft)', 'E fixed'));
  perPrompt['fusion adaptive'].push(ratio('adaptive + lookup', 'adaptive'));
  console.log(
    `| ${prompt} | ${row.map((x) => `${x.toFixed(2)}x`).join(' | ')} | ${perPrompt['fusion fixed'].at(-1)!.toFixed(2)} | ${perPrompt['fusion 1'].at(-1)!.toFixed(2)} | ${perPrompt['fusion adaptive'].at(-1)!.toFixed(2)} |`,
  );
}
const cells = [...names.slice(1), 'fusion fixed', 'fusion 1', 'fusion adaptive'].map((n) => `${median(perPrompt[n]).toFixed(2)} (${range(perPrompt[n])})`);
console.log(`| median over prompts (range) | ${cells.join(' | ')} |`);
ctx.dispose();
model.dispose();
