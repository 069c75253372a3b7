// The speed suite: plain greedy decoding (this library and node-llama-cpp 3.21.1, same model,
// same threads), self-speculative greedy at several (exit layer, draft length), both
// verification modes, adaptive drafting, and node-llama-cpp's two-model speculative decoding
// with a draft model made of the same model's first E layers. All side by side in one run;
// ratios are to this library's plain decoding in the same run.
//
//   node bench/run.mjs quick     (stories260K + ~100M synthetic, Q8_0; a few minutes)
//   node bench/run.mjs full      (LLaMA-3.2-1B-shaped synthetic, Q8_0 and Q4_K_M)
// Environment: LAYERSKIP_BENCH_THREADS (default: defaultThreads()), LAYERSKIP_BENCH_ITERATIONS.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Bench } from 'tinybench';
import { getLlama, LlamaLogLevel, DraftSequenceTokenPredictor, type Llama, type Token } from 'node-llama-cpp';
import { defaultThreads, loadModel, type SelfSpeculativeOptions } from 'layerskip';
import { benchModel, ROOT, SHAPE_100M, SHAPE_1B, slicedModel, STORIES } from './models.js';

interface ModelCase {
  label: string;
  path: () => Promise<string>;
  tokens: number;
  prompt: string;
  speculative: SelfSpeculativeOptions[];
  /** exit layer of the two-model baseline's draft model (its first layers), and its draft length */
  twoModel?: { layers: number; draft: number };
}

const suiteName = process.argv[2] === 'full' ? 'full' : 'quick';
const threads = Number(process.env.LAYERSKIP_BENCH_THREADS ?? defaultThreads(1e12));
const iterations = Number(process.env.LAYERSKIP_BENCH_ITERATIONS ?? (suiteName === 'full' ? 2 : 4));

const quick: ModelCase[] = [
  {
    label: 'stories260K (F32, real)',
    path: async () => STORIES,
    tokens: 128,
    prompt: 'Once upon a time',
    speculative: [
      { exitLayer: 3, draftTokens: 3 },
      { exitLayer: 4, draftTokens: 4 },
      { exitLayer: 4, draftTokens: 4, verification: 'full' },
      { exitLayer: 4, draftTokens: 8, adaptive: true },
    ],
    twoModel: { layers: 4, draft: 4 },
  },
  {
    label: '100M Q8_0, late layers matter little (synthetic)',
    path: () => benchModel(SHAPE_100M, 'late', 'Q8_0'),
    tokens: 64,
    prompt: 'Once upon a time',
    speculative: [
      { exitLayer: 3, draftTokens: 4 },
      { exitLayer: 3, draftTokens: 7 },
      { exitLayer: 3, draftTokens: 7, verification: 'full' },
      { exitLayer: 6, draftTokens: 4 },
      { exitLayer: 3, draftTokens: 8, adaptive: true },
    ],
    twoModel: { layers: 3, draft: 7 },
  },
  {
    label: '100M Q8_0, plain random (synthetic)',
    path: () => benchModel(SHAPE_100M, 'plain', 'Q8_0'),
    tokens: 64,
    prompt: 'Once upon a time',
    speculative: [
      { exitLayer: 6, draftTokens: 4 },
      { exitLayer: 6, draftTokens: 8, adaptive: true },
    ],
  },
];

const full: ModelCase[] = [
  {
    label: '1B-shape Q8_0, late layers matter little (synthetic)',
    path: () => benchModel(SHAPE_1B, 'late', 'Q8_0'),
    tokens: 32,
    prompt: 'Once upon a time',
    speculative: [
      { exitLayer: 4, draftTokens: 3 },
      { exitLayer: 4, draftTokens: 5 },
      { exitLayer: 4, draftTokens: 7 },
      { exitLayer: 4, draftTokens: 5, verification: 'full' },
      { exitLayer: 4, draftTokens: 8, adaptive: true },
    ],
    twoModel: { layers: 4, draft: 5 },
  },
  {
    label: '1B-shape Q8_0, plain random (synthetic)',
    path: () => benchModel(SHAPE_1B, 'plain', 'Q8_0'),
    tokens: 24,
    prompt: 'Once upon a time',
    speculative: [
      { exitLayer: 4, draftTokens: 4 },
      { exitLayer: 4, draftTokens: 8, adaptive: true },
    ],
  },
  {
    label: '1B-shape Q4_K_M, late layers matter little (synthetic)',
    path: () => benchModel(SHAPE_1B, 'late', 'Q4_K_M'),
    tokens: 32,
    prompt: 'Once upon a time',
    speculative: [
      { exitLayer: 4, draftTokens: 5 },
      { exitLayer: 4, draftTokens: 8, adaptive: true },
    ],
  },
];

interface Row {
  model: string;
  task: string;
  tokensPerSecond: number;
  ratio: number;
  acceptance?: number;
  tokensPerRound?: number;
  sameTokens: boolean;
}

function specLabel(s: SelfSpeculativeOptions): string {
  return `self-spec E=${s.exitLayer} d=${s.draftTokens}${s.adaptive ? ' adaptive' : ''}${s.verification === 'full' ? ' full-verify' : ''}`;
}

async function runCase(c: ModelCase, llama: Llama): Promise<Row[]> {
  const path = await c.path();
  const model = await loadModel(path);
  const ctx = await model.createContext({ contextSize: 1024, threads });
  const prompt = model.tokenize(c.prompt);
  const peerPrompt = prompt as Token[];
  const bench = new Bench({ iterations, warmupIterations: 1, time: 0, warmupTime: 0 });
  const produced = new Map<string, { tokens: number[]; acceptance?: number; tokensPerRound?: number }>();

  const ours = (name: string, spec?: SelfSpeculativeOptions) =>
    bench.add(name, async () => {
      ctx.clear();
      const r = await ctx.generate(prompt, { maxTokens: c.tokens, selfSpeculative: spec }).result;
      produced.set(name, { tokens: r.tokens, acceptance: r.speculative?.acceptanceRate, tokensPerRound: r.speculative?.tokensPerRound });
    });
  ours('layerskip plain');

  // the peer: node-llama-cpp, same weights, same threads, same prompt tokens
  const peerModel = await llama.loadModel({ modelPath: path });
  const peerCtx = await peerModel.createContext({ contextSize: 1024, threads, sequences: 1 });
  const peerSeq = peerCtx.getSequence();
  bench.add('node-llama-cpp plain', async () => {
    await peerSeq.clearHistory();
    const out: number[] = [];
    for await (const t of peerSeq.evaluate(peerPrompt, { temperature: 0 })) {
      if (peerModel.isSpecialToken(t) && t === peerModel.tokens.eos) break;
      out.push(t);
      if (out.length >= c.tokens) break;
    }
    produced.set('node-llama-cpp plain', { tokens: out });
  });

  for (const s of c.speculative) ours(specLabel(s), s);

  let twoModelCleanup: (() => Promise<void>) | undefined;
  if (c.twoModel) {
    const draftModel = await llama.loadModel({ modelPath: slicedModel(path, c.twoModel.layers) });
    const draftCtx = await draftModel.createContext({ contextSize: 1024, threads, sequences: 1 });
    const targetCtx = await peerModel.createContext({ contextSize: 1024, threads, sequences: 1 });
    const predictor = new DraftSequenceTokenPredictor(draftCtx.getSequence(), { maxTokens: c.twoModel.draft, minConfidence: 0 });
    const seq = targetCtx.getSequence({ tokenPredictor: predictor });
    const name = `node-llama-cpp two-model (draft: first ${c.twoModel.layers} layers) d=${c.twoModel.draft}`;
    bench.add(name, async () => {
      await seq.clearHistory();
      const out: number[] = [];
      for await (const t of seq.evaluate(peerPrompt, { temperature: 0 })) {
        if (t === peerModel.tokens.eos) break;
        out.push(t);
        if (out.length >= c.tokens) break;
      }
      const stats = seq.tokenPredictions;
      const total = stats.validated + stats.refuted;
      produced.set(name, { tokens: out, acceptance: total > 0 ? stats.validated / total : undefined });
    });
    twoModelCleanup = async () => {
      await targetCtx.dispose();
      await draftCtx.dispose();
      await draftModel.dispose();
    };
  }

  process.stderr.write(`[bench] ${c.label}: ${bench.tasks.length} tasks x ${iterations} iterations, ${c.tokens} tokens, ${threads} threads\n`);
  await bench.run();
  await twoModelCleanup?.();
  await peerCtx.dispose();
  await peerModel.dispose();
  model.dispose();

  const reference = produced.get('layerskip plain')!.tokens;
  const tps = (name: string) => {
    const result = bench.getTask(name)!.result;
    if (!result || !('latency' in result)) throw new Error(`benchmark task ${name} failed: ${JSON.stringify(result)}`);
    const n = produced.get(name)!.tokens.length;
    return (n / result.latency.mean) * 1000;
  };
  const base = tps('layerskip plain');
  return bench.tasks.map((t) => {
    const p = produced.get(t.name)!;
    const v = tps(t.name);
    return {
      model: c.label,
      task: t.name,
      tokensPerSecond: v,
      ratio: v / base,
      acceptance: p.acceptance,
      tokensPerRound: p.tokensPerRound,
      sameTokens: p.tokens.length === reference.length && p.tokens.every((x, i) => x === reference[i]),
    };
  });
}

const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
const rows: Row[] = [];
// LAYERSKIP_BENCH_CASES: run only the cases whose label contains this text
const only = process.env.LAYERSKIP_BENCH_CASES;
for (const c of suiteName === 'full' ? full : quick) if (!only || c.label.includes(only)) rows.push(...(await runCase(c, llama)));

const fmt = (v: number | undefined, d = 2) => (v === undefined ? '' : v.toFixed(d));
const lines = [
  `| model | task | tokens/s | ratio to plain | acceptance | tokens/round | same tokens as plain |`,
  `|---|---|---:|---:|---:|---:|---|`,
  ...rows.map(
    (r) =>
      `| ${r.model} | ${r.task} | ${fmt(r.tokensPerSecond, 1)} | ${fmt(r.ratio)}x | ${fmt(r.acceptance)} | ${fmt(r.tokensPerRound)} | ${r.sameTokens ? 'yes' : 'no'} |`,
  ),
];
console.log(`\n${suiteName} suite, ${threads} threads, ${iterations} iterations per task (tinybench mean), node ${process.version}\n`);
console.log(lines.join('\n'));
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'results', `${suiteName}.json`), JSON.stringify({ threads, iterations, rows }, null, 2));
writeFileSync(join(ROOT, 'bench', 'results', `${suiteName}.md`), lines.join('\n') + '\n');
