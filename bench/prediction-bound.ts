// What free drafts can yield at most on this machine: `prediction` set to the plain greedy output of
// the same prompt, so every draft is accepted and each round costs only its verification. The
// speed against plain decoding is the ceiling of lookup and predictions on a task that copies
// everything; a task that copies a share c of its tokens runs at most 1 / ((1 - c) + c / ceiling)
// times plain (BENCHMARKS.md section 16, "Stop 38"). Plain and predicted generations alternate;
// greedy output is checked equal. The prompts: four openings of the brown model's text, or a task
// of the lookup benchmark on its 15 held-out documents (bench/lookup-tasks.ts; `max prompt` as the
// benchmark's model case has it: 120 for the copy models).
//   node bench/run.mjs prediction-bound [model.gguf] [threads] [repetitions] [tokens] [max draft tokens] [brown|quote|chat|edit|free] [max prompt]
import { join } from 'node:path';
import { loadModel } from 'layerskip';
import { taskName, taskPrompts } from './lookup-tasks.js';
import { BROWN_PROMPTS, ROOT } from './models.js';
import { median } from './stats.js';

const path = process.argv[2] ?? join(ROOT, 'models', 'layerskip-brown-12L.Q8_0.gguf');
const threads = Number(process.argv[3] ?? 1);
const repetitions = Number(process.argv[4] ?? 21);
const tokens = Number(process.argv[5] ?? 128);
const maxDraft = Number(process.argv[6] ?? 16);
const promptSet = process.argv[7] ?? 'brown';
const maxPrompt = Number(process.argv[8] ?? 120);
const task = promptSet === 'brown' ? null : taskName(promptSet);

const model = await loadModel(path);
const prompts = task ? taskPrompts(model, maxPrompt, task) : BROWN_PROMPTS.slice(0, 4);
const ctx = await model.createContext({ threads, contextSize: 1024 });
const outputs: number[][] = [];
for (const prompt of prompts) {
  ctx.clear();
  outputs.push((await ctx.generate(prompt, { maxTokens: tokens }).result).tokens);
}
const ratios: number[] = [];
let plainMs = 0;
let predictedMs = 0;
let lengths: number[] = [];
for (let rep = 0; rep < repetitions; rep++) {
  for (let i = 0; i < prompts.length; i++) {
    ctx.clear();
    const plain = await ctx.generate(prompts[i], { maxTokens: tokens }).result;
    ctx.clear();
    const predicted = await ctx.generate(prompts[i], { maxTokens: tokens, prediction: outputs[i], lookup: { maxTokens: maxDraft } }).result;
    if (predicted.tokens.join() !== plain.tokens.join()) throw new Error(`the prediction changed the greedy output of "${prompts[i]}"`);
    ratios.push(plain.timings.generateMs / predicted.timings.generateMs);
    plainMs += plain.timings.generateMs;
    predictedMs += predicted.timings.generateMs;
    lengths = predicted.speculative?.draftLengths ?? [];
  }
}
console.log(
  `${path}, ${threads} thread(s), ${tokens} tokens, drafts of up to ${maxDraft}, prompts: ${promptSet}, ${repetitions} x ${prompts.length} alternating generations`,
);
console.log(`prediction = output: speed / plain, median of ratios ${median(ratios).toFixed(2)}, summed times ${(plainMs / predictedMs).toFixed(2)}`);
console.log(`rounds of the last generation (drafts each): ${lengths.join(', ')}`);
ctx.dispose();
model.dispose();
