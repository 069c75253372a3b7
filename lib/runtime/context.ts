import { DecodeSession } from '../decoding/session.js';
import { selfSpeculativeLoop, resolveSelfSpeculative } from '../decoding/self-speculative.js';
import { GenerationMemory } from '../decoding/generation-memory.js';
import { BusyError, DisposedError, abortReason, checkBoolean, checkEnum, checkInteger } from '../native/errors.js';
import { Generation, type GenerationChunk, type GenerationResult } from './generation.js';
import { native, type NativeContext, type NativeContextOptions, type NativeContextState, type NativeSequence } from '../native/binding.js';
import { pipelinedLoop, prefillDrafter } from '../decoding/pipelined.js';
import { resolveSampling } from '../decoding/sampling.js';
import type { Model } from './model.js';
import type { DraftHead } from '../draft-head/draft-head.js';
import { nativeDraftHead, resolveDraftHead } from '../draft-head/install.js';
import { NativeScheduler } from '../decoding/scheduler.js';
import { resolveFreeDrafts } from '../decoding/draft-sources.js';
import { assertLayerRanges } from '../model-file/architectures.js';
import { checkOptionKeys, type KeysOf } from '../util/option-keys.js';
import { checkPromptFits, decodePrompt, type GenerationPlan, leaveConsistent, reusePrefix, type SequenceCore } from './sequence-core.js';
import { GrammarState, resolveGrammar } from '../decoding/grammar.js';
import {
  CONTEXT_KEYS,
  type ContextOptions,
  checkThreads,
  defaultThreads,
  DECODE_LAYERS_KEYS,
  type DecodeLayersOptions,
  type DecodeLayersResult,
  GENERATE_KEYS,
  type GenerateOptions,
} from './context-options.js';

export type { ContextOptions, DecodeLayersOptions, DecodeLayersResult, GenerateOptions } from './context-options.js';
export { defaultThreads } from './context-options.js';
import { withNativeErrors } from '../native/error-codes.js';

/** Which draft head a native context has installed (null: the model's own exit). */
interface HeadSlot {
  head: DraftHead | null;
}

/** Prompts longer than this (in UTF-16 units) are tokenized on the libuv pool instead of the main thread. */
const LONG_PROMPT_CHARS = 1 << 16;

/** Every method of the addon's context (all of them map addon errors to this library's classes). */
const NATIVE_CONTEXT_METHODS = {
  decode: true,
  decodeMany: true,
  draft: true,
  draftMany: true,
  draftVerify: true,
  verifyMany: true,
  decodeRun: true,
  setDraftHead: true,
  removeFrom: true,
  markVerified: true,
  clear: true,
  setThreads: true,
  state: true,
  abort: true,
  dispose: true,
} as const satisfies KeysOf<NativeContext>;

export class Context {
  private running: string | null = null;
  private isDisposed = false;
  private readonly disposeHooks: (() => void)[] = [];
  private readonly cores: SequenceCore[];
  private readonly handles = new Map<number, Sequence>();
  /** The draft head the addon has installed for early exits (null: the model's own exit). */
  private readonly installed: HeadSlot = { head: null };
  /** The draft-only context of overlapped generations (created on first use), and its draft head. */
  private drafter: (HeadSlot & { handle: NativeContext }) | null = null;

  private constructor(
    readonly model: Model,
    /** @internal */ readonly handle: NativeContext,
    readonly threads: number,
    sequences: number,
    /** What the addon created this context with (an overlapped generation's drafter gets the same). */
    private readonly nativeOptions: NativeContextOptions,
  ) {
    // one sequence talks to the addon directly; several go through the batching scheduler
    const scheduler = sequences > 1 ? new NativeScheduler(handle, model.layerCount) : null;
    this.cores = Array.from({ length: sequences }, (_, index) => ({
      index,
      view: scheduler ? scheduler.view(index) : handle,
      prefix: [],
      running: null,
      head: undefined,
      memory: new GenerationMemory(),
    }));
  }

  /** How many sequences this context has. */
  get sequences(): number {
    return this.cores.length;
  }

  /** The handle of sequence `index` (0 is the one context.generate uses). */
  sequence(index: number): Sequence {
    this.assertLive('sequence');
    checkInteger('sequence index', index, 0, this.cores.length - 1);
    let h = this.handles.get(index);
    if (!h) this.handles.set(index, (h = new Sequence(this, index)));
    return h;
  }

  /** A sequence with no generation running; BusyError when all are generating. */
  getSequence(): Sequence {
    this.assertLive('getSequence');
    const free = this.cores.find((c) => c.running === null);
    if (!free) throw new BusyError(`getSequence (all ${this.cores.length} sequences are generating)`);
    return this.sequence(free.index);
  }

  /** @internal */
  static async create(model: Model, o: ContextOptions): Promise<Context> {
    checkOptionKeys('createContext options', o, CONTEXT_KEYS);
    const info = model.info;
    const contextSize = checkInteger('contextSize', o.contextSize ?? Math.min(2048, info.trainContextLength || 2048), 1, 1 << 24);
    const batchSize = checkInteger('batchSize', o.batchSize ?? Math.min(512, contextSize), 1, 1 << 16);
    const oversubscribe = checkBoolean('allowMoreThreadsThanCores', o.allowMoreThreadsThanCores) ?? false;
    const threads = checkThreads('threads', o.threads ?? defaultThreads(info.sizeBytes), oversubscribe);
    const batchThreads = checkThreads('batchThreads', o.batchThreads ?? threads, oversubscribe);
    const kvCacheType = checkEnum('kvCacheType', o.kvCacheType, ['f32', 'f16', 'q8_0'] as const) ?? 'f32';
    const flash = checkEnum('flashAttention', o.flashAttention, [true, false, 'auto'] as const) ?? (native().systemInfo().gpuOffload ? 'auto' : false);
    const fa = flash === 'auto' ? -1 : flash ? 1 : 0;
    const sequences = checkInteger('sequences', o.sequences ?? 1, 1, 64);
    const swaFull = (checkEnum('slidingWindowCache', o.slidingWindowCache, ['full', 'window'] as const) ?? 'full') === 'full';
    const nativeOptions = { contextSize, batchSize, threads, batchThreads, flashAttention: fa, kvCacheType, sequences, swaFull };
    const handle = withNativeErrors(await native().createContext(model.handle, nativeOptions), NATIVE_CONTEXT_METHODS);
    return new Context(model, handle, threads, sequences, nativeOptions);
  }

  get disposed(): boolean {
    return this.isDisposed;
  }

  /** Positions, draft state and sizes. */
  state(): NativeContextState {
    this.assertLive('state');
    return this.handle.state();
  }

  get contextSize(): number {
    return this.state().contextSize;
  }

  private assertLive(what: string): void {
    if (this.isDisposed) throw new DisposedError(`${what} (context)`);
  }

  /** A context-wide operation: nothing else may run on any sequence meanwhile. */
  private acquire(what: string): () => void {
    this.assertLive(what);
    const busy = this.running ?? this.cores.find((c) => c.running)?.running;
    if (busy) throw new BusyError(`${what} (running: ${busy})`);
    this.running = what;
    return () => {
      this.running = null;
    };
  }

  /** An operation on one sequence: others may run on the other sequences. */
  private acquireSequence(core: SequenceCore, what: string): () => void {
    this.assertLive(what);
    const busy = this.running ?? core.running;
    if (busy) throw new BusyError(`${what} (running${this.cores.length > 1 ? ` on sequence ${core.index}` : ''}: ${busy})`);
    core.running = what;
    return () => {
      core.running = null;
      core.head = undefined;
    };
  }

  /**
   * Low-level: decode tokens through layers [start, end), or verify pending early-exit drafts with
   * layers [E, N) from their cached layer-E hidden states. See the README's "Layer-range decoding".
   */
  async decodeLayers(options: DecodeLayersOptions): Promise<DecodeLayersResult> {
    checkOptionKeys('decodeLayers options', options, DECODE_LAYERS_KEYS);
    const release = this.acquire('decodeLayers');
    const sequence = options.sequence === undefined ? 0 : checkInteger('sequence', options.sequence, 0, this.cores.length - 1);
    this.cores[sequence].prefix = null; // the caller now owns the cache contents
    try {
      if (options.layers !== undefined && (options.layers[0] !== 0 || options.layers[1] !== this.model.layerCount)) {
        assertLayerRanges(this.model.info.architecture, 'decodeLayers');
      }
      return await this.handle.decode({
        ...options,
        sequence,
        tokens: options.tokens === undefined ? undefined : this.checkTokens('decodeLayers: tokens', options.tokens),
      });
    } catch (e) {
      if (this.isDisposed) throw new DisposedError('decodeLayers (the context was disposed during the decode)');
      throw e;
    } finally {
      release();
    }
  }

  /**
   * Installs a fitted draft head (or its file) for early-exit decodes: its adapter maps the exit
   * residual before the final norm, and its draft vocabulary restricts the early exit's LM head.
   * null removes it. Full-model decodes and verification are unchanged.
   */
  async useDraftHead(head: DraftHead | string | null): Promise<void> {
    const release = this.acquire('useDraftHead');
    try {
      await this.installHead(head === null ? null : resolveDraftHead(head, this.model));
    } finally {
      release();
    }
  }

  /** The installed draft head, or null. */
  get draftHead(): DraftHead | null {
    return this.installed.head;
  }

  private async installHead(head: DraftHead | null, view: NativeSequence = this.handle, slot: HeadSlot = this.installed): Promise<void> {
    if (head === slot.head) return;
    const parts = nativeDraftHead(head, this.model);
    slot.head = null; // none is certain until the new one is in
    await view.setDraftHead(parts);
    slot.head = head;
  }

  /** Token ids as the addon takes them: an array (or Int32Array) of integers inside the vocabulary, nothing coerced. */
  private checkTokens(name: string, tokens: unknown): Int32Array {
    if (!(Array.isArray(tokens) || tokens instanceof Int32Array)) throw new TypeError(`${name} must be an array of token ids`);
    const n = this.model.info.vocabularySize;
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      if (typeof t !== 'number' || !Number.isInteger(t)) throw new TypeError(`${name}[${i}] must be an integer token id, got ${String(t)}`);
      if (t < 0 || t >= n) throw new RangeError(`${name}[${i}]: token ${t} is outside the vocabulary [0, ${n})`);
    }
    return Int32Array.from(tokens as ArrayLike<number>);
  }

  /** Removes positions [position, end) from the KV cache (rollback of rejected drafts). */
  removeFrom(position: number): void {
    const release = this.acquire('removeFrom');
    try {
      this.handle.removeFrom(position);
      const core = this.cores[0];
      if (core.prefix) core.prefix.length = Math.min(core.prefix.length, position);
    } finally {
      release();
    }
  }

  /** Empties the KV cache (every sequence). */
  clear(): void {
    const release = this.acquire('clear');
    try {
      this.handle.clear();
      for (const c of this.cores) c.prefix = [];
    } finally {
      release();
    }
  }

  setThreads(threads: number, batchThreads = threads, options: { allowMoreThreadsThanCores?: boolean } = {}): void {
    const release = this.acquire('setThreads');
    try {
      const over = checkBoolean('allowMoreThreadsThanCores', options.allowMoreThreadsThanCores) ?? false;
      this.handle.setThreads(checkThreads('threads', threads, over), checkThreads('batchThreads', batchThreads, over));
    } finally {
      release();
    }
  }

  /**
   * Generates text after `prompt` (a string, or token ids). Iterate the returned object for
   * streamed chunks, or await `.result`. Throws at once for invalid options or a busy context.
   */
  generate(prompt: string | readonly number[], options: GenerateOptions = {}): Generation {
    return this.generateOn(0, prompt, options);
  }

  /** @internal generate() on sequence `index`. */
  generateOn(index: number, prompt: string | readonly number[], options: GenerateOptions): Generation {
    const core = this.cores[index];
    checkOptionKeys('generate options', options, GENERATE_KEYS);
    const release = this.acquireSequence(core, 'generate');
    try {
      const sampling = resolveSampling(options);
      const maxTokens = checkInteger('maxTokens', options.maxTokens ?? 256, 1, 1 << 24);
      const stop = options.stop ?? [];
      if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s.length === 0)) {
        throw new TypeError('stop must be an array of non-empty strings');
      }
      const stopTokens = new Set(options.stopTokens === undefined ? [] : this.checkTokens('stopTokens', options.stopTokens));
      const spec = options.selfSpeculative ? resolveSelfSpeculative(options.selfSpeculative, this.model.info) : null;
      if (spec?.draftHead) spec.draftHead = resolveDraftHead(spec.draftHead, this.model, spec.exitLayer);
      if (spec && options.freeDraftChoice === 'in-turn') spec.inTurn = true;
      if (spec && this.model.info.slidingWindow > 0 && this.nativeOptions.swaFull === false) {
        // the windowed cache reuses cells that the newest draft no longer attends to, though the
        // verification of earlier drafts still does: verification would fail (patch 0014), not be wrong
        throw new RangeError("selfSpeculative: needs slidingWindowCache: 'full' on a sliding-window model (this context keeps only the window)");
      }
      const free = resolveFreeDrafts(
        options,
        spec,
        (text) => this.model.tokenize(text, { addBos: false }),
        (name, tokens) => Array.from(this.checkTokens(name, tokens)),
      );
      if (spec?.overlap && sampling.penalties)
        throw new RangeError('selfSpeculative.overlap cannot be combined with repetition, presence or frequency penalties');
      const grammar = resolveGrammar(options, this.model.handle);
      if (grammar && spec?.overlap) throw new RangeError('selfSpeculative.overlap cannot be combined with grammar or jsonSchema');
      if (grammar) sampling.constrained = true;
      if (free && spec?.overlap)
        throw new RangeError(
          'selfSpeculative.overlap cannot be combined with lookup or prediction (an overlapped round is drafted by early exit ahead of time)',
        );
      if (spec?.overlap && this.cores.length > 1) {
        throw new RangeError('selfSpeculative.overlap: needs a context with one sequence (it drafts in a second context of its own)');
      }
      // a long text is tokenized off the main thread when the generation starts (10 MB: seconds)
      const promptTokens =
        typeof prompt !== 'string'
          ? Array.from(this.checkTokens('generate: prompt token', prompt))
          : prompt.length <= LONG_PROMPT_CHARS
            ? this.model.tokenize(prompt, { addBos: options.addBos })
            : null;
      if (promptTokens) checkPromptFits(core, promptTokens.length);
      options.signal?.throwIfAborted();
      if (spec) this.claimHead(core, (spec.draftHead as DraftHead | undefined) ?? null);
      const tokens = async () => promptTokens ?? this.tokenizeLongPrompt(core, prompt as string, options);
      return new Generation((emit, stopped) => {
        const signal = options.signal ? AbortSignal.any([options.signal, stopped]) : stopped;
        const plan: GenerationPlan = { sampling, maxTokens, stop, stopTokens, spec, free, signal, grammar };
        return this.run(core, tokens, plan, emit).finally(release);
      });
    } catch (e) {
      release();
      throw e;
    }
  }

  /** The draft-only context of overlapped generations: the same sizes and threads as this one. */
  private async drafterFor(head: DraftHead | null): Promise<NativeContext> {
    if (!this.drafter) {
      const handle = withNativeErrors(await native().createContext(this.model.handle, { ...this.nativeOptions, sequences: 1 }), NATIVE_CONTEXT_METHODS);
      if (this.isDisposed) {
        handle.dispose();
        throw new DisposedError('generate (the context was disposed during generation)');
      }
      this.drafter = { handle, head: null };
    }
    await this.installHead(head, this.drafter.handle, this.drafter);
    return this.drafter.handle;
  }

  /** Sequences drafting at once share the context's draft head: one head (or none) for all of them. */
  private claimHead(core: SequenceCore, head: DraftHead | null): void {
    const other = this.cores.find((c) => c !== core && c.head !== undefined && c.head !== head);
    if (other) {
      throw new Error(
        `generate: sequence ${other.index} is drafting with ${other.head ? 'another draft head' : 'no draft head'}; ` +
          "sequences drafting at the same time share the context's draft head",
      );
    }
    core.head = head;
  }

  private async tokenizeLongPrompt(core: SequenceCore, prompt: string, options: GenerateOptions): Promise<number[]> {
    const tokens = await this.model.tokenizeAsync(prompt, { addBos: options.addBos });
    checkPromptFits(core, tokens.length); // before copying millions of ids into an array
    return Array.from(tokens);
  }

  private async run(
    core: SequenceCore,
    promptTokensOf: () => Promise<number[]>,
    plan: GenerationPlan,
    emit: (chunk: GenerationChunk) => void,
  ): Promise<GenerationResult> {
    const { sampling, spec, free, signal } = plan;
    const t0 = performance.now();
    const session = new DecodeSession(this.model.handle, plan.maxTokens, plan.stop, emit, signal, () => this.isDisposed, plan.stopTokens);
    session.grammar = plan.grammar ? new GrammarState(plan.grammar) : null;
    let reused = 0;
    // an abort stops the running native step between graph nodes (a prompt batch takes ~100 ms)
    let abortedWhileLive = false; // an abort after dispose() (a loop left after it) is not the cause
    const onAbort = () => {
      abortedWhileLive = !this.isDisposed;
      core.view.abort();
      this.drafter?.handle.abort();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    let prefilled: Promise<void> | null = null; // an overlapped generation's drafter reading the prompt
    try {
      const promptTokens = await promptTokensOf();
      session.check();
      const head = (spec?.draftHead as DraftHead | null | undefined) ?? null;
      if (spec && !spec.overlap) await this.installHead(head, core.view);
      const drafter = spec?.overlap ? await this.drafterFor(head) : null;
      // the drafter reads the whole prompt through its layers [0, E) while this context decodes it
      if (drafter) {
        prefilled = prefillDrafter(drafter, promptTokens, spec!.exitLayer, () => session.check());
        prefilled.catch(() => undefined); // awaited by the loop, or below on failure
      }
      reused = reusePrefix(core, promptTokens);
      const first = await decodePrompt(core, promptTokens, reused, sampling, session);
      const t1 = performance.now();
      const onCached = (token: number) => core.prefix?.push(token);
      const { vocabularySize, embeddingSize } = this.model.info;
      const speculative = drafter
        ? // the generated positions hold layers [E, N) only: the loop removes them, the prefix is the prompt
          await pipelinedLoop(core.view, drafter, prefilled!, first, session, sampling, vocabularySize, embeddingSize, spec!)
        : await selfSpeculativeLoop(core.view, first, session, sampling, vocabularySize, spec, onCached, promptTokens, free, core.memory);
      session.finish();
      const t2 = performance.now();
      const generateMs = t2 - t1;
      return {
        text: session.text,
        tokens: session.tokens,
        stopReason: session.stopReason ?? 'maxTokens',
        timings: {
          promptTokens: promptTokens.length,
          reusedPromptTokens: reused,
          generatedTokens: session.tokens.length,
          promptMs: t1 - t0,
          generateMs,
          totalMs: t2 - t0,
          tokensPerSecond: generateMs > 0 ? (session.tokens.length / generateMs) * 1000 : 0,
        },
        speculative: spec || free ? speculative : undefined, // plain decoding has no draft statistics
      };
    } catch (e) {
      await prefilled?.catch(() => undefined); // the drafter must be idle before the next generation
      if (!this.isDisposed) leaveConsistent(core, this.cores.length > 1);
      // a native step stopped by abort() or dispose() reports why the caller stopped it (the first of them)
      if (signal.aborted && (abortedWhileLive || !this.isDisposed)) throw abortReason(signal);
      if (this.isDisposed) throw new DisposedError('generate (the context was disposed during generation)');
      throw e;
    } finally {
      signal.removeEventListener('abort', onAbort);
      session.grammar?.dispose();
    }
  }

  /** @internal */
  onDispose(hook: () => void): void {
    this.disposeHooks.push(hook);
  }

  /** Frees the KV cache. A running generation stops at its next step with an ERR_DISPOSED error. Idempotent. */
  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.handle.dispose();
    this.drafter?.handle.dispose();
    for (const h of this.disposeHooks.splice(0)) h();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }
}

/**
 * One sequence of a context created with `sequences: n`: its own positions and prompt cache,
 * generating concurrently with the others (their full-model steps share one batched decode).
 */
export class Sequence {
  /** @internal */
  constructor(
    readonly context: Context,
    readonly index: number,
  ) {}

  get model(): Model {
    return this.context.model;
  }

  get disposed(): boolean {
    return this.context.disposed;
  }

  /** The context's size: the sequences share its cells. */
  get contextSize(): number {
    return this.context.contextSize;
  }

  /** context.generate() on this sequence. */
  generate(prompt: string | readonly number[], options: GenerateOptions = {}): Generation {
    if (this.context.disposed) throw new DisposedError(`generate (sequence ${this.index})`);
    return this.context.generateOn(this.index, prompt, options);
  }
}
