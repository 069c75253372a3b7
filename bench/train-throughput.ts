// Training-step throughput against PyTorch on the CPU, side by side in one run: the same 12-layer
// d 128 LLaMA (vocabulary 512), batch 8 x 128 tokens, AdamW, at 1 and 2 threads, baseline and the
// LayerSkip recipe, arms interleaved over repetitions (medians reported).
//
//   node bench/run.mjs train-throughput [steps] [repetitions]     (defaults 20 and 2)
// Needs PyTorch for python3 (`pip install torch`, the machine's local index); not a dependency.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createModel, trainModel, DEMO_MODEL_PATH } from 'layerskip';
import { median } from './stats.js';

const steps = Number(process.argv[2] ?? 20);
const reps = Number(process.argv[3] ?? 2);
const WARMUP = 3;
const dir = join('models-generated', 'train');
mkdirSync(dir, { recursive: true });
const tokensFile = join(dir, 'corpus-train.i32');
if (!existsSync(tokensFile)) throw new Error(`${tokensFile} is missing: run \`node bench/run.mjs train\` first (it tokenizes the corpus)`);
const init = join(dir, 'throughput-init.gguf');
if (!existsSync(init)) await createModel(init, { layers: 12, embeddingSize: 128, heads: 4, feedForwardSize: 384, tokenizer: DEMO_MODEL_PATH, seed: 3 });

async function ours(threads: number, layerskip: boolean): Promise<number> {
  const stamps: number[] = [];
  await trainModel(init, {
    output: join(dir, 'throughput-out.gguf'),
    data: { tokens: readTokens() },
    steps,
    batchSize: 8,
    contextSize: 128,
    threads,
    learningRate: 1e-3,
    ...(layerskip ? { layerDropout: { pMax: 0.1, fromScratch: false }, earlyExitLoss: { scale: 0.2, curriculum: 'rotational' as const, rotation: 4 } } : {}),
    onProgress: (p) => {
      if (p.phase === 'train') stamps.push(performance.now());
    },
  });
  const ms = (stamps[stamps.length - 1] - stamps[WARMUP - 1]) / (stamps.length - WARMUP);
  return (8 * 128 * 1000) / ms;
}

let cached: Int32Array | undefined;
function readTokens(): Int32Array {
  if (!cached) {
    const b = readFileSync(tokensFile);
    cached = new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4).slice(0, 400_000);
  }
  return cached;
}

function pytorch(threads: number, layerskip: boolean): number {
  const out = execFileSync(
    'python3',
    [
      join('bench', 'pytorch', 'layerskip_train.py'),
      '--layers',
      '12',
      '--dim',
      '128',
      '--heads',
      '4',
      '--ff',
      '384',
      '--vocab',
      '512',
      '--context',
      '128',
      '--batch',
      '8',
      '--threads',
      String(threads),
      '--steps',
      String(steps),
      '--tokens',
      tokensFile,
      ...(layerskip ? ['--layerskip', '--rotation', '4'] : []),
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
  );
  return JSON.parse(out.trim().split('\n').pop()!).tokens_per_s;
}

console.log('threads  recipe     layerskip tok/s  PyTorch tok/s  ratio');
for (const threads of [1, 2]) {
  for (const layerskip of [false, true]) {
    const a: number[] = [],
      b: number[] = [];
    for (let r = 0; r < reps; r++) {
      a.push(await ours(threads, layerskip));
      b.push(pytorch(threads, layerskip));
    }
    const x = median(a),
      y = median(b);
    console.log(
      `${String(threads).padStart(7)}  ${(layerskip ? 'LayerSkip' : 'baseline').padEnd(9)}  ${x.toFixed(0).padStart(15)}  ${y.toFixed(0).padStart(13)}  ${(x / y).toFixed(2)}x`,
    );
  }
}
