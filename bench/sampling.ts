// Cost of one sampling distribution (softmax + top-k/top-p) over a large vocabulary: the
// threshold-pruned selection in lib/decoding/sampling.ts against sorting the whole vocabulary (the
// previous implementation, kept here as the baseline). Speculative sampling computes one such
// row per drafted token and per verified position, so this is paid several times per round.
//   node bench/run.mjs sampling
import { Bench } from 'tinybench';

// the package exports no sampler internals; load them from the build next to this benchmark
type Sampling = typeof import('../dist/decoding/sampling.js');
const { distribution, resolveSampling, SamplerRng } = (await import(new URL('../../dist/decoding/sampling.js', import.meta.url).href)) as Sampling;

function fullSortDistribution(logits: Float32Array, topK: number, topP: number, temperature: number): Float64Array {
  const p = distribution(logits, resolveSampling({ temperature }));
  const idx = Array.from({ length: p.length }, (_, i) => i).sort((a, b) => p[b] - p[a] || a - b);
  let keep = topK > 0 && topK < p.length ? topK : p.length;
  let kept = 0;
  for (let j = 0; j < keep && topP < 1; j++) {
    kept += p[idx[j]];
    if (kept >= topP) keep = j + 1;
  }
  const out = new Float64Array(p.length);
  let total = 0;
  for (let j = 0; j < keep; j++) total += p[idx[j]];
  for (let j = 0; j < keep; j++) out[idx[j]] = p[idx[j]] / total;
  return out;
}

// logits shaped like a language model's: Gaussian (std 2.5) with a few clear favourites
const rng = new SamplerRng(5);
const gaussian = () => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
const rows = (n: number) => Array.from({ length: 8 }, () => Float32Array.from({ length: n }, (_, i) => 2.5 * gaussian() + (i % 997 === 0 ? 8 : 0)));

const settings = [
  { name: 'top-k 40, top-p 0.95, T 0.8', topK: 40, topP: 0.95, temperature: 0.8 },
  { name: 'top-p 0.95, T 1', topK: 0, topP: 0.95, temperature: 1 },
];
const bench = new Bench({ time: 500, warmupTime: 100 });
for (const nVocab of [32000, 128256]) {
  const data = rows(nVocab);
  for (const s of settings) {
    const resolved = resolveSampling(s);
    let i = 0;
    bench.add(`${nVocab} vocab, ${s.name}: pruned`, () => void distribution(data[i++ % data.length], resolved));
    bench.add(`${nVocab} vocab, ${s.name}: full sort`, () => void fullSortDistribution(data[i++ % data.length], s.topK, s.topP, s.temperature));
  }
}
await bench.run();
const ms = (name: string) => {
  const r = bench.getTask(name)!.result;
  if (!r || !('latency' in r)) throw new Error(`task ${name} failed`);
  return r.latency.mean;
};
console.log('| vocabulary | setting | pruned (ms) | full sort (ms) | speedup |\n|---|---|---|---|---|');
for (const nVocab of [32000, 128256]) {
  for (const s of settings) {
    const a = ms(`${nVocab} vocab, ${s.name}: pruned`);
    const b = ms(`${nVocab} vocab, ${s.name}: full sort`);
    console.log(`| ${nVocab} | ${s.name} | ${a.toFixed(2)} | ${b.toFixed(2)} | ${(b / a).toFixed(1)}x |`);
  }
}
