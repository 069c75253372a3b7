// The trained models' self-speculative speed at a few chosen settings, plain runs interleaved with
// every setting over several repetitions (medians: this 2-vCPU machine drifts by tens of percent
// within a minute). Greedy output is checked equal to plain.
//
//   node bench/run.mjs train-speed-focus [models] [repetitions]   (default scratch-base,scratch-ls and 5)
import { join } from 'node:path';
import { loadModel, type SelfSpeculativeOptions } from 'layerskip';

const dir = join('models-generated', 'train');
const names = (process.argv[2] ?? 'scratch-base,scratch-ls').split(',');
const reps = Number(process.argv[3] ?? 5);
const PROMPTS = ['The committee said that the new law would', 'She looked at the old house and', 'In the morning, the men went to the', 'It was not until the end of the year that'];
const SETTINGS: SelfSpeculativeOptions[] = [
  { exitLayer: 3, draftTokens: 1 }, { exitLayer: 4, draftTokens: 2 }, { exitLayer: 6, draftTokens: 3 },
  { exitLayer: 3, draftTokens: 1, lookup: true }, { exitLayer: 4, draftTokens: 2, lookup: true }, { exitLayer: 6, draftTokens: 3, lookup: true },
];
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log('model         threads  setting                  speedup (median of per-rep ratios)  acceptance  lookup acc.  tokens/round');
for (const name of names) {
  for (const threads of [1, 2]) {
    const model = await loadModel(join(dir, `${name}.Q8_0.gguf`));
    const ctx = await model.createContext({ contextSize: 1024, threads, batchThreads: threads });
    const run = async (spec?: SelfSpeculativeOptions) => {
      let tokens = 0, ms = 0, drafted = 0, accepted = 0, ld = 0, la = 0, rounds = 0;
      const texts: string[] = [];
      for (const p of PROMPTS) {
        ctx.clear();
        const r = await ctx.generate(p, { maxTokens: 128, selfSpeculative: spec }).result;
        tokens += r.timings.generatedTokens;
        ms += r.timings.generateMs;
        drafted += r.speculative?.drafted ?? 0;
        accepted += r.speculative?.accepted ?? 0;
        ld += r.speculative?.lookup?.drafted ?? 0;
        la += r.speculative?.lookup?.accepted ?? 0;
        rounds += r.speculative?.rounds ?? 0;
        texts.push(r.text);
      }
      return { tps: (tokens / ms) * 1000, acc: drafted ? accepted / drafted : NaN, lacc: ld ? la / ld : NaN, perRound: rounds ? tokens / rounds : 1, texts };
    };
    const plainText = (await run()).texts;
    for (const spec of SETTINGS) {
      const ratios: number[] = [];
      let last = await run(spec);
      for (let r = 0; r < reps; r++) {
        const a = await run();
        const s = await run(spec);
        const b = await run();
        ratios.push(s.tps / ((a.tps + b.tps) / 2));
        last = s;
      }
      if (last.texts.some((t, i) => t !== plainText[i])) throw new Error(`greedy output differs from plain: ${name} ${JSON.stringify(spec)}`);
      const label = `E=${spec.exitLayer} d=${spec.draftTokens}${spec.lookup ? ' lookup' : ''}`;
      console.log(`${name.padEnd(13)} ${String(threads).padStart(7)}  ${label.padEnd(23)}  ${median(ratios).toFixed(2)}x (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`.padEnd(80) +
        `${last.acc.toFixed(2).padStart(10)}  ${Number.isNaN(last.lacc) ? '         -' : last.lacc.toFixed(2).padStart(11)}  ${last.perRound.toFixed(2).padStart(12)}`);
    }
    model.dispose();
  }
}
