// What a Context takes: its options, generate()'s and decodeLayers()'s, their key tables for the
// strict checks, and the thread-count rules. Resolving them is TypeScript's job alone; the addon
// trusts what it is given (native/context.h keeps MAX_THREADS only as a guard).
import { availableParallelism } from 'node:os';
import type { SelfSpeculativeOptions } from '../decoding/self-speculative.js';
import type { FreeDraftChoice, LookupOptions } from '../decoding/draft-sources.js';
import type { SamplingOptions } from '../decoding/sampling.js';
import type { NativeDecodeOptions, NativeDecodeResult } from '../native/binding.js';
import { checkInteger } from '../native/errors.js';
import type { KeysOf } from '../util/option-keys.js';

export interface ContextOptions {
  /** KV cache size in tokens (default: min(2048, the model's training context)). */
  contextSize?: number;
  /** Most tokens one decode call takes (default min(512, contextSize)). */
  batchSize?: number;
  /** Threads for single-token decoding (default: `defaultThreads(model size)`). */
  threads?: number;
  /** Threads for prompt batches (default: `threads`). */
  batchThreads?: number;
  /**
   * Allow more threads than the machine has cores (default false: an error). Oversubscribed ggml
   * threads wait on each other: 16 threads on 2 cores took 23 s for 2 tokens, 1 thread 3 ms.
   */
  allowMoreThreadsThanCores?: boolean;
  /**
   * Flash attention: true, false or 'auto'. Default: false on CPU-only builds (llama.cpp's CPU
   * flash attention rounds Q to F16 and ran 2.7x slower on stories260K), 'auto' with a GPU.
   */
  flashAttention?: boolean | 'auto';
  /**
   * KV cache element type. Default 'f32': with llama.cpp's F16 cache, a batched verification and a
   * one-token decode round differently (~1e-4 relative), enough to flip near-ties, so greedy
   * self-speculative output could differ from plain greedy output (measured: 1B-shape Q8_0, a
   * 0.005 logit margin flipped at token 17). F32 costs 2x KV memory and no measurable speed here.
   */
  kvCacheType?: 'f16' | 'f32' | 'q8_0';
  /**
   * Independent sequences in this context (default 1, at most 64), each generating with its own
   * positions: `context.sequence(i)`. They share the context's KV cells (`contextSize` in all), and
   * the addon batches their concurrent full-model steps into one decode.
   */
  sequences?: number;
  /**
   * The KV cache of a sliding-window model's windowed layers (Gemma 2/3, gpt-oss): 'full' (default,
   * llama.cpp's default) keeps every position, 'window' keeps the window plus one batch, rounded
   * up to 256 cells, and saves memory on long contexts. Self-speculative decoding needs 'full': the
   * windowed cache reuses the cells that the newest draft no longer attends to, though verifying
   * the earlier drafts still needs them. Other models ignore it.
   */
  slidingWindowCache?: 'full' | 'window';
}

/** @internal ggml's own limit (GGML_MAX_N_THREADS); above it llama.cpp aborts. */
export const MAX_THREADS = 512;

/** @internal A thread count in [1, cores] (or up to ggml's limit when oversubscribing is allowed). */
export function checkThreads(name: string, value: unknown, oversubscribe: boolean): number {
  const n = checkInteger(name, value, 1, MAX_THREADS);
  const cores = availableParallelism();
  if (n > cores && !oversubscribe) {
    throw new RangeError(
      `${name}: ${n} is more than this machine's ${cores} cores; it would run slower than ${cores} ` +
        '(threads wait on each other). Pass allowMoreThreadsThanCores: true to use it anyway',
    );
  }
  return n;
}

/**
 * The default thread count for a model: 1 for tiny models (under 64 MB of weights), where thread
 * hand-offs cost more than the compute (stories260K: 3226 tokens/s with 1 thread, 1455 with 2, on
 * 2 cores), otherwise every core up to 4 (100M Q8_0: 153 tokens/s with 1, 203 with 2). Each
 * context keeps a persistent ggml thread pool whose workers sleep between decodes; with OpenMP, as
 * node-llama-cpp builds llama.cpp, 2 threads ran 5-45x slower than 1 on 2 cores.
 */
export function defaultThreads(modelBytes = Infinity): number {
  if (modelBytes < 64 * 1024 * 1024) return 1;
  return Math.max(1, Math.min(4, availableParallelism()));
}

/** `decodeLayers()` options: the addon's, with tokens as any array of token ids. */
export type DecodeLayersOptions = Omit<NativeDecodeOptions, 'tokens'> & {
  /** Tokens, for a range that starts at layer 0. */
  tokens?: readonly number[] | Int32Array;
};

export type DecodeLayersResult = NativeDecodeResult;

export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to generate (default 256). */
  maxTokens?: number;
  /** Stop when the text contains one of these (the stop string is not returned). */
  stop?: readonly string[];
  /** Token ids that end the generation as the model's end-of-generation tokens do (not returned). */
  stopTokens?: readonly number[];
  signal?: AbortSignal;
  /** Add the model's BOS token before the prompt (default: the model's setting). */
  addBos?: boolean;
  /** Draft with the first layers, verify with the rest (LayerSkip); output is unchanged. */
  selfSpeculative?: SelfSpeculativeOptions;
  /**
   * Context lookup drafts (decoding/context-lookup.ts): where the newest tokens occurred before in
   * the prompt or the generated text (in a chat, every earlier turn), a round drafts what followed
   * them there at no draft cost and verifies it with all layers, when its measured acceptance says
   * that pays. Alone or with selfSpeculative (an early-exit draft can then continue a lookup draft).
   * Output is unchanged: greedy equals plain greedy, sampling keeps the model's distribution.
   */
  lookup?: boolean | LookupOptions;
  /**
   * The expected output ("predicted outputs"), for edits that rewrite most of a text unchanged: rounds
   * draft the prediction's next tokens, re-aligning after the output departs from it. Output is
   * unchanged; only speed depends on how well it predicts.
   */
  prediction?: string | readonly number[];
  /**
   * A GBNF grammar (llama.cpp's format, start symbol `root`) the output must follow: every row of
   * the full model is masked to the tokens it allows, with plain and self-speculative decoding
   * alike (drafts it forbids are cut before verification). Greedy output equals plain greedy
   * output under the same grammar; sampling keeps the masked distribution exactly.
   */
  grammar?: string;
  /** A JSON schema the output must follow (an object, or its JSON text), as GBNF by llama.cpp's json-schema-to-grammar. */
  jsonSchema?: object | string;
  /** @internal tests of the accept rule (decoding/draft-sources.ts, ResolvedFreeDrafts.choice). */
  freeDraftChoice?: FreeDraftChoice;
}

/** @internal */
export const CONTEXT_KEYS = {
  contextSize: true,
  batchSize: true,
  threads: true,
  batchThreads: true,
  allowMoreThreadsThanCores: true,
  flashAttention: true,
  kvCacheType: true,
  sequences: true,
  slidingWindowCache: true,
} as const satisfies KeysOf<ContextOptions>;
/** @internal */
export const GENERATE_KEYS = {
  temperature: true,
  topK: true,
  topP: true,
  minP: true,
  seed: true,
  repeatPenalty: true,
  presencePenalty: true,
  frequencyPenalty: true,
  penaltyLastN: true,
  maxTokens: true,
  stop: true,
  stopTokens: true,
  signal: true,
  addBos: true,
  selfSpeculative: true,
  lookup: true,
  prediction: true,
  grammar: true,
  jsonSchema: true,
  freeDraftChoice: true,
} as const satisfies KeysOf<GenerateOptions>;
/** @internal */
export const DECODE_LAYERS_KEYS = {
  tokens: true,
  hidden: true,
  count: true,
  position: true,
  layers: true,
  outputs: true,
  logits: true,
  probs: true,
  returnHidden: true,
  sequence: true,
} as const satisfies KeysOf<DecodeLayersOptions>;
