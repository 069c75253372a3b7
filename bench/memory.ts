// Peak resident memory (VmHWM) of plain decoding, self-speculative decoding, and node-llama-cpp's
// plain and two-model speculative decoding (draft model = the same model's first E layers, sliced
// into its own GGUF), each in its own process: the only honest way to compare peaks.
//   node bench/run.mjs memory [100m|1b] [tokens]
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadModel } from 'layerskip';
import { benchModel, SHAPE_100M, SHAPE_1B, slicedModel } from './models.js';

function peakRssMiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function child(mode: string, path: string, tokens: number, E: number, d: number, threads: number): Promise<void> {
  const prompt = 'Once upon a time';
  if (mode.startsWith('layerskip')) {
    const model = await loadModel(path);
    const ctx = await model.createContext({ contextSize: 1024, threads });
    const r = await ctx.generate(prompt, {
      maxTokens: tokens,
      selfSpeculative: mode === 'layerskip-self-speculative' ? { exitLayer: E, draftTokens: d } : undefined,
    }).result;
    console.log(JSON.stringify({ mode, peakMiB: peakRssMiB(), tokens: r.tokens.length }));
  } else {
    const { getLlama, LlamaLogLevel, DraftSequenceTokenPredictor } = await import('node-llama-cpp');
    const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath: path });
    const ctx = await model.createContext({ contextSize: 1024, threads, sequences: 1 });
    let seq = ctx.getSequence();
    if (mode === 'node-llama-cpp-two-model') {
      const draft = await llama.loadModel({ modelPath: slicedModel(path, E) });
      const dctx = await draft.createContext({ contextSize: 1024, threads, sequences: 1 });
      const ctx2 = await model.createContext({ contextSize: 1024, threads, sequences: 1 });
      seq = ctx2.getSequence({ tokenPredictor: new DraftSequenceTokenPredictor(dctx.getSequence(), { maxTokens: d, minConfidence: 0 }) });
    }
    let n = 0;
    for await (const t of seq.evaluate(model.tokenize(prompt, true), { temperature: 0 })) {
      if (t === model.tokens.eos || ++n >= tokens) break;
    }
    console.log(JSON.stringify({ mode, peakMiB: peakRssMiB(), tokens: n }));
  }
  process.exit(0);
}

if (process.argv[2] === 'child') {
  const [, , , mode, path, tokens, E, d, threads] = process.argv;
  await child(mode, path, Number(tokens), Number(E), Number(d), Number(threads));
} else {
  const shape = process.argv[2] === '1b' ? SHAPE_1B : SHAPE_100M;
  const tokens = Number(process.argv[3] ?? 32);
  const threads = 1; // node-llama-cpp's threading is pathological at 2 on 2 cores; memory does not depend on it
  const path = await benchModel(shape, 'late', 'Q8_0');
  const E = shape.lateFrom;
  const d = 5;
  slicedModel(path, E);
  const rows = [];
  for (const mode of ['layerskip-plain', 'layerskip-self-speculative', 'node-llama-cpp-plain', 'node-llama-cpp-two-model']) {
    const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), 'child', mode, path, String(tokens), String(E), String(d), String(threads)], {
      encoding: 'utf8',
    });
    rows.push(JSON.parse(out.trim().split('\n').pop()!));
  }
  const base = rows[0].peakMiB;
  console.log(`\npeak resident memory, ${shape.name} Q8_0 late variant, ${tokens} tokens, E=${E}, d=${d}, context 1024, each mode in its own process\n`);
  console.log('| mode | peak RSS (MiB) | vs layerskip plain |');
  console.log('|---|---:|---:|');
  for (const r of rows) console.log(`| ${r.mode} | ${r.peakMiB.toFixed(1)} | ${((r.peakMiB / base - 1) * 100).toFixed(1)}% |`);
}
