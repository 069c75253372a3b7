// Our lookup against our plain decoding alone, without the peers: plain and lookup generations
// alternate in one process on the lookup benchmark's tasks (bench/lookup-tasks.ts, 15 held-out
// documents), a context each. For thread counts the peer run cannot measure on a small VM: at 2
// threads on 2 vCPUs the peers' processes and spinning threads spread its ratios over 0.1-4x
// (BENCHMARKS.md section 16, "Stop 43"). Greedy output is checked equal.
//   node bench/run.mjs lookup-alone [model.gguf] [threads] [repetitions] [tasks] [tokens] [max prompt]
import { join } from 'node:path';
import { loadModel } from 'layerskip';
import { taskName, taskPrompts } from './lookup-tasks.js';
import { ROOT } from './models.js';
import { median } from './stats.js';

const path = process.argv[2] ?? join(ROOT, 'models-generated', 'train', 'copy-frame.Q8_0.gguf');
const threads = Number(process.argv[3] ?? 2);
const repetitions = Number(process.argv[4] ?? 3);
const taskNames = (process.argv[5] ?? 'quote,edit').split(',').map(taskName);
const tokens = Number(process.argv[6] ?? 64);
const maxPrompt = Number(process.argv[7] ?? 120);

const model = await loadModel(path);
const plainCtx = await model.createContext({ threads, contextSize: 1024 });
const lookupCtx = await model.createContext({ threads, contextSize: 1024 });
console.log(`${path}, ${threads} thread(s), ${tokens} tokens, ${repetitions} x 15 documents, plain and lookup alternating`);
console.log('| task | plain (ms a token) | lookup (ms a token) | lookup / plain, median of ratios | summed times |');
console.log('|---|---:|---:|---:|---:|');
for (const name of taskNames) {
  const prompts = taskPrompts(model, maxPrompt, name);
  const ratios: number[] = [];
  let plainMs = 0;
  let lookupMs = 0;
  let generated = 0;
  for (let rep = 0; rep < repetitions; rep++) {
    for (const [d, prompt] of prompts.entries()) {
      // alternate which goes first, so that neither always runs right after the other
      const order = (rep + d) % 2 === 0 ? ['plain', 'lookup'] : ['lookup', 'plain'];
      const ms: Record<string, number> = {};
      const out: Record<string, string> = {};
      for (const which of order) {
        const ctx = which === 'plain' ? plainCtx : lookupCtx;
        ctx.clear();
        const r = await ctx.generate(prompt, { maxTokens: tokens, lookup: which === 'lookup' }).result;
        ms[which] = r.timings.generateMs;
        out[which] = r.tokens.join();
        if (which === 'plain') generated += r.tokens.length;
      }
      if (out.plain !== out.lookup) throw new Error(`lookup changed the greedy output of ${name}, document ${d}`);
      ratios.push(ms.plain / ms.lookup);
      plainMs += ms.plain;
      lookupMs += ms.lookup;
    }
  }
  console.log(
    `| ${name} | ${(plainMs / generated).toFixed(3)} | ${(lookupMs / generated).toFixed(3)} | ${median(ratios).toFixed(2)}x | ${(plainMs / lookupMs).toFixed(2)}x |`,
  );
}
plainCtx.dispose();
lookupCtx.dispose();
model.dispose();
