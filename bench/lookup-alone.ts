// Our lookup against our plain decoding alone, without the peers: plain and lookup generations
// alternate in one process on the lookup benchmark's tasks (bench/lookup-tasks.ts, 15 held-out
// documents), a context each. For thread counts the peer run cannot measure on a small VM: at 2
// threads on 2 vCPUs the peers' processes and spinning threads spread its ratios over 0.1-4x
// (BENCHMARKS.md section 16, "Stop 43"). Lookup runs in the addon's loop (lib/decoding/addon-run.ts)
// and, as before it, in the TypeScript loop (the internal freeDraftChoice 'in-turn'). Greedy output
// is checked equal.
//   node bench/run.mjs lookup-alone [model.gguf] [threads] [repetitions] [tasks] [tokens] [max prompt]
import { join } from 'node:path';
import { type Context, type GenerateOptions, loadModel } from 'layerskip';
import { taskName, taskPrompts } from './lookup-tasks.js';
import { ROOT, withFreeDraftChoice } from './models.js';
import { median } from './stats.js';

const path = process.argv[2] ?? join(ROOT, 'models-generated', 'train', 'copy-frame.Q8_0.gguf');
const threads = Number(process.argv[3] ?? 2);
const repetitions = Number(process.argv[4] ?? 3);
const taskNames = (process.argv[5] ?? 'quote,edit').split(',').map(taskName);
const tokens = Number(process.argv[6] ?? 64);
const maxPrompt = Number(process.argv[7] ?? 120);

const model = await loadModel(path);
const configs: { name: string; options: GenerateOptions; ctx: Context }[] = [
  { name: 'plain', options: {}, ctx: await model.createContext({ threads, contextSize: 1024 }) },
  { name: 'lookup', options: { lookup: true }, ctx: await model.createContext({ threads, contextSize: 1024 }) },
  {
    name: 'lookup, TypeScript loop',
    options: withFreeDraftChoice({ lookup: true, freeDraftChoice: 'in-turn' }),
    ctx: await model.createContext({ threads, contextSize: 1024 }),
  },
];
console.log(`${path}, ${threads} thread(s), ${tokens} tokens, ${repetitions} x 15 documents, configurations alternating`);
console.log(
  `| task | plain (ms a token) | ${configs
    .slice(1)
    .map((c) => `${c.name}: ms a token, speed / plain (median of ratios / summed times)`)
    .join(' | ')} |`,
);
console.log(
  `|---|---:|${configs
    .slice(1)
    .map(() => '---:|')
    .join('')}`,
);
for (const name of taskNames) {
  const prompts = taskPrompts(model, maxPrompt, name);
  const ms = configs.map(() => [] as number[]);
  let generated = 0;
  for (let rep = 0; rep < repetitions; rep++) {
    for (const [d, prompt] of prompts.entries()) {
      // each repetition and document starts one configuration later, so none always follows another
      const out: string[] = [];
      for (let k = 0; k < configs.length; k++) {
        const i = (k + rep + d) % configs.length;
        const c = configs[i];
        c.ctx.clear();
        const r = await c.ctx.generate(prompt, { maxTokens: tokens, ...c.options }).result;
        ms[i].push(r.timings.generateMs);
        out[i] = r.tokens.join();
        if (i === 0) generated += r.tokens.length;
      }
      const differs = configs.findIndex((_, i) => out[i] !== out[0]);
      if (differs > 0) throw new Error(`${configs[differs].name} changed the greedy output of ${name}, document ${d}`);
    }
  }
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const cells = configs.slice(1).map((_, j) => {
    const i = j + 1;
    const ratios = ms[0].map((p, q) => p / ms[i][q]);
    return `${(sum(ms[i]) / generated).toFixed(3)}, ${median(ratios).toFixed(2)}x / ${(sum(ms[0]) / sum(ms[i])).toFixed(2)}x`;
  });
  console.log(`| ${name} | ${(sum(ms[0]) / generated).toFixed(3)} | ${cells.join(' | ')} |`);
}
for (const c of configs) c.ctx.dispose();
model.dispose();
