// Self-speculative speed on the trained models (BENCHMARKS.md, "Training"): for each model of the
// training experiment, plain greedy decoding and self-speculative decoding at every (E, d) of a grid,
// measured side by side in one run (lib/tools/sweep.ts interleaves plain runs between exit layers), at 1
// and 2 threads; then the best cells again with context lookup, with a draft head fitted on the model's
// own generations, and with both, each against plain runs interleaved with it.
//
//   node bench/run.mjs train-speed [models] [threads]   models: comma list of files or arm names
//                                                       (default scratch-base,scratch-ls); threads: 1,2
// Prompts are held-out corpus text (the first 24 tokens of test documents); output must equal plain.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DraftHead, fitDraftHead, loadModel, quantizeModel, sweep, type Context, type SelfSpeculativeOptions } from 'layerskip';
import { runPrompts } from './trained-runs.js';

const dir = join('models-generated', 'train');
const names = (process.argv[2] ?? 'scratch-base,scratch-ls').split(',');
const threadList = (process.argv[3] ?? '1,2').split(',').map(Number);
const exitLayers = (process.env.LAYERSKIP_BENCH_EXITS ?? '2,3,4,5,6,8').split(',').map(Number);
const drafts = (process.env.LAYERSKIP_BENCH_DRAFTS ?? '1,2,3,4,6').split(',').map(Number);
const withHeads = process.env.LAYERSKIP_BENCH_HEADS !== '0';

/** Prompts from the held-out token cache written by bench/train.ts. */
async function prompts(ctx: Context): Promise<string[]> {
  const b = readFileSync(join(dir, 'corpus-test.i32'));
  const test = new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  const out: string[] = [];
  // documents start with BOS (id 1); take the first 24 tokens of every 6th document
  let doc = 0;
  for (let i = 0; i < test.length && out.length < 4; i++) {
    if (test[i] !== 1) continue;
    if (doc++ % 6 === 0) out.push(ctx.model.detokenize(Array.from(test.subarray(i + 1, i + 25))));
  }
  return out;
}

const results: Record<string, unknown> = {};
mkdirSync(join('bench', 'results'), { recursive: true });
for (const name of names) {
  const f32 = existsSync(name) ? name : join(dir, `${name}.gguf`);
  const q8 = f32.replace(/\.gguf$/, '.Q8_0.gguf');
  await quantizeModel(f32, q8, 'Q8_0');
  for (const threads of threadList) {
    const model = await loadModel(q8);
    const ctx = await model.createContext({ contextSize: 1024, threads, batchThreads: threads });
    const ps = await prompts(ctx);
    const label = `${name} t${threads}`;
    const r = await sweep(ctx, { exitLayers, draftLengths: drafts, prompts: ps, maxTokens: 128, repeats: 2 });
    const top = [...r.cells].sort((a, b) => b.speedup - a.speedup).slice(0, 3);
    console.log(
      `${label}: plain ${r.plainTokensPerSecond.toFixed(0)} tok/s; best ${top.map((c) => `E=${c.exitLayer} d=${c.draftTokens} ${c.speedup.toFixed(2)}x (acc ${c.acceptance.toFixed(2)}, ${c.tokensPerRound.toFixed(2)}/round)`).join('; ')}`,
    );
    const row: Record<string, unknown> = { plain: r.plainTokensPerSecond, cells: r.cells };
    // the best cells again, with context lookup and with a draft head fitted on the model's own generations
    const specs: SelfSpeculativeOptions[] = [];
    for (const c of top) {
      specs.push({ exitLayer: c.exitLayer, draftTokens: c.draftTokens }, { exitLayer: c.exitLayer, draftTokens: c.draftTokens, lookup: true });
      if (withHeads) {
        const file = `${q8}.head-E${c.exitLayer}.gguf`;
        if (!existsSync(file)) (await fitDraftHead(ctx, { exitLayer: c.exitLayer, threads })).save(file);
        const head = DraftHead.load(file);
        specs.push(
          { exitLayer: c.exitLayer, draftTokens: c.draftTokens, draftHead: head },
          { exitLayer: c.exitLayer, draftTokens: c.draftTokens, draftHead: head, lookup: true },
        );
        console.log(`  head E=${c.exitLayer}: held-out agreement ${head.stats?.agreementBefore.toFixed(2)} -> ${head.stats?.agreementAfter.toFixed(2)}`);
      }
    }
    const cells = await compare(ctx, specs, ps);
    for (const c of cells) {
      console.log(
        `  E=${c.spec.exitLayer} d=${c.spec.draftTokens}${c.spec.draftHead ? ' head' : ''}${c.spec.lookup ? ' lookup' : ''}: ${c.speedup.toFixed(2)}x (plain ${c.plain.toFixed(0)} tok/s; acceptance ${c.acceptance.toFixed(2)}${c.spec.lookup ? `, lookup ${c.lookupAcceptance.toFixed(2)}` : ''}; ${c.tokensPerRound.toFixed(2)} tokens/round)`,
      );
    }
    row.compared = cells;
    results[label] = row;
    model.dispose();
  }
}
writeFileSync(join('bench', 'results', 'train-speed.json'), JSON.stringify(results, null, 1));

/**
 * Each spec against plain runs interleaved with it (plain, spec, spec, plain; the faster spec run
 * and the mean plain run), greedy output checked equal to plain.
 */
async function compare(ctx: Context, specs: SelfSpeculativeOptions[], ps: string[]) {
  const run = (spec?: SelfSpeculativeOptions) => runPrompts(ctx, ps, spec);
  const cells = [];
  for (const spec of specs) {
    const a = await run();
    const s1 = await run(spec);
    const s2 = await run(spec);
    const b = await run();
    const plain = (a.tokensPerSecond + b.tokensPerSecond) / 2;
    const s = s1.tokensPerSecond > s2.tokensPerSecond ? s1 : s2;
    if (s.texts.some((t, i) => t !== a.texts[i])) throw new Error(`greedy output differs from plain for ${JSON.stringify(spec)}`);
    cells.push({
      spec: { ...spec, draftHead: spec.draftHead ? 'fitted' : undefined },
      tokensPerSecond: s.tokensPerSecond,
      plain,
      speedup: s.tokensPerSecond / plain,
      acceptance: s.acceptance,
      lookupAcceptance: s.lookupAcceptance,
      tokensPerRound: s.tokensPerRound,
    });
  }
  return cells;
}
