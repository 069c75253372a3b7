// The peers our context lookup is measured against, run the way their authors run them:
//  - llama.cpp's own binaries, built from the same patched tree with the same CPU flags
//    (node bench/build-peers.mjs): llama-bench (plain decoding, the native reference) and
//    llama-speculative-simple with its draft-model-free n-gram drafters (ngram-simple, ngram-mod);
//  - node-llama-cpp 3.21.1 (plain greedy, and with its InputLookupTokenPredictor).
// Every function checks that the peer did what was asked (token counts, parsed numbers) and throws
// otherwise: a silently broken peer would make a comparison meaningless.
//
// By default every peer runs with our contexts' attention settings (F32 KV cache, no flash
// attention: lib/runtime/context.ts), not with its own defaults (F16 KV, flash attention 'auto'): these
// change both the speed (on the 12-layer brown model, llama-speculative-simple decodes 1042 t/s
// with ours, 903 with F16 KV, 509 with flash attention) and the greedy tokens (with F16 KV the
// brown model's output leaves ours at token 55). `PeerAttention` chooses.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  getLlama,
  InputLookupTokenPredictor,
  LlamaLogLevel,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaModel,
  type Token,
} from 'node-llama-cpp';
import { ROOT } from './models.js';

const run = promisify(execFile);

export const PEERS_BIN = join(ROOT, 'build-peers', 'bin');

/**
 * Which build of llama.cpp's tools: 'patched' (build-peers/: the tree the addon uses, our patches
 * included, so the same kernels as ours) or 'upstream' (build-peers-upstream/: the pinned commit
 * without them, as llama.cpp's users build it; `node bench/build-peers.mjs --upstream`).
 */
export type PeerBuild = 'patched' | 'upstream';

const BUILD_DIRS: Record<PeerBuild, string> = { patched: 'build-peers', upstream: 'build-peers-upstream' };

export type KvCacheType = 'f32' | 'f16' | 'q8_0';

/** KV cache type and flash attention of a peer's context. */
export interface PeerAttention {
  /** Default 'f32', as our contexts (the peers' own default is 'f16'). */
  kvCacheType?: KvCacheType;
  /** Default false, as our contexts on CPU (the peers' own default is 'auto', on for these models). */
  flashAttention?: boolean | 'auto';
}

/** llama.cpp command-line flags for these settings (llama-bench spells them as common/arg.cpp does). */
function attentionArgs(a: PeerAttention): string[] {
  const kv = a.kvCacheType ?? 'f32';
  const fa = a.flashAttention === 'auto' ? 'auto' : a.flashAttention ? 'on' : 'off';
  return ['-ctk', kv, '-ctv', kv, '-fa', fa];
}

export type PeerName = 'llama-bench' | 'llama-speculative-simple' | 'llama-lookup';

/** Path of a built peer binary. */
export function peerBinary(name: PeerName, build: PeerBuild = 'patched'): string {
  const path = join(ROOT, BUILD_DIRS[build], 'bin', name);
  if (!existsSync(path)) {
    const command = build === 'upstream' ? 'node bench/build-peers.mjs --upstream' : 'node bench/build-peers.mjs';
    throw new Error(`${path} is missing: run \`${command}\` first (builds llama.cpp's peers from the pinned tree)`);
  }
  return path;
}

/** Whether the peers of a build are there (the upstream ones are optional in the benchmarks). */
export function peersBuilt(build: PeerBuild): boolean {
  return existsSync(join(ROOT, BUILD_DIRS[build], 'bin', 'llama-speculative-simple'));
}

/** Runs a peer binary; a failure carries the command and the end of its stderr. */
async function runPeer(name: PeerName, args: string[], build: PeerBuild = 'patched'): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run(peerBinary(name, build), args, { maxBuffer: 64 << 20, timeout: 30 * 60_000 });
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new Error(`${name} ${args.join(' ')} failed: ${err.message.split('\n')[0]}\n${(err.stderr ?? '').slice(-2000)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// llama-bench

interface LlamaBenchEntry {
  n_prompt: number;
  n_gen: number;
  n_depth: number;
  n_threads: number;
  avg_ts: number;
  samples_ts: number[];
}

/** llama-bench's KV cache: it has no F32 at this commit (its -ctk parser stops at f16), so F16 by default. */
export interface LlamaBenchOptions extends PeerAttention {
  /**
   * Tokens already in the context when generation starts (`-d`, default 0). Attention over them
   * costs: on the brown model tg128 runs ~1900 t/s from an empty context and ~700 t/s after 203
   * tokens, so give the prompt length to compare with a generation after a prompt.
   */
  depth?: number;
}

/**
 * Mean generation tokens/s of llama-bench's text-generation test (`-p 0 -n nTokens`): plain
 * batch-1 decoding, each of `repetitions` runs timed (after llama-bench's own warm-up run); the
 * mean of the per-run tokens/s, as llama-bench prints it. KV cache F16 (see LlamaBenchOptions):
 * for a plain native reference with our F32 KV cache, see nativePlainAfterPrompt.
 */
export async function llamaBenchTokensPerSecond(
  modelPath: string,
  threads: number,
  nTokens: number,
  repetitions: number,
  options: LlamaBenchOptions = {},
): Promise<number> {
  if (options.kvCacheType === 'f32') throw new Error('llama-bench cannot make an F32 KV cache at this llama.cpp commit');
  const depth = options.depth ?? 0;
  const attention = attentionArgs({ ...options, kvCacheType: options.kvCacheType ?? 'f16' });
  const args = [
    '-m',
    modelPath,
    '-t',
    String(threads),
    '-p',
    '0',
    '-n',
    String(nTokens),
    '-d',
    String(depth),
    '-r',
    String(repetitions),
    ...attention,
    '-o',
    'json',
  ];
  const { stdout } = await runPeer('llama-bench', args);
  let entries: LlamaBenchEntry[];
  try {
    entries = JSON.parse(stdout) as LlamaBenchEntry[];
  } catch {
    throw new Error(`llama-bench printed no JSON: ${stdout.slice(0, 500)}`);
  }
  const tg = entries.find((e) => e.n_prompt === 0 && e.n_gen === nTokens && e.n_depth === depth && e.n_threads === threads);
  if (!tg) throw new Error(`llama-bench: no tg${nTokens} @ d${depth} result at ${threads} threads in ${stdout.slice(0, 500)}`);
  if (tg.samples_ts.length !== repetitions || !(tg.avg_ts > 0) || !Number.isFinite(tg.avg_ts)) {
    throw new Error(`llama-bench: implausible tg${nTokens} result: ${JSON.stringify(tg)}`);
  }
  return tg.avg_ts;
}

// ---------------------------------------------------------------------------------------------
// llama-speculative-simple with n-gram drafting

export interface NgramSpeculativeOptions extends PeerAttention {
  modelPath: string;
  /**
   * Prompt text. llama-speculative-simple only takes text and tokenizes it with llama.cpp's
   * tokenizer, BOS added (add_special and parse_special on), as `model.tokenize(text)` does for
   * these models; pass `promptTokens` to have the count checked.
   */
  prompt: string;
  /** Our tokenization of `prompt` (BOS included): the peer must report the same number of tokens. */
  promptTokens?: readonly number[];
  threads: number;
  maxTokens: number;
  specType: 'ngram-simple' | 'ngram-mod';
  /** The tools' build (default 'patched'). */
  build?: PeerBuild;
  /** KV cells (default 2048, as our context's default for these models). */
  contextSize?: number;
  /** ngram-simple: look up the last `sizeN` tokens (default 12), draft up to `sizeM` after the match (default 48). */
  ngramSimple?: { sizeN?: number; sizeM?: number };
  /** ngram-mod: hash of the last `nMatch` tokens (default 24); drafts of `nMin`..`nMax` tokens (defaults 48, 64), none if shorter. */
  ngramMod?: { nMatch?: number; nMin?: number; nMax?: number };
}

export interface NgramSpeculativeResult {
  /** The generated text as the peer printed it (prompt excluded; an EOS is not printed). */
  text: string;
  /** Prompt tokens the peer reported. */
  promptTokens: number;
  /** Generated tokens the peer counted (may exceed maxTokens by a draft: see ngramSpeculative). */
  tokens: number;
  /** Generation time: from after the prompt (all but its last token) to the last token. */
  ms: number;
  tokensPerSecond: number;
  drafted: number;
  accepted: number;
  args: string[];
}

function draftArgs(o: NgramSpeculativeOptions): string[] {
  const args: string[] = [];
  const add = (flag: string, v: number | undefined) => v !== undefined && args.push(flag, String(v));
  if (o.specType === 'ngram-simple') {
    add('--spec-ngram-simple-size-n', o.ngramSimple?.sizeN);
    add('--spec-ngram-simple-size-m', o.ngramSimple?.sizeM);
  } else {
    add('--spec-ngram-mod-n-match', o.ngramMod?.nMatch);
    add('--spec-ngram-mod-n-min', o.ngramMod?.nMin);
    add('--spec-ngram-mod-n-max', o.ngramMod?.nMax);
  }
  return args;
}

function matchNumber(text: string, re: RegExp, what: string): number {
  const m = re.exec(text);
  if (!m) throw new Error(`llama-speculative-simple: no "${what}" line in its log:\n${text.slice(-2000)}`);
  return Number(m[1]);
}

/**
 * The generated text in llama-speculative-simple's stdout: "\n\n", the prompt's pieces (the BOS
 * as "<s>"), the generated pieces, then "\n\n\n\n". The pieces of an SPM prompt spell the prompt
 * text itself, so the generation starts right after its first occurrence.
 */
function generatedText(stdout: string, prompt: string): string {
  const start = stdout.indexOf(prompt);
  if (start < 0) throw new Error(`llama-speculative-simple: the prompt is not in its output:\n${stdout.slice(0, 1000)}`);
  return stdout.slice(start + prompt.length, -4); // runSpeculativeSimple checked the four newlines
}

/**
 * Runs llama-speculative-simple until its log arrives whole. Its logger is asynchronous and, at
 * this commit, never flushed at exit (common_log_main() leaks it on purpose: llama.cpp issue
 * 22142), so the last lines (the statistics) are sometimes lost. Its very last entry is the final
 * "\n\n" on stdout, after "\n\n" that ends the text: with those four newlines every earlier line
 * made it out.
 */
async function runSpeculativeSimple(args: string[], build: PeerBuild, attempts = 3): Promise<{ stdout: string; stderr: string }> {
  for (let i = 1; ; i++) {
    const out = await runPeer('llama-speculative-simple', args, build);
    if (out.stdout.endsWith('\n\n\n\n')) return out;
    if (i === attempts)
      throw new Error(
        `llama-speculative-simple: its log was cut short ${attempts} times (exit before the asynchronous logger flushed):\n${out.stderr.slice(-1000)}`,
      );
    process.stderr.write('[peers] llama-speculative-simple: log cut short at exit, running it again\n');
  }
}

/**
 * llama-speculative-simple, greedy, drafting with an n-gram lookup of the context (no draft
 * model: the ngram types need none). Greedy: `--temp 0` makes its temperature sampler keep only
 * the argmax (the samplers before it only cut the tail), and `--top-k 1` besides.
 *
 * Its loop stops once it has counted more than `-n` tokens, so `-n maxTokens-1` gives maxTokens
 * tokens with plain decoding; but a round whose draft budget reaches 0 is not capped at this
 * commit (a 0 limit means "none" to common_speculative_draft), so a long n-gram draft accepted
 * near the end can overshoot. The reported tokens/s counts what it generated.
 */
export async function ngramSpeculative(o: NgramSpeculativeOptions): Promise<NgramSpeculativeResult> {
  if (o.maxTokens < 2) throw new RangeError('ngramSpeculative: maxTokens must be at least 2');
  if (o.prompt.includes('\\')) throw new Error('ngramSpeculative: backslashes in the prompt are not passed through verbatim'); // see --no-escape
  const args = [
    '-m',
    o.modelPath,
    '-t',
    String(o.threads),
    '-tb',
    String(o.threads),
    '-c',
    String(o.contextSize ?? 2048),
    ...attentionArgs(o),
    '-n',
    String(o.maxTokens - 1),
    '--temp',
    '0',
    '--top-k',
    '1',
    '--seed',
    '1',
    '--no-escape', // the prompt is text, not a C string
    '--spec-type',
    o.specType,
    ...draftArgs(o),
    '-p',
    o.prompt,
  ];
  const { stdout, stderr } = await runSpeculativeSimple(args, o.build ?? 'patched');
  const promptTokens = matchNumber(stderr, /encoded\s+(\d+) tokens in/, 'encoded');
  const tokens = matchNumber(stderr, /decoded\s+(\d+) tokens in/, 'decoded');
  const tokensPerSecond = matchNumber(stderr, /decoded\s+\d+ tokens in\s+[\d.]+ seconds, speed:\s+([\d.]+) t\/s/, 'decoded speed');
  const drafted = matchNumber(stderr, /n_drafted\s*=\s*(\d+)/, 'n_drafted');
  const accepted = matchNumber(stderr, /n_accept\s*=\s*(\d+)/, 'n_accept');
  const text = generatedText(stdout, o.prompt);
  if (o.promptTokens && promptTokens !== o.promptTokens.length) {
    throw new Error(`llama-speculative-simple tokenized the prompt to ${promptTokens} tokens, we to ${o.promptTokens.length}: the prompts differ`);
  }
  if (tokens < 1 || accepted > drafted || !(tokensPerSecond > 0) || (tokens < o.maxTokens && text.length === 0)) {
    throw new Error(`llama-speculative-simple: implausible result (tokens ${tokens}, drafted ${drafted}, accepted ${accepted}, ${tokensPerSecond} t/s)`);
  }
  return { text, promptTokens, tokens, ms: (tokens / tokensPerSecond) * 1000, tokensPerSecond, drafted, accepted, args };
}

/**
 * Plain native decoding after the prompt, with any KV cache type: llama-speculative-simple with a
 * drafter that never fires (ngram-simple needs more than size-n + size-m + 1 tokens of history:
 * 1024 + 1 + 1), so every round decodes one token. llama-bench cannot stand in: no F32 KV cache,
 * no prompt. Same timing, output and checks as ngramSpeculative; throws if anything was drafted.
 */
export async function nativePlainAfterPrompt(o: Omit<NgramSpeculativeOptions, 'specType' | 'ngramSimple' | 'ngramMod'>): Promise<NgramSpeculativeResult> {
  const r = await ngramSpeculative({ ...o, specType: 'ngram-simple', ngramSimple: { sizeN: 1024, sizeM: 1 } });
  if (r.drafted !== 0) throw new Error(`nativePlainAfterPrompt: the disabled drafter drafted ${r.drafted} tokens (prompt + generation over 1026 tokens?)`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// node-llama-cpp

export interface NodeLlamaCppLookup {
  /** Most tokens one lookup predicts (node-llama-cpp's default 3). */
  maxPredictionLength?: number;
  /** Fewest tokens a prediction may have (default 1). */
  minPredictionLength?: number;
  /** Shortest match of the latest tokens in the prompt that counts (default 1). */
  minPatternLength?: number;
  /** Longest match considered (default 0: unlimited). */
  maxPatternLength?: number;
}

export interface NodeLlamaCppOptions extends PeerAttention {
  modelPath: string;
  /** Prompt token ids, BOS included (our tokenizer's output; node-llama-cpp's is the same llama.cpp tokenizer). */
  promptTokens: readonly number[];
  threads: number;
  maxTokens: number;
  /** Attach an InputLookupTokenPredictor that looks the latest tokens up in the prompt. */
  lookup?: NodeLlamaCppLookup;
  /** KV cells (default 2048). */
  contextSize?: number;
}

export interface NodeLlamaCppResult {
  tokens: number[];
  /**
   * Generation time: from after evaluating all prompt tokens but the last to the last generated
   * token, i.e. `tokens.length` decodes, as llama-speculative-simple times it.
   */
  ms: number;
  tokensPerSecond: number;
  /** sequence.tokenPredictions of this call (zeros without lookup). */
  predictions: { used: number; unused: number; validated: number; refuted: number };
}

interface SequenceEntry {
  context: LlamaContext;
  sequence: LlamaContextSequence;
  predictor?: InputLookupTokenPredictor;
}

/**
 * Loaded node-llama-cpp models and one single-sequence context per (model, threads, context
 * size, lookup settings): loading costs far more than a short generation. `disposeNodeLlamaCpp()`
 * frees them all.
 */
class NodeLlamaCppCache {
  private llama?: Promise<Llama>;
  private readonly models = new Map<string, Promise<LlamaModel>>();
  private readonly sequences = new Map<string, Promise<SequenceEntry>>();

  getLlama(): Promise<Llama> {
    this.llama ??= getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
    return this.llama;
  }

  model(path: string): Promise<LlamaModel> {
    let m = this.models.get(path);
    if (!m) {
      m = this.getLlama().then((llama) => llama.loadModel({ modelPath: path }));
      this.models.set(path, m);
    }
    return m;
  }

  sequence(o: NodeLlamaCppOptions): Promise<SequenceEntry> {
    const contextSize = o.contextSize ?? 2048;
    const kv = (o.kvCacheType ?? 'f32').toUpperCase() as 'F32' | 'F16' | 'Q8_0';
    const flashAttention = o.flashAttention ?? false;
    const key = JSON.stringify([o.modelPath, o.threads, contextSize, kv, flashAttention, o.lookup ?? null]);
    let s = this.sequences.get(key);
    if (!s) {
      s = (async () => {
        const model = await this.model(o.modelPath);
        const context = await model.createContext({
          contextSize,
          threads: o.threads,
          sequences: 1,
          flashAttention,
          experimentalKvCacheKeyType: kv,
          experimentalKvCacheValueType: kv,
        });
        const predictor = o.lookup
          ? new InputLookupTokenPredictor({
              patternLength: { min: o.lookup.minPatternLength, max: o.lookup.maxPatternLength },
              predictionLength: { min: o.lookup.minPredictionLength, max: o.lookup.maxPredictionLength },
            })
          : undefined;
        return { context, sequence: context.getSequence({ tokenPredictor: predictor }), predictor };
      })();
      this.sequences.set(key, s);
    }
    return s;
  }

  async dispose(): Promise<void> {
    for (const s of this.sequences.values()) await (await s).context.dispose();
    for (const m of this.models.values()) await (await m).dispose();
    this.sequences.clear();
    this.models.clear();
    this.llama = undefined;
  }
}

const nodeLlamaCpp = new NodeLlamaCppCache();

/** Frees every model and context nodeLlamaCppGenerate loaded. */
export function disposeNodeLlamaCpp(): Promise<void> {
  return nodeLlamaCpp.dispose();
}

/**
 * node-llama-cpp greedy generation (temperature 0: its greedy sampler) of up to maxTokens tokens
 * from these exact prompt tokens, stopping at an end-of-generation token; with `lookup`, drafted by
 * an InputLookupTokenPredictor over the prompt.
 *
 * The prompt's last token is evaluated apart from the rest, inside the timed part, so the time is
 * that of the decodes that produce the tokens (as llama-speculative-simple splits it). The
 * predictor only searches the tokens given to its updateInputTokens() (LlamaCompletion and
 * LlamaChat call it; a bare sequence.evaluate does not), so this passes the whole prompt there.
 */
export async function nodeLlamaCppGenerate(o: NodeLlamaCppOptions): Promise<NodeLlamaCppResult> {
  if (o.promptTokens.length < 2) throw new RangeError('nodeLlamaCppGenerate: the prompt needs at least 2 tokens');
  const model = await nodeLlamaCpp.model(o.modelPath);
  const { sequence, predictor } = await nodeLlamaCpp.sequence(o);
  const prompt = o.promptTokens.slice() as Token[];

  await sequence.clearHistory();
  predictor?.updateInputTokens(prompt);
  const before = sequence.tokenPredictions;
  await sequence.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1));

  const tokens: number[] = [];
  const t0 = performance.now();
  for await (const t of sequence.evaluate(prompt.slice(-1), { temperature: 0 })) {
    if (model.isEogToken(t)) break;
    tokens.push(t);
    if (tokens.length >= o.maxTokens) break;
  }
  const ms = performance.now() - t0;

  const after = sequence.tokenPredictions;
  const predictions = {
    used: after.used - before.used,
    unused: after.unused - before.unused,
    validated: after.validated - before.validated,
    refuted: after.refuted - before.refuted,
  };
  if (tokens.length === 0 || tokens.length > o.maxTokens) throw new Error(`node-llama-cpp generated ${tokens.length} tokens (asked for ${o.maxTokens})`);
  if (o.lookup && predictions.validated + predictions.refuted === 0) {
    process.stderr.write('[peers] note: node-llama-cpp InputLookupTokenPredictor predicted nothing\n');
  }
  return { tokens, ms, tokensPerSecond: (tokens.length / ms) * 1000, predictions };
}
