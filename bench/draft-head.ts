// What a fitted draft head buys, side by side in one run (tinybench, tasks interleaved per
// iteration), and whether a self-speculative round costs what its primitives predict.
//
//   node bench/run.mjs draft-head stories   stories260K, 1 thread: plain / E=3 d=3 without a head /
//                                           with a head fitted on the model's own generations (also E=4)
//   node bench/run.mjs draft-head 1b-late   1B-shape Q8_0 "late", 2 threads: plain / E=4 without a head /
//                                           with a 32k-token draft vocabulary (chosen by calibration)
//   node bench/run.mjs draft-head loop      100M F16 "late", 2 threads: a round's measured cost against
//                                           draft steps + hidden-only step + verification measured alone
import { Bench } from 'tinybench';
import { DraftHead, fitDraftHead, loadModel } from 'layerskip';
import { benchModel, SHAPE_100M, SHAPE_1B, STORIES } from './models.js';
import { cachedHead, speedTable } from './speed-table.js';

const mode = process.argv[2] ?? 'stories';

if (mode === 'stories') {
  const model = await loadModel(STORIES);
  const ctx = await model.createContext({ threads: 1 });
  const h3 = await cachedHead(ctx, 'stories260K-E3', () => fitDraftHead(ctx, { exitLayer: 3 }));
  const h4 = await cachedHead(ctx, 'stories260K-E4', () => fitDraftHead(ctx, { exitLayer: 4 }));
  await speedTable(model, ctx, 'Once upon a time', 256, [
    ['plain', undefined],
    ['E=3 d=3', { exitLayer: 3, draftTokens: 3 }],
    ['E=3 d=3 + fitted head', { exitLayer: 3, draftTokens: 3, draftHead: h3 }],
    ['E=4 d=4', { exitLayer: 4, draftTokens: 4 }],
    ['E=4 d=4 + fitted head', { exitLayer: 4, draftTokens: 4, draftHead: h4 }],
  ]);
  model.dispose();
} else if (mode === '1b-late') {
  const model = await loadModel(await benchModel(SHAPE_1B, 'late', 'Q8_0'));
  const ctx = await model.createContext({ contextSize: 1024, threads: 2 });
  const vocab = await cachedHead(ctx, '1b-late-q8_0-E4-vocab32k', () =>
    fitDraftHead(ctx, { exitLayer: 4, adapter: false, vocabulary: 32000, selfGenerate: { positions: 1024, tokensPerSequence: 128 } }),
  );
  // A random model's greedy tokens are spread evenly over its 128k vocabulary (no Zipf law), so a
  // vocabulary from other text covers about a quarter of them. The second head isolates the cost
  // side: 32k tokens that include every token the plain run emits (in-sample), which is the
  // coverage a frequency-ranked 32k vocabulary has on real text.
  const prompt = 'Once upon a time';
  const maxTokens = 48;
  const emitted = (await ctx.generate(prompt, { maxTokens }).result).tokens;
  const ids = new Set(emitted);
  for (let t = 0; ids.size < 32000; t++) ids.add(t);
  const covering = new DraftHead({ ...vocab, tokenIds: Int32Array.from([...ids].sort((a, b) => a - b)), stats: null });
  await speedTable(model, ctx, prompt, maxTokens, [
    ['plain', undefined],
    ['E=4 d=3', { exitLayer: 4, draftTokens: 3 }],
    ['E=4 d=3 + 32k vocabulary covering the output', { exitLayer: 4, draftTokens: 3, draftHead: covering }],
    ['E=4 d=3 + 32k vocabulary from calibration', { exitLayer: 4, draftTokens: 3, draftHead: vocab }],
    ['E=4 d=5', { exitLayer: 4, draftTokens: 5 }],
    ['E=4 d=5 + 32k vocabulary covering the output', { exitLayer: 4, draftTokens: 5, draftHead: covering }],
  ]);
  model.dispose();
} else if (mode === 'loop') {
  // a round at (E, d) is d draft steps, one hidden-only step for the last draft (its bonus row),
  // and a verification of d + 1 rows; measure each alone, then the loop, in one process
  const model = await loadModel(await benchModel(SHAPE_100M, 'late', 'F16'));
  const ctx = await model.createContext({ contextSize: 1024, threads: 2 });
  const N = model.layerCount;
  const prefix = model.tokenize('Once upon a time');
  // the primitives and the loop alternate three times; each figure is its fastest repetition
  // (noise on a shared machine only ever adds time)
  for (const [E, d] of [
    [3, 2],
    [3, 4],
    [6, 3],
  ] as const) {
    const best = { draft: Infinity, hidden: Infinity, verify: Infinity, round: Infinity };
    let rounds = 0;
    for (let rep = 0; rep < 3; rep++) {
      ctx.clear();
      await ctx.decodeLayers({ tokens: prefix });
      const P = prefix.length;
      const bench = new Bench({ iterations: 20, warmupIterations: 3, time: 0, warmupTime: 0 });
      bench
        .add(
          'draft step',
          async () => {
            await ctx.decodeLayers({ tokens: [7], layers: [0, E] });
          },
          { beforeEach: () => ctx.removeFrom(P) },
        )
        .add(
          'hidden-only step',
          async () => {
            await ctx.decodeLayers({ tokens: [7], layers: [0, E], outputs: 'none' });
          },
          { beforeEach: () => ctx.removeFrom(P) },
        )
        .add(
          'verify',
          async () => {
            await ctx.decodeLayers({ layers: [E, N], outputs: 'all' });
          },
          {
            beforeEach: async () => {
              ctx.removeFrom(P);
              await ctx.decodeLayers({ tokens: Array.from({ length: d + 1 }, (_, i) => 7 + i), layers: [0, E], outputs: 'none' });
            },
          },
        );
      await bench.run();
      const ms = (n: string) => (bench.getTask(n)!.result as { latency: { mean: number } }).latency.mean;
      best.draft = Math.min(best.draft, ms('draft step'));
      best.hidden = Math.min(best.hidden, ms('hidden-only step'));
      best.verify = Math.min(best.verify, ms('verify'));
      // full-length rounds only: d drafts, a hidden-only step and a verification of d + 1 rows
      const r = await ctx.generate(prefix, { maxTokens: 64, selfSpeculative: { exitLayer: E, draftTokens: d } }).result;
      const s = r.speculative!;
      rounds += s.rounds;
      const full = s.draftLengths.filter((k) => k === d).length;
      if (full === s.rounds) best.round = Math.min(best.round, r.timings.generateMs / s.rounds);
      else best.round = Math.min(best.round, r.timings.generateMs / (s.rounds + (s.drafted - full * d) / d - (s.rounds - full)));
    }
    const predicted = d * best.draft + best.hidden + best.verify;
    console.log(
      `E=${E} d=${d}: draft ${best.draft.toFixed(2)} ms, hidden-only ${best.hidden.toFixed(2)} ms, verify ${d + 1} rows ${best.verify.toFixed(2)} ms -> predicted round ${predicted.toFixed(2)} ms; measured ${best.round.toFixed(2)} ms per round (${rounds} rounds): ${((predicted / best.round) * 100).toFixed(0)}% of the predicted speed`,
    );
  }
  model.dispose();
} else {
  console.error('usage: node bench/run.mjs draft-head stories|1b-late|loop');
  process.exit(2);
}
