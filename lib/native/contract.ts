// The addon's contract: every function, option and result the native module exposes, as
// TypeScript types. The public API's types derive from these; `native.ts` loads the binary.

export interface NativeModelInfo {
  architecture: string;
  name: string;
  description: string;
  layerCount: number;
  embeddingSize: number;
  headCount: number;
  headCountKv: number;
  vocabularySize: number;
  trainContextLength: number;
  /** The attention window of a sliding-window model's windowed layers; 0 for models without one. */
  slidingWindow: number;
  parameterCount: number;
  sizeBytes: number;
  specialTokens: { bos: number; eos: number; eot: number; addBos: boolean };
  chatTemplate: string | null;
}

export interface NativeModel {
  info(): NativeModelInfo;
  tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array;
  /** The same on the libuv pool (long texts); the text may be given as its UTF-8 bytes. */
  tokenizeAsync(text: string | Uint8Array, addSpecial: boolean, parseSpecial: boolean): Promise<Int32Array>;
  detokenize(tokens: Int32Array, special: boolean): string;
  tokenPiece(token: number, special: boolean): Uint8Array;
  isEog(token: number): boolean;
  /** The device of each layer and of the output head ("CPU", or an RPC device with its endpoint). */
  layerDevices(): { layers: string[]; output: string };
  dispose(): void;
  readonly disposed: boolean;
}

/** One layer-range decode (`context.decodeLayers()` takes the same with tokens as any number array). */
export interface NativeDecodeOptions {
  /** Tokens, for a range that starts at layer 0. */
  tokens?: Int32Array;
  /**
   * Layer-start hidden states (rows of the embedding size) for a range that starts above 0; default:
   * the drafts' cached states. Without pending drafts they are a split decode at the next position:
   * layers [start, N) of tokens whose layers [0, start) ran in another context (a draft context).
   */
  hidden?: Float32Array;
  /** With cached hidden states: how many pending drafts to verify (default all). */
  count?: number;
  /** First position (default: the next position, or the first unverified draft for a verification). */
  position?: number;
  /** Layers [start, end) to run (default all). start must be 0 or end must be the layer count. */
  layers?: [number, number];
  /** Which tokens produce logits (default 'last'). */
  outputs?: 'last' | 'all' | 'none';
  /** Return the logits rows (default false: only the argmax of each row). */
  logits?: boolean;
  /** Return each output row's top probability (softmax maximum). */
  probs?: boolean;
  /** Return the hidden states (residual stream, before the final norm) at layer `end` of every token; for end = N only with outputs 'all'. */
  returnHidden?: boolean;
  /** The sequence (default 0; a context has `sequences` of them, each with its own positions). */
  sequence?: number;
}

/** One sequence's part of a decodeMany batch: a full-model token decode at its next position. */
export interface NativeManyEntry {
  sequence: number;
  tokens: Int32Array;
  outputs?: 'last' | 'all' | 'none';
  logits?: boolean;
}

export interface NativeDecodeResult {
  argmax: Int32Array;
  /** Time the call spent in the addon's worker thread (ms): the rest of its wall time is hand-off. */
  nativeMs?: number;
  maxProb?: Float32Array;
  logits?: Float32Array;
  hidden?: Float32Array;
}

export interface NativeContextState {
  /** KV cells of the context, shared by its sequences. */
  contextSize: number;
  batchSize: number;
  sequences: number;
  /** Cells in use, all sequences together. */
  cellsUsed: number;
  nextPosition: number;
  verifiedPosition: number;
  draftLayer: number;
  busy: boolean;
  disposed: boolean;
}

/** One round's early-exit drafting in one call (the addon runs the token-to-token loop). */
export interface NativeDraftOptions {
  /**
   * The token to feed first (the newest token, not yet in the KV cache). Omitted only with a
   * `prefix` that continues pending drafts at this layer whose last one is already decoded.
   */
  token?: number;
  /** Exit layer E: drafts come from layers [0, E). */
  layer: number;
  maxTokens: number;
  /** Stop when a draft after the first has a top probability below this (that draft is dropped). */
  minProbability?: number;
  /** Also run the last draft through layers [0, E) (unless it ends the generation), for a bonus row. */
  finish?: boolean;
  /** 0: argmax drafts; > 0: sample softmax(logits / T) with one of `uniforms` per draft. */
  temperature?: number;
  uniforms?: Float64Array;
  /** Return the layer-`layer` hidden states of the tokens this call decoded (`token`, then the drafts it fed back). */
  returnHidden?: boolean;
  /**
   * Forced drafts after `token` (a context lookup's, which early exit continues): `token` and these
   * go through layers [0, E) in one batch and drafting continues after them. `tokens` of the result
   * holds only the drafts after the prefix, and `maxTokens` may be 0; draft() alone (not draftMany).
   */
  prefix?: Int32Array;
  /** The sequence (default 0). */
  sequence?: number;
}

/** decodeRun: `token` at the next position, then the argmax fed back, up to maxTokens tokens. */
export interface NativeRunOptions {
  token: number;
  maxTokens: number;
  /** Tokens that end the run after being produced, like end-of-generation tokens. */
  stopTokens?: Int32Array;
  /**
   * End the run after a produced token whose n-gram (with the n - 1 tokens before it) is marked in
   * `filter` (lib/decoding/ngram-filter.ts, whose hash the addon repeats) or was produced earlier in
   * the run. `history`: the n - 1 tokens before the first produced one (`token` last).
   */
  repeat?: { filter: Uint8Array; n: number; history: Int32Array };
  /**
   * Free rounds inside the run (not with `repeat`), from a context lookup, a prediction or both.
   * Context lookup: at each step, the longest n-gram (8, 4, 2 or 1 tokens) ending with the newest
   * token that occurred earlier in `context` (the sequence's tokens, `token` last; the addon keeps
   * its index of them between calls), extended backwards to a match of m tokens (up to 64), proposes
   * what followed that occurrence. Prediction: the caller's prediction from where the output stands
   * in it (PredictionDrafts' rules, native/prediction-cursor.h), m the tokens in a row that followed
   * it. Each source's `policy` chooses how many of its drafts to verify with every layer in one batch
   * (neither: a plain step), as the TypeScript loop chooses (native/lookup-policy.h); of two, the
   * drafts with more tokens per ms. Each round is counted into its source's policy. `force`: the
   * first round's drafts whatever the policy (a probe, from the source whose first draft is
   * likeliest accepted). At most `maxRounds` rounds (0 or absent: no limit). `runTokens`: the run
   * ends once it produced that many tokens, its last round passing them up to `maxTokens` (0 or
   * absent: `maxTokens`).
   */
  lookup?: {
    context?: Int32Array;
    policy?: NativeLookupPolicy;
    prediction?: NativePredictionState & { policy: NativeLookupPolicy };
    force?: number;
    maxRounds?: number;
    runTokens?: number;
  };
  /**
   * Early-exit rounds inside the run (not with `repeat`; the sequence's pending drafts must be
   * none): each drafts up to `draftTokens` tokens with layers [0, layer) and the context's draft
   * head, stopping early at a draft whose top probability is below `minProbability` (not the
   * first), verifies them from their cached layer-E states, and keeps the agreeing prefix and the
   * full model's next token. Where no draft fits in maxTokens, a plain step. With `lookup`, a free
   * round is taken where its drafts yield more tokens per ms than early-exit rounds, at `rate`
   * (tokens per ms; 0 or absent: unmeasured, a plain step's rate until a round measures it) and
   * then as the call's rounds measure it. `runTokens` as lookup's (with lookup, lookup's applies).
   */
  earlyExit?: { layer: number; draftTokens: number; minProbability?: number; rate?: number; runTokens?: number };
  sequence?: number;
}

/** Where the output stands in a prediction (PredictionDrafts.addonState()). */
export interface NativePredictionState {
  tokens: Int32Array;
  /** Where the next output token is expected (-1: unaligned). */
  cursor: number;
  /** The furthest position agreed with so far. */
  agreed: number;
  /** Output tokens in a row that followed the prediction. */
  run: number;
  /** The newest output tokens (up to 8). */
  recent: Int32Array;
}

/** decodeRun's lookup policy: FreeAcceptance's and FreeRoundCost's addonState(), and the most drafts of a round. */
export interface NativeLookupPolicy {
  counts: Float64Array;
  priors: Float64Array;
  priorWeight: number;
  decay: number;
  ageing: number;
  roundBase: number;
  roundRow: number;
  /**
   * A round's cost by its rows (index: rows, 0 to 65) where measured often enough, the switch
   * included; 0: the line roundBase + roundRow * rows applies (absent: the line everywhere).
   */
  roundCosts?: Float64Array;
  /** A plain step; it and the costs above are at position 0. */
  plainMs: number;
  /**
   * What a plain step and each row of a round cost more a position further on (ms; absent: 0): the
   * addon reads every cost at the position the round or step would decode at.
   */
  stepSlope?: number;
  /** How much faster than a plain step a free round must be expected to run (absent: 1); not against early exit. */
  plainMargin?: number;
  /**
   * The most drafts the measured round sizes allow (0: no limit); after a round of r rows the addon
   * raises it to 2r - 1, as FreeRoundCost's largest round raises it in the TypeScript loop.
   */
  limit: number;
  maxDrafts: number;
}

export interface NativeRunResult {
  /** The tokens produced; all but the last were also decoded (the last is the next one to feed). */
  tokens: Int32Array;
  nativeMs: number;
  /**
   * The first step's part of nativeMs. After a decode of another shape (a verification of several
   * rows) the first step may build and allocate its graph again (unless one of the graphs patches/0020
   * keeps fits), and its caches are cold, so it costs more than the rest.
   */
  firstStepMs?: number;
  /** The run ended at a repeated n-gram (`repeat`). */
  repeat?: boolean;
  /**
   * With `lookup` or `earlyExit`: per round, its source (0: the context lookup, 1: the prediction,
   * 2: early exit), match length (0 for early exit), drafts, accepted drafts, time (ms) and the
   * tokens produced before it.
   */
  roundSource?: Int32Array;
  roundMatch?: Int32Array;
  roundDrafts?: Int32Array;
  roundAccepted?: Int32Array;
  roundMs?: Float64Array;
  /** Each round's drafting part of roundMs (0 for a free round). */
  roundDraftMs?: Float64Array;
  roundAt?: Int32Array;
  /**
   * With `lookup` or `earlyExit`: what the policies counted, in order, 5 entries each: kind (0: a round, after
   * which every source's counts age; 1: a declined draft checked against the output), source (as in
   * roundSource), match, drafts, accepted.
   */
  observed?: Int32Array;
  /** With `earlyExit`: the tokens per ms of its rounds at the call's end (as `earlyExit.rate`). */
  earlyRate?: number;
  /** With `lookup` or `earlyExit`: the plain steps of the run that did not follow a round, and their time (ms). */
  plainSteps?: number;
  plainMs?: number;
  /** With `lookup` or `earlyExit`: the plain steps right after a round (each builds its graph again), and their time. */
  switchSteps?: number;
  switchMs?: number;
}

export interface NativeDraftResult {
  tokens: Int32Array;
  maxProb: Float32Array;
  /** With temperature > 0: each draft's logits row (n_vocab wide; -Infinity outside a draft vocabulary). */
  logits?: Float32Array;
  /** The last draft's layers [0, E) are in the KV cache. */
  lastDecoded: boolean;
  nativeMs: number;
  /** With returnHidden: one row per decoded token (tokens.length rows, one more when lastDecoded). */
  hidden?: Float32Array;
}

/** The early exit's draft head as the addon installs it (every part optional; none removes the head). */
export interface NativeDraftHead {
  /** n_embd x n_embd, row-major: h' = W·h (+ bias). */
  adapter?: Float32Array;
  /** The ggml type the adapter is stored as: 0 F32, 1 F16 (default), 8 Q8_0. */
  adapterType?: number;
  bias?: Float32Array;
  /** The draft vocabulary and those tokens' LM-head rows in the output weight's GGUF type. */
  tokenIds?: Int32Array;
  rows?: Uint8Array;
  rowType?: number;
}

/**
 * The model's tail after the last layer, as the adapter trainer applies it (checked once in
 * TypeScript by `trainerTail()`, lib/draft-head/base-weights.ts): y = norm(x) · normWeight
 * (+ normBias), logits = head · y (+ outputBias) (· logitFactor), then finalSoftcap · tanh(logits / finalSoftcap).
 */
export interface NativeTrainTail {
  /** 'rms': x / sqrt(mean(x²) + eps); 'layer': LayerNorm, (x − mean) / sqrt(var + eps). */
  norm: 'rms' | 'layer';
  normWeight: Float32Array;
  /** LayerNorm only. */
  normBias?: Float32Array;
  eps: number;
  /** One value per row of `head` (the draft vocabulary's rows of `output.bias`). */
  outputBias?: Float32Array;
  logitFactor?: number;
  finalSoftcap?: number;
}

export interface NativeTrainOptions {
  hidden: Float32Array;
  targets: Float32Array;
  head: Float32Array;
  tail: NativeTrainTail;
  adapter: Float32Array;
  bias: Float32Array;
  embeddingSize: number;
  vocabularySize: number;
  steps: number;
  batchSize: number;
  learningRate: number;
  threads: number;
}

/** LayerSkip training of a loaded F32 model (patch 0008); see lib/tools/training/train.ts. */
export interface NativeTrainerOptions {
  contextSize: number;
  sequences: number;
  threads: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Build only the final layer's exit (training without the early-exit loss; early exits then read as NaN / -1). */
  finalExitOnly?: boolean;
  /** Evaluation only: no gradients or optimizer state (run() with train: false). */
  forwardOnly?: boolean;
}

/** One job of micro-batch steps; arrays hold every step's values back to back. */
export interface NativeTrainJob {
  steps: number;
  /** [steps][sequences][contextSize + 1] token ids: each row's inputs and their next tokens. */
  tokens: Int32Array;
  /** [steps][layers] exit weights (exit l follows layer l; the last is the final layer). */
  exitWeights: Float32Array;
  /** [steps][layers][sequences] keep factors: 0 where a sample skips a layer. */
  keep: Float32Array;
  learningRates: Float32Array;
  /** false: forward only (evaluation), no optimizer step. */
  train: boolean;
  /** Count each exit's top-1 hits against the next token and against the final layer. */
  counts: boolean;
}

export interface NativeTrainResult {
  /** Steps that ran (fewer than asked after abort()). */
  steps: number;
  /** [steps][layers] mean cross-entropy of each exit. */
  exitCe: Float32Array;
  exitCorrect?: Int32Array;
  exitAgree?: Int32Array;
  ms: number;
}

export interface NativeTrainer {
  run(job: NativeTrainJob, onStep?: (step: number, exitCe: Float32Array) => void): Promise<NativeTrainResult>;
  /** Writes the weights as trained so far with llama.cpp's saver (the caller renames the file into place). */
  save(path: string): Promise<void>;
  /** The running job stops after its current step. */
  abort(): void;
  dispose(): void;
}

/**
 * What one sequence can do: its own decodes and drafts, its positions, and stopping its own work.
 * The decoding loops take this; a scheduler's view of one sequence of a shared context implements
 * it and nothing context-wide (no batched calls, no clear of every sequence, no dispose).
 */
export interface NativeSequence {
  decode(options: NativeDecodeOptions): Promise<NativeDecodeResult>;
  draft(options: NativeDraftOptions): Promise<NativeDraftResult>;
  /**
   * draft() and the verification of every pending draft from its cached layer-E states in one call
   * (one hand-off per round instead of two). Absent on a scheduler's sequence views.
   */
  draftVerify?(options: NativeDraftOptions & { logits?: boolean }): Promise<{ draft: NativeDraftResult; verification: NativeDecodeResult }>;
  /**
   * Plain greedy steps in one call (the addon's own loop: one hand-off for several tokens). Absent
   * on a scheduler's sequence views, whose plain steps batch with other sequences instead.
   */
  decodeRun?(options: NativeRunOptions): Promise<NativeRunResult>;
  /** Installs the early exit's draft head (shared by the context's sequences: one at a time). */
  setDraftHead(head: NativeDraftHead): Promise<void>;
  removeFrom(position: number, sequence?: number): void;
  state(sequence?: number): NativeContextState;
  /** Stops the running decode or draft between graph nodes; it rejects with code ERR_ABORTED. No-op when idle. */
  abort(): void;
}

/** The addon's context: every sequence's operations, the batched ones, and the context-wide ones. */
export interface NativeContext extends NativeSequence {
  /** Full-model decodes of several sequences in one batch (each sequence once). */
  decodeMany(entries: readonly NativeManyEntry[]): Promise<{ results: { argmax: Int32Array; logits?: Float32Array }[]; nativeMs: number }>;
  /** Drafts of several sequences (one exit layer) in one loop: each step is one early-exit batch. */
  draftMany(entries: readonly NativeDraftOptions[]): Promise<NativeDraftResult[]>;
  /** Verifications of several sequences' pending drafts (one exit layer) in one batch. */
  verifyMany(options: {
    layer: number;
    entries: readonly { sequence: number; count?: number; logits?: boolean }[];
  }): Promise<{ results: { argmax: Int32Array; logits?: Float32Array }[]; nativeMs: number }>;
  /**
   * The pending drafts before `position` were verified by another context (a pipelined generation's
   * verifier): they stop being pending here and their cached states are dropped. Only for a
   * context that drafts and never runs the layers above the exit.
   */
  markVerified(position: number, sequence?: number): void;
  /** One sequence's cells, or all without an argument. */
  clear(sequence?: number): void;
  setThreads(threads: number, batchThreads?: number): void;
  /** A running operation is aborted and the context freed when it settles. */
  dispose(): void;
}

/** One state of llama.cpp's grammar sampler over a model's vocabulary (native/grammar.h). */
export interface NativeGrammar {
  /** Sets the values of the tokens the grammar forbids here to -Infinity (one row of n_vocab, in place). */
  mask(row: Float32Array): void;
  allows(token: number): boolean;
  /** Advances the state by `token`; a RangeError when the grammar forbids it. */
  accept(token: number): void;
  /** An independent copy of this state. */
  fork(): NativeGrammar;
  /** Frees the state now (else at garbage collection). */
  dispose(): void;
}

/** A model load in progress: cancel() makes `promise` reject with code ERR_ABORTED (and frees what was loaded). */
export interface NativeModelLoad {
  promise: Promise<NativeModel>;
  cancel(): void;
}

export interface NativeContextOptions {
  contextSize?: number;
  batchSize?: number;
  threads?: number;
  batchThreads?: number;
  flashAttention?: number;
  kvCacheType?: string;
  sequences?: number;
  swaFull?: boolean;
}

export interface NativeBinding {
  loadModel(
    path: string,
    options: {
      gpuLayers?: number;
      mmap?: boolean;
      checkTensors?: boolean;
      rpcServers?: string[];
      tensorSplit?: number[];
      outputLocal?: boolean;
      rpcTimeoutMs?: number;
      mainDevice?: number;
    },
  ): NativeModelLoad;
  /** Runs llama.cpp's RPC server on the calling thread; returns (throwing) only when it cannot start. */
  rpcServe(host: string, port: number, threads: number, cacheDir?: string, device?: string): never;
  createContext(model: NativeModel, options: NativeContextOptions): Promise<NativeContext>;
  /** A GBNF grammar's start state over the model's vocabulary; one that does not parse throws a SyntaxError. */
  createGrammar(model: NativeModel, grammar: string, root: string): NativeGrammar;
  /** GBNF for a JSON schema (JSON text), by llama.cpp's json-schema-to-grammar; a RangeError when unsupported. */
  jsonSchemaToGrammar(schema: string): string;
  quantizeModel(source: string, destination: string, type: string, threads?: number): Promise<void>;
  systemInfo(): { llamaSystemInfo: string; devices: { name: string; description: string }[]; gpuOffload: boolean };
  trainExitAdapter(
    options: NativeTrainOptions,
    onProgress?: (step: number, loss: number) => void,
  ): Promise<{ adapter: Float32Array; bias: Float32Array; losses: Float64Array }>;
  dequantizeRows(rows: Uint8Array, type: number, rowLength: number): Float32Array;
  /** Rejects with code ERR_TRAIN_MODEL for a model the trainer cannot train. */
  createTrainer(model: NativeModel, options: NativeTrainerOptions): Promise<NativeTrainer>;
  /** llama.cpp's built-in chat renderer (known templates only, no Jinja); throws ERR_UNSUPPORTED_TEMPLATE otherwise. */
  chatApplyBuiltinTemplate(template: string, messages: readonly { role: string; content: string }[], addAssistant: boolean): string;
}
