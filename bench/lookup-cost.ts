// What free drafts cost (BENCHMARKS.md, "Free drafts"):
//   1. Rounds whose drafts all come from lookup against the decodes they make: the round's
//      bookkeeping (index, choice, accept rule, cache trim, streaming) is the generation's time
//      beyond its awaited decode calls; and a round's decode against a bare decodeLayers() of as
//      many rows.
//   2. Lookup when it does not pay: plain generation against generation with lookup on, on free
//      continuation (interleaved repetitions with an A/A control);
//   3. what the index costs: lookup kept and consulted, no draft ever verified, against plain, in
//      the same repetitions;
//   4. and in parts: the index's own work per token, timed apart from the model;
//   5. a conversation: the tokens each turn adds to the lookup index, which the sequence keeps
//      from turn to turn, against the whole context an index rebuilt every turn would take.
//
//   node bench/run.mjs lookup-cost [model: 1b|100m|stories|brown] [threads] [repetitions]
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ChatSession, loadModel, PLAIN_CHAT_TEMPLATE, type GenerateOptions } from 'layerskip';
import { benchModel, ROOT, SHAPE_100M, SHAPE_1B, STORIES, withFreeDraftChoice } from './models.js';
import { median } from './stats.js';

const which = process.argv[2] ?? '1b';
const threads = Number(process.argv[3] ?? 2);
const repetitions = Number(process.argv[4] ?? 5);
const path =
  which === '1b'
    ? await benchModel(SHAPE_1B, 'late', 'Q8_0')
    : which === '100m'
      ? await benchModel(SHAPE_100M, 'late', 'Q8_0')
      : which === 'stories'
        ? STORIES
        : join(ROOT, 'models', 'layerskip-brown-12L.Q8_0.gguf');
const model = await loadModel(path);
const ctx = await model.createContext({ threads, contextSize: 1024 });

// 1. rounds whose drafts all come from lookup (eager: every round verifies a k-token lookup draft,
// and the prompt repeats the model's own greedy text, so there always is one), against the bare
// decodes they make: generateMs / the awaited decode calls' time, and one round's decode against
// decodeLayers() of k + 1 rows at the same depth.
ctx.clear();
const seed = model.tokenize('Once upon a time', { addBos: true });
const warm = await ctx.generate(seed, { maxTokens: 48 }).result;
const prompt = [...seed, ...warm.tokens, ...warm.tokens.slice(0, 8)];
console.log(`${which} (${path}), ${threads} thread(s), ${repetitions} repetitions; prompt ${prompt.length} tokens`);
console.log(
  "| drafts k | lookup rounds | generation (ms) | its decode calls (ms) | generation / decodes | one round's decode (ms) | bare decode of k+1 rows (ms) |",
);
console.log('|---:|---:|---:|---:|---:|---:|---:|');
for (const k of [4, 8, 16]) {
  const total: number[] = [];
  const decodes: number[] = [];
  const perRound: number[] = [];
  const bare: number[] = [];
  let rounds = 0; // the share of rounds that were lookup rounds
  for (let rep = 0; rep < repetitions; rep++) {
    ctx.clear();
    const r = await ctx.generate(prompt, withFreeDraftChoice({ maxTokens: 64, lookup: { maxTokens: k }, freeDraftChoice: 'eager' })).result;
    const s = r.speculative!;
    const lk = s.sources.lookup!;
    rounds = lk.rounds / s.rounds; // the others are plain runs, where the newest token never occurred before
    total.push(r.timings.generateMs);
    decodes.push(s.verifyMs);
    perRound.push(lk.verifyMs / lk.rounds);
    // a bare decode of k + 1 rows, at the depth where the generation ended
    const at = ctx.state().nextPosition;
    const t0 = performance.now();
    await ctx.decodeLayers({ tokens: prompt.slice(0, k + 1), outputs: 'all' });
    bare.push(performance.now() - t0);
    ctx.removeFrom(at);
  }
  const g = median(total);
  const d = median(decodes);
  console.log(
    `| ${k} | ${(100 * rounds).toFixed(0)}% | ${g.toFixed(2)} | ${d.toFixed(2)} | ${(g / d).toFixed(3)} | ${median(perRound).toFixed(2)} | ${median(bare).toFixed(2)} |`,
  );
}

// 2 and 3. free continuation (128 tokens), where lookup should cost nothing: plain; plain again
// (the A/A control: what these estimators read for no difference); lookup on (the measured
// choice); and lookup kept and consulted each round with every draft declined ('never': what the
// index costs, its plain runs stopping to look as where free rounds could pay). Interleaved, each
// repetition one configuration later; time per generation against plain's, as the median of the
// per-repetition ratios and as the ratio of the summed times (a few percent either way between
// identical runs here: this needs hundreds of repetitions, each generation taking ~20 ms). Each
// configuration has a context of its own: a context keeps its measured costs from one generation to
// the next, and with one context for all, lookup on took the costs 'never' measured (its plain
// steps timed with their hand-offs), looked up in every run and read 1.021 of plain's time in the
// generations where it verified nothing, against 0.993 with contexts apart (stop 45)
const free = model.tokenize('The committee said that the new law would');
const freeConfigs: [string, GenerateOptions][] = [
  ['plain', {}],
  ['plain again (A/A)', {}],
  ['lookup on', { lookup: true }],
  ['lookup consulted, never verified', withFreeDraftChoice({ lookup: true, freeDraftChoice: 'never' })],
];
const freeMs = freeConfigs.map(() => [] as number[]);
const plainStepMs: number[] = []; // plain decoding's time per token, for part 4
let lookupRounds = 0;
const roundsOf: number[] = []; // per repetition, the lookup rounds of 'lookup on'
let plainTokens = '';
const freeContexts = await Promise.all(freeConfigs.map(() => model.createContext({ threads, contextSize: 1024 })));
for (let rep = 0; rep < repetitions; rep++) {
  for (let k = 0; k < freeConfigs.length; k++) {
    const c = (k + rep) % freeConfigs.length;
    const cc = freeContexts[c];
    cc.clear();
    const r = await cc.generate(free, { maxTokens: 128, ...freeConfigs[c][1] }).result;
    if (!plainTokens && c === 0) plainTokens = r.tokens.join();
    if (plainTokens && c > 0 && r.tokens.join() !== plainTokens) throw new Error(`${freeConfigs[c][0]} changed the greedy output`);
    if (c === 2) {
      lookupRounds += r.speculative!.sources.lookup!.rounds;
      roundsOf[rep] = r.speculative!.sources.lookup!.rounds;
    }
    freeMs[c].push(r.timings.generateMs);
    if (c === 0) plainStepMs.push(r.timings.generateMs / (r.tokens.length - 1));
  }
}
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
console.log(`free continuation, 128 tokens, ${repetitions} interleaved repetitions: time per generation against plain's`);
console.log('| configuration | median of ratios (range) | ratio of summed times |');
console.log('|---|---:|---:|');
for (const [c, [name]] of freeConfigs.entries()) {
  if (c === 0) continue;
  const ratios = freeMs[c].map((ms, i) => ms / freeMs[0][i]);
  console.log(
    `| ${name} | ${median(ratios).toFixed(3)} (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}) | ${(sum(freeMs[c]) / sum(freeMs[0])).toFixed(3)} |`,
  );
}
console.log(`lookup on: ${(lookupRounds / repetitions).toFixed(2)} lookup rounds per generation`);
for (const cc of freeContexts) cc.dispose();
// where it found nothing to take: the generations of 'lookup on' without a round (no probe either)
const quiet = freeMs[2].map((ms, i) => [ms / freeMs[0][i], roundsOf[i]]).filter(([, rounds]) => rounds === 0);
if (quiet.length > 0) {
  console.log(
    `lookup on, the ${quiet.length} generations without a round: ${median(quiet.map(([ratio]) => ratio)).toFixed(3)} of plain's time (median of ratios)`,
  );
}

// 4. the same, in parts: the index's own work timed apart from the model (the ratio above moves by a
// few percent between identical runs on this machine, its A/A noise). A generation pushes each
// token into the index and, once a plain run ends, looks at the match and a probe-sized draft:
// replayed here on the tokens of a plain generation, against plain decoding's own time per token.
// The other difference from plain decoding is the hand-offs of its plain runs, which stop to look
// at the context: each generation doubles them from 8 steps (their count is printed).
interface LookupIndex {
  push(token: number): void;
  readonly matchLength: number;
  draft(max: number): number[];
}
const indexModule = (await import(pathToFileURL(join(ROOT, 'dist', 'decoding', 'context-lookup.js')).href)) as {
  ContextLookup: new () => LookupIndex;
};
ctx.clear();
const plainRun = await ctx.generate(free, { maxTokens: 256 }).result;
const replay = () => {
  const index = new indexModule.ContextLookup();
  for (const t of free) index.push(t);
  for (const t of plainRun.tokens) {
    index.push(t);
    if (index.matchLength > 0) index.draft(2);
  }
};
for (let i = 0; i < 50; i++) replay(); // compiled before it is timed
const replayMs: number[] = [];
for (let i = 0; i < 200; i++) {
  const t0 = performance.now();
  replay();
  replayMs.push(performance.now() - t0);
}
const indexUs = (median(replayMs) * 1000) / (free.length + plainRun.tokens.length);
ctx.clear();
const never = await ctx.generate(free, withFreeDraftChoice({ maxTokens: 256, lookup: true, freeDraftChoice: 'never' })).result;
const runs = never.speculative!.draftLengths.length;
console.log(
  `the index's own work: ${indexUs.toFixed(2)} us a token against a plain step of ${(median(plainStepMs) * 1000).toFixed(0)} us (${((100 * indexUs) / (median(plainStepMs) * 1000)).toFixed(2)}%); with lookup consulted and never verified, ${runs} plain runs for ${never.tokens.length} tokens`,
);

// 5. a conversation of 8 turns of up to 96 tokens, lookup on: what each turn added to the index
// (the sequence keeps it while the next prompt starts with what it indexed) against what an index
// built again every turn takes (the whole prompt, every earlier turn included, and the output)
ctx.clear();
const chat = new ChatSession(ctx, { template: PLAIN_CHAT_TEMPLATE });
let kept = 0;
let rebuilt = 0;
let lastContext = 0;
const turnMs: number[] = [];
for (let turn = 0; turn < 8; turn++) {
  const t0 = performance.now();
  const r = await chat.prompt(turn % 2 === 0 ? 'Tell me a story about a dog.' : 'And what happened next?', { maxTokens: 96, lookup: true }).result;
  turnMs.push(performance.now() - t0);
  kept += r.speculative!.sources.lookup!.indexed!;
  lastContext = r.timings.promptTokens + r.tokens.length;
  rebuilt += lastContext;
}
console.log(
  `a conversation of 8 turns (context ${lastContext} tokens at the end): ${kept} tokens indexed with the kept index, ${rebuilt} rebuilt every turn; at ${indexUs.toFixed(2)} us a token, ${((kept * indexUs) / 1000).toFixed(2)} against ${((rebuilt * indexUs) / 1000).toFixed(2)} ms of the turns' ${sum(turnMs).toFixed(0)} ms`,
);
ctx.dispose();
model.dispose();
