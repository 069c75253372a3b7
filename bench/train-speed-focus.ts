// The trained models' self-speculative speed at a few chosen settings, plain runs interleaved with
// every setting over several repetitions (medians: this 2-vCPU machine drifts by tens of percent
// within a minute). Greedy output is checked equal to plain.
//
//   node bench/run.mjs train-speed-focus [models] [repetitions]   (default scratch-base,scratch-ls and 5)
import { join } from 'node:path';
import { loadModel, type SelfSpeculativeOptions } from 'layerskip';
import { runPrompts } from './trained-runs.js';
import { median } from './stats.js';

const dir = join('models-generated', 'train');
const names = (process.argv[2] ?? 'scratch-base,scratch-ls').split(',');
const reps = Number(process.argv[3] ?? 5);
const PROMPTS = [
  'The committee said that the new law would',
  'She looked at the old house and',
  'In the morning, the men went to the',
  'It was not until the end of the year that',
];
const SETTINGS: SelfSpeculativeOptions[] = [
  { exitLayer: 3, draftTokens: 1 },
  { exitLayer: 4, draftTokens: 2 },
  { exitLayer: 6, draftTokens: 3 },
  { exitLayer: 3, draftTokens: 1, lookup: true },
  { exitLayer: 4, draftTokens: 2, lookup: true },
  { exitLayer: 6, draftTokens: 3, lookup: true },
];
console.log('model         threads  setting                  speedup (median of per-rep ratios)  acceptance  lookup acc.  tokens/round');
for (const name of names) {
  for (const threads of [1, 2]) {
    const model = await loadModel(join(dir, `${name}.Q8_0.gguf`));
    const ctx = await model.createContext({ contextSize: 1024, threads, batchThreads: threads });
    const run = (spec?: SelfSpeculativeOptions) => runPrompts(ctx, PROMPTS, spec);
    const plainText = (await run()).texts;
    for (const spec of SETTINGS) {
      const ratios: number[] = [];
      let last = await run(spec);
      for (let r = 0; r < reps; r++) {
        const a = await run();
        const s = await run(spec);
        const b = await run();
        ratios.push(s.tokensPerSecond / ((a.tokensPerSecond + b.tokensPerSecond) / 2));
        last = s;
      }
      if (last.texts.some((t, i) => t !== plainText[i])) throw new Error(`greedy output differs from plain: ${name} ${JSON.stringify(spec)}`);
      const label = `E=${spec.exitLayer} d=${spec.draftTokens}${spec.lookup ? ' lookup' : ''}`;
      console.log(
        `${name.padEnd(13)} ${String(threads).padStart(7)}  ${label.padEnd(23)}  ${median(ratios).toFixed(2)}x (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`.padEnd(
          80,
        ) +
          `${last.acceptance.toFixed(2).padStart(10)}  ${Number.isNaN(last.lookupAcceptance) ? '         -' : last.lookupAcceptance.toFixed(2).padStart(11)}  ${last.tokensPerRound.toFixed(2).padStart(12)}`,
      );
    }
    model.dispose();
  }
}
