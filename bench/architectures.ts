// Layer ranges on architectures other than llama: self-speculative decoding and fitted draft heads
// on a synthetic model of another architecture's shape, side by side in one run.
//
//   node bench/run.mjs architectures qwen3-late
//       Qwen3-0.6B's shape (qwen3: 28 layers, n_embd 1024, 16 / 8 heads, FFN 3072, tied output,
//       Qwen's 151,936-token vocabulary), "late" (layers >= LATE_FROM write into the residual
//       stream at LATE_SCALE of the usual std), Q8_0, 2 threads: plain / E, d without a head /
//       with heads fitted on the model's own generations (ridge exit adapter): its 32k draft
//       vocabulary as calibrated, the same size covering the plain run's output, full vocabulary.
//       BENCHMARKS.md section 15 (and how to run it where ggml's AMX Q8_0 kernels fault).
//
// The settings can be changed for exploration (each late setting is its own cached model file):
//   LAYERSKIP_QWEN3_LATE_FROM (4), LAYERSKIP_QWEN3_LATE_SCALE (0.01), LAYERSKIP_QWEN3_EXIT (4),
//   LAYERSKIP_QWEN3_DRAFTS (comma-separated d values, "2,3,4"),
//   LAYERSKIP_QWEN3_TOKENS (64), LAYERSKIP_QWEN3_HEAD_VOCAB (32000, or "0.9" for { coverage: 0.9 }),
//   LAYERSKIP_QWEN3_TYPE (Q8_0, or F16 for the unquantized source), LAYERSKIP_QWEN3_STEPS (0: the
//   ridge adapter without refinement)
//
// The writer's head dim is n_embd / n_head: 64 here, where Qwen3-0.6B has 128 (its q projection is
// 2048 wide, wider than n_embd). The attention matrices are therefore half of Qwen3-0.6B's (3.1M
// instead of 6.3M weights a layer); the FFN, the embedding / LM head and the layer count match.
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { DraftHead, fitDraftHead, loadModel, type QuantizationType, type SelfSpeculativeOptions } from 'layerskip';
import { generatedModel, ROOT } from './models.js';
import { cachedHead, speedTable } from './speed-table.js';

const mode = process.argv[2] ?? 'qwen3-late';
const env = process.env;

if (mode === 'qwen3-late') {
  const lateFrom = Number(env.LAYERSKIP_QWEN3_LATE_FROM ?? 4);
  const lateScale = Number(env.LAYERSKIP_QWEN3_LATE_SCALE ?? 0.01);
  const E = Number(env.LAYERSKIP_QWEN3_EXIT ?? 4);
  const drafts = (env.LAYERSKIP_QWEN3_DRAFTS ?? '2,3,4').split(',').map(Number);
  const maxTokens = Number(env.LAYERSKIP_QWEN3_TOKENS ?? 64);
  const vocabArg = Number(env.LAYERSKIP_QWEN3_HEAD_VOCAB ?? 32000);
  const vocabulary = vocabArg < 1 ? { coverage: vocabArg } : vocabArg;
  const type = (env.LAYERSKIP_QWEN3_TYPE ?? 'Q8_0') as QuantizationType | 'F16';
  const t0 = performance.now();
  const stem = `qwen3-0.6b-late${lateFrom}x${lateScale}`;
  const path = await generatedModel(
    stem,
    {
      arch: 'qwen3',
      nLayer: 28,
      nEmbd: 1024,
      nHead: 16,
      nHeadKv: 8,
      nFf: 3072,
      nVocab: 151936,
      nCtx: 4096,
      tiedOutput: true,
      ropeFreqBase: 1e6, // Qwen3-0.6B's rope_theta and rms_norm_eps
      rmsEps: 1e-6,
      vocabFrom: join(ROOT, 'deps', 'llama.cpp', 'models', 'ggml-vocab-qwen2.gguf'),
      lateLayerScale: { fromLayer: lateFrom, scale: lateScale },
    },
    type,
  );
  const model = await loadModel(path);
  const ctx = await model.createContext({ contextSize: 1024, threads: 2 });
  const tModel = performance.now();
  // steps 0 keeps the closed-form (ridge) adapter: on this model the default refinement lowered
  // held-out agreement (full vocabulary: 0.920 ridge -> 0.824 refined; plain exit 0.916)
  const steps = Number(env.LAYERSKIP_QWEN3_STEPS ?? 0);
  const fitOptions = { exitLayer: E, steps, threads: 2, selfGenerate: { positions: 1024, tokensPerSequence: 128 } };
  const vocabName = typeof vocabulary === 'number' ? `vocab${vocabulary / 1000}k` : `cov${vocabulary.coverage}`;
  const headName = (v: string) => `${stem}-${type.toLowerCase()}-E${E}-${v}${steps === 0 ? '-ridge' : steps === 100 ? '' : `-steps${steps}`}`;
  const head = await cachedHead(ctx, headName(vocabName), () => fitDraftHead(ctx, { ...fitOptions, vocabulary }));
  const fullHead = await cachedHead(ctx, headName('full'), () => fitDraftHead(ctx, { ...fitOptions, vocabulary: 'full' }));
  const tHead = performance.now();
  const prompt = 'Once upon a time';
  const plain = (await ctx.generate(prompt, { maxTokens }).result).tokens;
  // A random model's greedy tokens spread evenly over the 151,936 ids (no Zipf law): a vocabulary
  // calibrated on other generations holds few of them. The covering head keeps the fitted head's
  // adapter and vocabulary size but holds every token the plain run emits (in-sample): the coverage
  // a frequency-ranked vocabulary of that size has on real text, which isolates the cost side.
  const ids = new Set(plain);
  for (let t = 0; head.tokenIds && ids.size < head.tokenIds.length; t++) ids.add(t);
  const covering = head.tokenIds ? new DraftHead({ ...head, tokenIds: Int32Array.from([...ids].sort((x, y) => x - y)), stats: null }) : null;
  const inHead = new Set(head.tokenIds ?? []);
  const covered = head.tokenIds ? plain.filter((t) => inHead.has(t)).length / plain.length : 1;
  const describe = (name: string, h: DraftHead) => {
    const st = h.stats;
    return (
      `${name}: ${h.tokenIds ? `${h.tokenIds.length}-token draft vocabulary` : 'full vocabulary'}${h.adapter ? ' + adapter' : ''}` +
      (st
        ? `; held-out agreement ${st.agreementBefore.toFixed(3)} plain exit, ${st.agreementVocabulary.toFixed(3)} vocabulary alone, ` +
          `${st.agreementRidge.toFixed(3)} ridge, ${st.agreementAfter.toFixed(3)} head (${st.refinementSteps} refinement steps); calibration ${(st.calibrationMs / 1000).toFixed(0)} s`
        : '')
    );
  };
  console.log(`\n${stem} ${type}: ${model.layerCount} layers, ${(model.info.sizeBytes / 2 ** 20).toFixed(0)} MiB, exit layer E=${E}`);
  console.log(
    `- ${describe('fitted head', head)}; it holds ${(covered * 100).toFixed(0)}% of the plain run's ${plain.length} tokens (${new Set(plain).size} distinct)`,
  );
  console.log(`- ${describe('fitted head, full vocabulary', fullHead)}`);
  // every d with and without the covering head; the calibrated heads at the middle d only (the
  // out-of-sample vocabulary is accepted so rarely that its runs are the slowest of the table)
  const cases: [string, SelfSpeculativeOptions | undefined][] = [['plain', undefined]];
  const mid = drafts[Math.floor(drafts.length / 2)];
  for (const d of drafts) {
    cases.push([`E=${E} d=${d}`, { exitLayer: E, draftTokens: d }]);
    if (covering) cases.push([`E=${E} d=${d} + fitted head, vocabulary covering the output`, { exitLayer: E, draftTokens: d, draftHead: covering }]);
    if (d !== mid) continue;
    cases.push([`E=${E} d=${d} + fitted head (calibrated vocabulary)`, { exitLayer: E, draftTokens: d, draftHead: head }]);
    cases.push([`E=${E} d=${d} + fitted head, full vocabulary`, { exitLayer: E, draftTokens: d, draftHead: fullHead }]);
  }
  // the machine is shared: the load average before and after the table says how busy it was
  const load = () =>
    loadavg()
      .map((x) => x.toFixed(2))
      .join(' ');
  console.log(`load average before the table: ${load()}`);
  await speedTable(model, ctx, prompt, maxTokens, cases);
  console.log(`load average after the table: ${load()}`);
  console.log(
    `\nwall: model ${((tModel - t0) / 1000).toFixed(1)} s, head ${((tHead - tModel) / 1000).toFixed(1)} s, table ${((performance.now() - tHead) / 1000).toFixed(1)} s`,
  );
  model.dispose();
} else {
  console.error('usage: node bench/run.mjs architectures qwen3-late');
  process.exit(2);
}
