// What free drafts cost (BENCHMARKS.md, "Free drafts"):
//   1. A round whose drafts all come from lookup against a bare verification of as many rows: the
//      round is one generate() of k + 1 tokens whose only round is a k-token lookup draft, all
//      accepted (a prompt that repeats a token loop); the bare verification is decodeLayers() of
//      the same k + 1 tokens at the same positions with all layers. The difference is the round's
//      bookkeeping (index, choice, accept rule, cache trim, streaming).
//   2. Lookup when it does not pay: plain generation against generation with lookup on, on free
//      continuation (interleaved repetitions, median of per-repetition ratios).
//
//   node bench/run.mjs lookup-cost [model: 1b|100m|stories|brown] [threads] [repetitions]
import { join } from 'node:path';
import { loadModel } from 'layerskip';
import { benchModel, ROOT, SHAPE_100M, SHAPE_1B, STORIES } from './models.js';

const which = process.argv[2] ?? '1b';
const threads = Number(process.argv[3] ?? 2);
const repetitions = Number(process.argv[4] ?? 5);
const path =
  which === '1b' ? await benchModel(SHAPE_1B, 'late', 'Q8_0')
    : which === '100m' ? await benchModel(SHAPE_100M, 'late', 'Q8_0')
      : which === 'stories' ? STORIES
        : join(ROOT, 'models', 'layerskip-brown-12L.Q8_0.gguf');
const model = await loadModel(path);
const ctx = await model.createContext({ threads, contextSize: 1024 });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

// 1. the all-lookup round: a prompt of 24 repeats of a 3-token loop, then k + 1 tokens generated,
// the first from the prompt's decode and the other k from one lookup round (greedy, eager choice).
// A loop the model would not continue is no good: find the model's own greedy loop first.
ctx.clear();
const seed = model.tokenize('Once upon a time', { addBos: true });
const warm = await ctx.generate(seed, { maxTokens: 96 }).result;
const loop = warm.tokens.slice(-12);
const prompt = [...seed, ...warm.tokens, ...loop, ...loop];
console.log(`${which} (${path}), ${threads} thread(s), ${repetitions} repetitions; prompt ${prompt.length} tokens`);
console.log('| drafts k | lookup round (ms) | verification of k+1 rows (ms) | round / verification | all accepted |');
console.log('|---:|---:|---:|---:|---|');
for (const k of [4, 8, 16]) {
  const round: number[] = [];
  const bare: number[] = [];
  let allAccepted = true;
  for (let rep = 0; rep < repetitions; rep++) {
    ctx.clear();
    await ctx.generate(prompt, { maxTokens: 1 }).result; // the prompt in the cache; the next generate reuses it
    const r = await ctx.generate(prompt, { maxTokens: k + 1, lookup: { maxTokens: k }, freeDraftChoice: 'eager' }).result;
    const lk = r.speculative!.sources.lookup!;
    allAccepted &&= lk.rounds === 1 && lk.accepted === k;
    round.push(r.timings.generateMs);
    // the same rows, bare: the round verified the first generated token and the k drafts at
    // positions [prompt.length, prompt.length + k]; decode them again there with all layers
    ctx.removeFrom(prompt.length);
    const t0 = performance.now();
    await ctx.decodeLayers({ tokens: r.tokens.slice(0, k + 1), outputs: 'all' });
    bare.push(performance.now() - t0);
  }
  const a = median(round);
  const b = median(bare);
  console.log(`| ${k} | ${a.toFixed(2)} | ${b.toFixed(2)} | ${(a / b).toFixed(3)} | ${allAccepted ? 'yes' : 'NO'} |`);
}

// 2. free continuation: plain against lookup on (measured choice)
const free = model.tokenize('The committee said that the new law would');
const ratios: number[] = [];
let lookupRounds = 0;
for (let rep = 0; rep < repetitions; rep++) {
  ctx.clear();
  const plain = await ctx.generate(free, { maxTokens: 128 }).result;
  ctx.clear();
  const withLookup = await ctx.generate(free, { maxTokens: 128, lookup: true }).result;
  if (withLookup.tokens.join() !== plain.tokens.join()) throw new Error('lookup changed the greedy output');
  lookupRounds += withLookup.speculative!.sources.lookup!.rounds;
  ratios.push(withLookup.timings.tokensPerSecond / plain.timings.tokensPerSecond);
}
console.log(`free continuation, 128 tokens: lookup on / plain = ${median(ratios).toFixed(3)}x (median; range ${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)}), ${(lookupRounds / repetitions).toFixed(1)} lookup rounds per generation`);
ctx.dispose();
model.dispose();
