// Per-call costs of the layer-range primitives, as fractions of one full single-token decode,
// measured side by side in one run (tinybench): an early-exit step at E (with and without the LM
// head), a verification of k tokens from cached layer-E hidden states, and a full decode of k tokens
// (what the 'full' verification mode runs), and early-exit steps with a draft head: a 32k-token
// draft vocabulary alone, and with an exit adapter as well.
//   node bench/run.mjs costs [100m|1b] [threads] [Q8_0|Q4_K_M|F16]
import { Bench } from 'tinybench';
import { DraftHead, loadModel, type QuantizationType } from 'layerskip';
import { benchModel, SHAPE_100M, SHAPE_1B } from './models.js';

const which = process.argv[2] === '1b' ? SHAPE_1B : SHAPE_100M;
const threads = Number(process.argv[3] ?? 2);
const type = (process.argv[4] ?? 'Q8_0') as QuantizationType;
const path = await benchModel(which, 'plain', type);
const model = await loadModel(path);
const ctx = await model.createContext({ contextSize: 512, threads });
const N = model.layerCount;
const E = N / 4;
const k = 6;
const prefix = Array.from({ length: 16 }, (_, i) => 100 + i);
await ctx.decodeLayers({ tokens: prefix });
const P = prefix.length;
// draft heads: the cost does not depend on which tokens or weights, only on their counts
const DRAFT_VOCAB = Math.min(32000, model.info.vocabularySize);
const D = model.info.embeddingSize;
const identity = new Float32Array(D * D);
for (let i = 0; i < D; i++) identity[i * D + i] = 1;
const headParts = { exitLayer: E, embeddingSize: D, vocabularySize: model.info.vocabularySize, baseModel: model.identity, bias: null, stats: null };
const vocabHead = new DraftHead({ ...headParts, adapter: null, tokenIds: Int32Array.from({ length: DRAFT_VOCAB }, (_, i) => i) });
const fullHead = new DraftHead({ ...vocabHead, adapter: identity, bias: new Float32Array(D) });
const iterations = which === SHAPE_1B ? 20 : 40;
const bench = new Bench({ iterations, warmupIterations: 2, time: 0, warmupTime: 0 });
const reset = () => ctx.removeFrom(P);
bench
  .add(
    'full decode, 1 token',
    async () => {
      await ctx.decodeLayers({ tokens: [7] });
    },
    { beforeEach: reset },
  )
  .add(
    `early exit E=${E}, 1 token (with LM head)`,
    async () => {
      await ctx.decodeLayers({ tokens: [7], layers: [0, E] });
    },
    { beforeEach: reset },
  )
  .add(
    `early exit E=${E}, 1 token (no output)`,
    async () => {
      await ctx.decodeLayers({ tokens: [7], layers: [0, E], outputs: 'none' });
    },
    { beforeEach: reset },
  )
  .add(
    `early exit E=${E}, 1 token, ${DRAFT_VOCAB}-token draft vocabulary`,
    async () => {
      await ctx.decodeLayers({ tokens: [7], layers: [0, E] });
    },
    {
      beforeAll: async () => {
        await ctx.useDraftHead(vocabHead);
      }, // installing reserves the scheduler once
      beforeEach: reset,
      afterAll: async () => {
        await ctx.useDraftHead(null);
      },
    },
  )
  .add(
    `early exit E=${E}, 1 token, ${DRAFT_VOCAB}-token draft vocabulary + adapter`,
    async () => {
      await ctx.decodeLayers({ tokens: [7], layers: [0, E] });
    },
    {
      beforeAll: async () => {
        await ctx.useDraftHead(fullHead);
      }, // installing reserves the scheduler once
      beforeEach: reset,
      afterAll: async () => {
        await ctx.useDraftHead(null);
      },
    },
  )
  .add(
    `verify ${k} tokens, layers [${E},${N}) from cached hidden`,
    async () => {
      await ctx.decodeLayers({ layers: [E, N], outputs: 'all' });
    },
    {
      beforeEach: async () => {
        reset();
        await ctx.decodeLayers({ tokens: [7, 8, 9, 10, 11, 12].slice(0, k), layers: [0, E], outputs: 'none' });
      },
    },
  )
  .add(
    `full decode, ${k} tokens (all outputs)`,
    async () => {
      await ctx.decodeLayers({ tokens: [7, 8, 9, 10, 11, 12].slice(0, k), outputs: 'all' });
    },
    { beforeEach: reset },
  );
await bench.run();
const mean = (name: string) => {
  const r = bench.getTask(name)!.result;
  if (!r || !('latency' in r)) throw new Error(`task ${name} failed`);
  return r.latency.mean;
};
const base = mean('full decode, 1 token');
console.log(
  `\n${which.name} ${type} (${(model.info.parameterCount / 1e6).toFixed(0)}M parameters, ${N} layers), ${threads} threads, ${iterations} iterations\n`,
);
console.log('| call | ms (mean) | fraction of a full 1-token decode |');
console.log('|---|---:|---:|');
for (const t of bench.tasks) console.log(`| ${t.name} | ${mean(t.name).toFixed(2)} | ${(mean(t.name) / base).toFixed(3)} |`);
model.dispose();
