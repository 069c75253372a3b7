// The LayerSkip training experiment (BENCHMARKS.md, "Training"): from scratch, a baseline and the
// recipe on the same data and budget; continual, the baseline trained 25% further with and without
// the recipe. Each arm reports per-exit held-out cross-entropy, accuracy and agreement with the
// final layer, perplexity, time and peak memory.
//
//   node bench/run.mjs train [arms] [tokens]      arms: a comma list of scratch-base, scratch-ls,
//                                                 cont-base, cont-ls (default all); tokens: 2050000
// Models go to models-generated/train/ (git-ignored); results to bench/results/train.json.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createModel, loadModel, trainModel, DEMO_MODEL_PATH, type TrainModelOptions, type TrainModelResult } from 'layerskip';
import { loadCorpus } from './corpus.js';

const dir = join('models-generated', 'train');
mkdirSync(dir, { recursive: true });
mkdirSync(join('bench', 'results'), { recursive: true });
const arms = (process.argv[2] ?? 'scratch-base,scratch-ls,cont-base,cont-ls').split(',');
const budget = Number(process.argv[3] ?? 2_050_000);
const threads = Number(process.env.LAYERSKIP_TRAIN_THREADS ?? 2);

/** The corpus tokenized once with the demo model's 512-token tokenizer (cached as int32 files). */
async function tokens(): Promise<{ train: Int32Array; test: Int32Array }> {
  const cache = (s: string): string => join(dir, `corpus-${s}.i32`);
  if (existsSync(cache('train')) && existsSync(cache('test'))) {
    const read = (s: string): Int32Array => {
      const b = readFileSync(cache(s));
      return new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    };
    return { train: read('train'), test: read('test') };
  }
  const corpus = loadCorpus();
  const model = await loadModel(DEMO_MODEL_PATH);
  const tok = async (docs: string[]): Promise<Int32Array> => {
    const parts: Int32Array[] = [];
    for (const d of docs) parts.push(await model.tokenizeAsync(d, { addBos: true }));
    const out = new Int32Array(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  };
  const out = { train: await tok(corpus.train), test: await tok(corpus.test) };
  model.dispose();
  writeFileSync(cache('train'), out.train);
  writeFileSync(cache('test'), out.test);
  return out;
}

const data = await tokens();
console.error(`corpus: ${data.train.length} training tokens, ${data.test.length} held-out tokens`);

const SHAPE = { layers: 12, embeddingSize: 128, heads: 4, feedForwardSize: 384 };
const init = join(dir, 'init.gguf');
if (!existsSync(init)) await createModel(init, { ...SHAPE, tokenizer: DEMO_MODEL_PATH, contextLength: 2048, seed: 1, name: 'layerskip-train-init' });

const RECIPE_SCRATCH = { layerDropout: { pMax: 0.1, scale: 'exp', fromScratch: true }, earlyExitLoss: { scale: 0.2, curriculum: 'rotational' } } as const;
const RECIPE_CONT = { layerDropout: { pMax: 0.1, scale: 'exp' }, earlyExitLoss: { scale: 0.2, curriculum: 'rotational' } } as const;
const common = (output: string, tokenBudget: number): TrainModelOptions => ({
  output, data: { tokens: data.train }, evalData: { tokens: data.test }, tokens: tokenBudget, batchSize: 8, contextSize: 128,
  learningRate: 2e-3, threads, seed: 1, evalTokens: 65536, checkpointInterval: 250,
  onProgress: (p) => {
    if (p.phase === 'train' && p.step % 50 === 0) {
      process.stderr.write(`  step ${p.step}/${p.steps} loss ${p.loss.toFixed(3)} ${p.tokensPerSecond.toFixed(0)} tok/s eta ${Math.round(p.etaSeconds)} s\n`);
    }
  },
});
const plan: Record<string, () => TrainModelOptions & { from: string }> = {
  'scratch-base': () => ({ from: init, ...common(join(dir, 'scratch-base.gguf'), budget) }),
  'scratch-ls': () => ({ from: init, ...common(join(dir, 'scratch-ls.gguf'), budget), ...RECIPE_SCRATCH }),
  'cont-base': () => ({ from: join(dir, 'scratch-base.gguf'), ...common(join(dir, 'cont-base.gguf'), Math.round(budget / 4)), learningRate: 5e-4 }),
  'cont-ls': () => ({ from: join(dir, 'scratch-base.gguf'), ...common(join(dir, 'cont-ls.gguf'), Math.round(budget / 4)), learningRate: 5e-4, ...RECIPE_CONT }),
};

const resultsFile = join('bench', 'results', 'train.json');
const results: Record<string, unknown> = existsSync(resultsFile) ? JSON.parse(readFileSync(resultsFile, 'utf8')) : {};
for (const arm of arms) {
  if (!plan[arm]) throw new Error(`unknown arm ${arm}`);
  const { from, ...options } = plan[arm]();
  console.error(`${arm}: ${from} -> ${options.output}, ${options.tokens} tokens`);
  const r: TrainModelResult = await trainModel(from, options);
  const row = {
    tokens: r.tokens, seconds: r.seconds, tokensPerSecond: r.tokensPerSecond, peakRssMiB: r.peakRss / 2 ** 20, perplexity: r.perplexity,
    exits: r.evaluation.map((e) => ({ layer: e.layer, ce: e.crossEntropy, accuracy: e.accuracy, agreement: e.agreement })),
  };
  results[arm] = row;
  writeFileSync(resultsFile, JSON.stringify(results, null, 1));
  console.log(`${arm}: ${r.seconds.toFixed(0)} s, ${r.tokensPerSecond.toFixed(0)} tok/s, peak RSS ${row.peakRssMiB.toFixed(0)} MiB, perplexity ${r.perplexity.toFixed(2)}`);
  console.log('  exit  ce     acc    agree');
  for (const e of row.exits) console.log(`  ${String(e.layer).padStart(4)}  ${e.ce.toFixed(3)}  ${e.accuracy.toFixed(3)}  ${e.agreement.toFixed(3)}`);
}
