// What free drafts can yield at most on this machine: `prediction` set to the plain greedy output of
// the same prompt, so every draft is accepted and each round costs only its verification. The
// speed against plain decoding is the ceiling of lookup and predictions on a task that copies
// everything; a task that copies a share c of its tokens runs at most 1 / ((1 - c) + c / ceiling)
// times plain (BENCHMARKS.md section 16, "Stop 38"). Plain and predicted generations alternate;
// greedy output is checked equal. The predicted generations run in the addon's loop (addon-run.ts)
// and, as before stop 45, in the TypeScript loop (the internal freeDraftChoice 'in-turn'); each
// repetition rotates the three. `edit every`: the prediction with every n-th token changed (0: none),
// the re-alignment after an edit. The prompts: four openings of the brown model's text, or a task
// of the lookup benchmark on its 15 held-out documents (bench/lookup-tasks.ts; `max prompt` as the
// benchmark's model case has it: 120 for the copy models). `E,d`: early exit at layer E with d
// drafts a round in both predicted configurations (the addon's loop then takes early-exit rounds too).
//   node bench/run.mjs prediction-bound [model.gguf] [threads] [repetitions] [tokens] [max draft tokens] [brown|quote|chat|edit|free] [max prompt] [edit every] [E,d]
import { join } from 'node:path';
import { type GenerateOptions, loadModel } from 'layerskip';
import { taskName, taskPrompts } from './lookup-tasks.js';
import { BROWN_PROMPTS, ROOT, withFreeDraftChoice } from './models.js';
import { median } from './stats.js';

const path = process.argv[2] ?? join(ROOT, 'models', 'layerskip-brown-12L.Q8_0.gguf');
const threads = Number(process.argv[3] ?? 1);
const repetitions = Number(process.argv[4] ?? 21);
const tokens = Number(process.argv[5] ?? 128);
const maxDraft = Number(process.argv[6] ?? 16);
const promptSet = process.argv[7] ?? 'brown';
const maxPrompt = Number(process.argv[8] ?? 120);
const editEvery = Number(process.argv[9] ?? 0);
const [exitLayer, draftTokens] = (process.argv[10] ?? '').split(',').map(Number);
const early = exitLayer > 0 ? { selfSpeculative: { exitLayer, draftTokens: draftTokens || 3 } } : {};
const task = promptSet === 'brown' ? null : taskName(promptSet);

const model = await loadModel(path);
const prompts = task ? taskPrompts(model, maxPrompt, task) : BROWN_PROMPTS.slice(0, 4);
const ctx = await model.createContext({ threads, contextSize: 1024 });
const outputs: number[][] = [];
for (const prompt of prompts) {
  ctx.clear();
  outputs.push((await ctx.generate(prompt, { maxTokens: tokens }).result).tokens);
}
// (an edit: another token of the vocabulary, as an edited word tokenizes differently)
const predictions = outputs.map((out) => out.map((t, j) => (editEvery > 0 && j % editEvery === editEvery - 1 ? (t + 1) % model.info.vocabularySize : t)));
const configs: [string, (i: number) => GenerateOptions][] = [
  ['plain', () => ({})],
  ['addon loop', (i) => ({ prediction: predictions[i], lookup: { maxTokens: maxDraft }, ...early })],
  ['TypeScript loop', (i) => withFreeDraftChoice({ prediction: predictions[i], lookup: { maxTokens: maxDraft }, freeDraftChoice: 'in-turn', ...early })],
];
const ms = configs.map(() => [] as number[]);
let lengths: number[] = [];
for (let rep = 0; rep < repetitions; rep++) {
  for (let i = 0; i < prompts.length; i++) {
    for (let k = 0; k < configs.length; k++) {
      const c = (k + rep + i) % configs.length;
      ctx.clear();
      const r = await ctx.generate(prompts[i], { maxTokens: tokens, ...configs[c][1](i) }).result;
      if (r.tokens.join() !== outputs[i].join()) throw new Error(`${configs[c][0]} changed the greedy output of "${prompts[i]}"`);
      ms[c].push(r.timings.generateMs);
      if (c === 1) lengths = r.speculative?.draftLengths ?? [];
    }
  }
}
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
console.log(
  `${path}, ${threads} thread(s), ${tokens} tokens, drafts of up to ${maxDraft}, prompts: ${promptSet}, prediction ${editEvery > 0 ? `= output with every ${editEvery}th token changed` : '= output'}${exitLayer > 0 ? `, E=${exitLayer} d=${draftTokens || 3}` : ''}, ${repetitions} x ${prompts.length} x ${configs.length} rotated generations`,
);
for (let c = 1; c < configs.length; c++) {
  const ratios = ms[c].map((v, i) => ms[0][i] / v);
  console.log(`${configs[c][0]}: speed / plain, median of ratios ${median(ratios).toFixed(2)}, summed times ${(sum(ms[0]) / sum(ms[c])).toFixed(2)}`);
}
console.log(`rounds of the last addon-loop generation (drafts each; 0: plain steps): ${lengths.join(', ')}`);
ctx.dispose();
model.dispose();
