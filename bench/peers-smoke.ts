// Smoke run of the peers (bench/peers.ts) on the two committed models: each peer once, 1 thread,
// 128 tokens, a prompt that repeats a passage (so that context lookup has something to find), all
// with our contexts' attention settings (F32 KV, no flash attention) unless a row says otherwise.
// Prints tokens/s, drafted/accepted, and whether each peer's greedy output equals node-llama-cpp
// plain's and ours (the first 128 tokens; llama-speculative-simple prints text only, so its text is
// compared with the text of the reference's tokens). Mismatches are reported, not hidden.
//
//   node bench/build-peers.mjs && node bench/run.mjs peers-smoke
import { join } from 'node:path';
import { loadModel } from 'layerskip';
import { ROOT, STORIES } from './models.js';
import { disposeNodeLlamaCpp, llamaBenchTokensPerSecond, nativePlainAfterPrompt, ngramSpeculative, nodeLlamaCppGenerate, type PeerAttention } from './peers.js';

const THREADS = 1;
const TOKENS = 128;
const FIRST_SENTENCE = 'The old man walked slowly down the road to the river, carrying a basket of bread for his daughter.';
const PASSAGE = `${FIRST_SENTENCE} The sun was low and the air smelled of rain. He stopped on the bridge to watch the water, as he had done every evening for forty years. Then he went on, and the dogs of the village barked at him as he passed.`;
// the passage, then its first sentence again: a model that copies can be drafted from the context
const PROMPT = `${PASSAGE} ${FIRST_SENTENCE}`;

// every peer runs with our contexts' attention settings (peers.ts); these rows add the peers' own
const PEER_DEFAULTS: PeerAttention = { kvCacheType: 'f16', flashAttention: 'auto' };

const MODELS = [
  { label: 'layerskip-brown-12L Q8_0', path: join(ROOT, 'models', 'layerskip-brown-12L.Q8_0.gguf') },
  { label: 'stories260K F32', path: STORIES },
];

interface Row {
  model: string;
  peer: string;
  tokens: number | '';
  tokensPerSecond: number;
  drafted?: number;
  accepted?: number;
  /** agreement with node-llama-cpp plain's greedy output, then with ours */
  sameAsNodeLlamaCpp: string;
  sameAsOurs: string;
}

/** What a peer shows of its output: token ids, the text it printed, or nothing (llama-bench). */
type Output = { tokens: readonly number[] } | { text: string } | null;

/** A reference greedy output: its tokens, and its text as llama-speculative-simple prints it. */
interface Reference {
  tokens: readonly number[];
  text: string;
}

/** Agreement of two token lists over the first `n`. */
function sameTokens(a: readonly number[], ref: readonly number[], n = TOKENS): string {
  const x = a.slice(0, n);
  const y = ref.slice(0, n);
  const len = Math.min(x.length, y.length);
  for (let i = 0; i < len; i++) if (x[i] !== y[i]) return `NO (first difference at token ${i})`;
  return x.length === y.length ? 'yes' : `NO (${x.length} vs ${y.length} tokens)`;
}

/** Agreement of a peer's generated text with the reference's (the peer may run past the reference by a draft). */
function sameText(peer: string, ref: string): string {
  if (peer === ref) return 'yes (text)';
  if (peer.startsWith(ref)) return `yes (text; the peer printed ${peer.length - ref.length} more chars)`;
  if (ref.startsWith(peer)) return `NO (text stops early: ${peer.length} of ${ref.length} chars)`;
  let i = 0;
  while (peer[i] === ref[i]) i++;
  return `NO (text differs at char ${i}: ${JSON.stringify(peer.slice(i, i + 16))} vs ${JSON.stringify(ref.slice(i, i + 16))})`;
}

function agreement(out: Output, ref: Reference): string {
  if (out === null) return 'n/a (no output)';
  return 'tokens' in out ? sameTokens(out.tokens, ref.tokens) : sameText(out.text, ref.text);
}

async function runModel(label: string, path: string): Promise<Row[]> {
  process.stderr.write(`[peers-smoke] ${label}\n`);
  // our plain greedy tokens, and our tokenization of the prompt (BOS added), which every peer gets
  const ours = await loadModel(path);
  const ctx = await ours.createContext({ threads: THREADS });
  const promptTokens = ours.tokenize(PROMPT);
  const mine = await ctx.generate(promptTokens, { maxTokens: TOKENS }).result;
  const plain = await nodeLlamaCppGenerate({ modelPath: path, promptTokens, threads: THREADS, maxTokens: TOKENS });

  // a reference's text as llama-speculative-simple prints it: the pieces after the prompt's,
  // special tokens spelled out (stories260K generates BOS tokens: "<s>")
  const promptText = ours.detokenize(promptTokens, { special: true });
  const reference = (tokens: readonly number[]): Reference => {
    const full = ours.detokenize([...promptTokens, ...tokens], { special: true });
    if (!full.startsWith(promptText)) throw new Error('detokenizing the prompt alone and with the generation disagree');
    return { tokens, text: full.slice(promptText.length) };
  };
  const nlcRef = reference(plain.tokens);
  const ourRef = reference(mine.tokens);
  process.stderr.write(`[peers-smoke]   prompt ${promptTokens.length} tokens; node-llama-cpp plain: ${JSON.stringify(nlcRef.text.slice(0, 160))}...\n`);

  const rows: Row[] = [];
  const add = (peer: string, out: Output, r: { tokens?: number; tokensPerSecond: number; drafted?: number; accepted?: number }) =>
    rows.push({
      model: label,
      peer,
      tokens: r.tokens ?? '',
      tokensPerSecond: r.tokensPerSecond,
      drafted: r.drafted,
      accepted: r.accepted,
      sameAsNodeLlamaCpp: agreement(out, nlcRef),
      sameAsOurs: agreement(out, ourRef),
    });

  // our timings: the first token comes from the prompt's batch, so 128 tokens over 127 decodes (the
  // peers here time 128 decodes: the prompt's last token is one of them)
  add('layerskip plain (ours)', { tokens: mine.tokens }, { tokens: mine.tokens.length, tokensPerSecond: mine.timings.tokensPerSecond });

  const bench = (depth: number, attention: PeerAttention = {}) => llamaBenchTokensPerSecond(path, THREADS, TOKENS, 3, { depth, ...attention });
  const d = promptTokens.length;
  add(`llama-bench tg${TOKENS}, empty context (F16 KV, mean of 3)`, null, { tokensPerSecond: await bench(0) });
  add(`llama-bench tg${TOKENS} @ d${d}, after a prompt-long context (F16 KV)`, null, { tokensPerSecond: await bench(d) });
  add(`llama-bench tg${TOKENS} @ d${d}, llama.cpp defaults (F16 KV, flash attention auto)`, null, { tokensPerSecond: await bench(d, PEER_DEFAULTS) });
  const native = await nativePlainAfterPrompt({ modelPath: path, prompt: PROMPT, promptTokens, threads: THREADS, maxTokens: TOKENS });
  add('llama-speculative-simple, drafting disabled (native plain after the prompt)', { text: native.text }, native);

  add('node-llama-cpp plain', { tokens: plain.tokens }, { tokens: plain.tokens.length, tokensPerSecond: plain.tokensPerSecond });
  const plainDefaults = await nodeLlamaCppGenerate({ modelPath: path, promptTokens, threads: THREADS, maxTokens: TOKENS, ...PEER_DEFAULTS });
  add(
    'node-llama-cpp plain, its defaults (F16 KV, flash attention auto)',
    { tokens: plainDefaults.tokens },
    { tokens: plainDefaults.tokens.length, tokensPerSecond: plainDefaults.tokensPerSecond },
  );

  for (const specType of ['ngram-simple', 'ngram-mod'] as const) {
    const r = await ngramSpeculative({ modelPath: path, prompt: PROMPT, promptTokens, threads: THREADS, maxTokens: TOKENS, specType });
    add(`llama-speculative-simple ${specType} (its defaults)`, { text: r.text }, r);
  }

  const lookup = await nodeLlamaCppGenerate({ modelPath: path, promptTokens, threads: THREADS, maxTokens: TOKENS, lookup: {} });
  const p = lookup.predictions;
  add(
    'node-llama-cpp InputLookupTokenPredictor (its defaults)',
    { tokens: lookup.tokens },
    {
      tokens: lookup.tokens.length,
      tokensPerSecond: lookup.tokensPerSecond,
      drafted: p.validated + p.refuted,
      accepted: p.validated,
    },
  );

  ctx.dispose();
  ours.dispose();
  return rows;
}

const rows: Row[] = [];
for (const m of MODELS) rows.push(...(await runModel(m.label, m.path)));
await disposeNodeLlamaCpp();

const fmt = (v: number | undefined, d = 0) => (v === undefined ? '' : v.toFixed(d));
console.log(`\npeers smoke: ${THREADS} thread, ${TOKENS} tokens, greedy, node ${process.version}\n`);
console.log('| model | peer | tokens | tokens/s | drafted | accepted | same greedy output as node-llama-cpp plain | same as layerskip plain |');
console.log('|---|---|---:|---:|---:|---:|---|---|');
for (const r of rows) {
  console.log(
    `| ${r.model} | ${r.peer} | ${r.tokens} | ${fmt(r.tokensPerSecond, 1)} | ${fmt(r.drafted)} | ${fmt(r.accepted)} | ${r.sameAsNodeLlamaCpp} | ${r.sameAsOurs} |`,
  );
}
