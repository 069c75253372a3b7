// Model: a GGUF model loaded by the addon, with its metadata and tokenizer. Contexts are made
// from it; disposing the model disposes them.
import { existsSync, statSync } from 'node:fs';
import { Context, type ContextOptions } from './context.js';
import { DisposedError, abortReason, checkBoolean, checkInteger, checkNumber } from '../native/errors.js';
import { parseRpcEndpoint } from '../native/rpc-endpoint.js';
import { loadNative, type NativeModel, type NativeModelInfo } from '../native/binding.js';
import { modelIdentity } from '../draft-head/draft-head.js';
import { readGgufInfo, type GgufFileInfo } from '../gguf/reader.js';
import { validateModelFileAsync } from '../model-file/validation-thread.js';
import { ChatTemplateError, checkChatMessages, renderChatTemplate, type ChatMessage, type ChatTemplateOptions } from './chat-template.js';
import { checkOptionKeys, type KeysOf } from '../util/option-keys.js';

export type ModelInfo = NativeModelInfo;

export interface LoadModelOptions {
  /**
   * Layers to offload to a GPU backend or to the RPC servers, counted from the last layer (-1 = all,
   * the default; ignored on CPU-only builds without rpcServers). With rpcServers and early exit at
   * E, `layerCount - E` keeps layers [0, E) here, so drafts never cross the network.
   */
  gpuLayers?: number;
  /**
   * RPC servers ("host:port", from `startRpcServer()` or `layerskip rpc-server`) whose devices hold
   * the offloaded layers, split by `tensorSplit` (default: by the servers' free memory).
   */
  rpcServers?: readonly string[];
  /** Proportions of the offloaded layers per RPC device, in rpcServers order. */
  tensorSplit?: readonly number[];
  /** Keep the output norm and LM head on this machine (default true with rpcServers). */
  outputLocal?: boolean;
  /**
   * How long a call waits for an RPC server before the generation fails (default 30000 ms; 0 waits
   * forever). A server that disappears fails the call at once; one that stops answering, after this.
   */
  rpcTimeoutMs?: number;
  /** Memory-map the file (default true). */
  mmap?: boolean;
  /** Validate tensor data while loading (slow; default false). */
  checkTensors?: boolean;
  /**
   * Check the file's header before llama.cpp reads it (default true): structure, hyper-parameters,
   * tensor types and shapes, vocabulary. A file that fails gets a ModelFileError naming the fault
   * instead of reaching llama.cpp code paths that assert. Turn off only for architectures the
   * checks reject wrongly.
   */
  validate?: boolean;
  /** Aborts the load: the promise rejects with the signal's reason and nothing stays allocated. */
  signal?: AbortSignal;
}

/**
 * Loads a GGUF model. The weights load off the main thread. Rejects with a clear error for a
 * missing or non-GGUF file, a ModelFileError (code ERR_MODEL_FILE, `fault`) for a file the checks
 * reject, and an error with code ERR_MODEL_LOAD carrying llama.cpp's own reason otherwise.
 */
const LOAD_MODEL_KEYS = {
  gpuLayers: true,
  rpcServers: true,
  tensorSplit: true,
  outputLocal: true,
  rpcTimeoutMs: true,
  mmap: true,
  checkTensors: true,
  validate: true,
  signal: true,
} as const satisfies KeysOf<LoadModelOptions>;
const TOKENIZE_KEYS = { addBos: true, special: true } as const;
const TEMPLATE_KEYS = { addGenerationPrompt: true, tools: true, template: true } as const satisfies KeysOf<ChatTemplateOptions>;

let warnedNoGpu = false;

export async function loadModel(path: string, options: LoadModelOptions = {}): Promise<Model> {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError('loadModel: path must be a non-empty string');
  checkOptionKeys('loadModel options', options, LOAD_MODEL_KEYS);
  if (!existsSync(path)) {
    const e = new Error(`loadModel: model file not found: ${path}`);
    (e as NodeJS.ErrnoException).code = 'ENOENT';
    throw e;
  }
  if (!statSync(path).isFile()) throw new Error(`loadModel: not a file: ${path}`);
  if (options.gpuLayers !== undefined) checkInteger('gpuLayers', options.gpuLayers, -1, 100000);
  const mmap = checkBoolean('mmap', options.mmap);
  const checkTensors = checkBoolean('checkTensors', options.checkTensors);
  const { signal } = options;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError('loadModel: signal must be an AbortSignal');
  const rpc = rpcOptions(options);
  if (checkBoolean('validate', options.validate) !== false) await validateModelFileAsync(path); // on a worker thread
  const binding = await loadNative();
  signal?.throwIfAborted();
  // layers to offload with no GPU backend (and no RPC servers) are silently ignored by llama.cpp: say so once
  if (options.gpuLayers !== undefined && options.gpuLayers !== 0 && !rpc.rpcServers && !binding.systemInfo().gpuOffload && !warnedNoGpu) {
    warnedNoGpu = true;
    process.emitWarning('loadModel: gpuLayers has no effect: this build of layerskip has no GPU backend (every layer runs on the CPU)', {
      code: 'LAYERSKIP_NO_GPU',
    });
  }
  const load = binding.loadModel(path, { gpuLayers: options.gpuLayers, mmap, checkTensors, ...rpc });
  const cancel = () => load.cancel();
  signal?.addEventListener('abort', cancel, { once: true });
  let handle: NativeModel;
  try {
    handle = await load.promise;
  } catch (e) {
    if (signal?.aborted) throw abortReason(signal);
    if (e instanceof Error) Object.assign(e, { code: 'ERR_MODEL_LOAD' });
    throw e;
  } finally {
    signal?.removeEventListener('abort', cancel);
  }
  return new Model(handle, path);
}

/** UTF-16 units encoded per event-loop turn: converting 10 MB at once holds the loop for ~20 ms. */
const UTF8_SLICE = 1 << 20;

/** A long string's UTF-8 bytes, encoded a slice per macrotask (never splitting a surrogate pair). */
async function utf8InSlices(text: string): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  for (let at = 0; at < text.length; ) {
    let end = Math.min(text.length, at + UTF8_SLICE);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--; // keep a high surrogate with its pair
    parts.push(Buffer.from(text.slice(at, end), 'utf8'));
    at = end;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return Buffer.concat(parts);
}

/** The RPC options as the addon takes them, checked (none without rpcServers). */
function rpcOptions(o: LoadModelOptions): { rpcServers?: string[]; tensorSplit?: number[]; outputLocal?: boolean; rpcTimeoutMs?: number } {
  if (o.rpcServers === undefined) {
    if (o.tensorSplit !== undefined || o.outputLocal !== undefined || o.rpcTimeoutMs !== undefined) {
      throw new TypeError('tensorSplit, outputLocal and rpcTimeoutMs need rpcServers');
    }
    return {};
  }
  if (!Array.isArray(o.rpcServers) || o.rpcServers.length === 0) throw new TypeError('rpcServers must be a non-empty array of "host:port"');
  const rpcServers = o.rpcServers.map((e, i) => {
    const { host, port } = parseRpcEndpoint(e, `rpcServers[${i}]`);
    return `${host}:${port}`;
  });
  if (new Set(rpcServers).size !== rpcServers.length) throw new RangeError('rpcServers lists a server twice');
  let tensorSplit: number[] | undefined;
  if (o.tensorSplit !== undefined) {
    if (!Array.isArray(o.tensorSplit)) throw new TypeError('tensorSplit must be an array of numbers');
    tensorSplit = o.tensorSplit.map((x, i) => checkNumber(`tensorSplit[${i}]`, x, 0, 1e6));
    if (!tensorSplit.some((x) => x > 0)) throw new RangeError('tensorSplit needs a positive value');
  }
  return {
    rpcServers,
    tensorSplit,
    outputLocal: checkBoolean('outputLocal', o.outputLocal) ?? true,
    rpcTimeoutMs: o.rpcTimeoutMs === undefined ? 30_000 : checkInteger('rpcTimeoutMs', o.rpcTimeoutMs, 0, 2 ** 31 - 1),
  };
}

export class Model {
  /** Metadata read from the GGUF file. */
  readonly info: ModelInfo;
  private readonly contexts = new Set<Context>();
  private header: GgufFileInfo | undefined;
  private id: string | undefined;

  /** @internal */
  constructor(
    /** @internal */ readonly handle: NativeModel,
    readonly path: string,
  ) {
    this.info = handle.info();
  }

  /** @internal The file's GGUF header (tensor infos and metadata), read once on first use. */
  fileInfo(): GgufFileInfo {
    return (this.header ??= readGgufInfo(this.path));
  }

  /** A hash of the model's tensor infos and key metadata: the model a draft head is bound to. */
  get identity(): string {
    return (this.id ??= modelIdentity(this.fileInfo()));
  }

  get layerCount(): number {
    return this.info.layerCount;
  }

  get disposed(): boolean {
    return this.handle.disposed;
  }

  /** @internal */
  assertLive(what: string): void {
    if (this.handle.disposed) throw new DisposedError(`${what} (model)`);
  }

  /** Text to token ids. `addBos` defaults to the model's own setting. */
  tokenize(text: string, options: { addBos?: boolean; special?: boolean } = {}): number[] {
    this.assertLive('tokenize');
    if (typeof text !== 'string') throw new TypeError('tokenize: text must be a string');
    checkOptionKeys('tokenize options', options, TOKENIZE_KEYS);
    const addBos = options.addBos ?? this.info.specialTokens.addBos;
    return Array.from(this.handle.tokenize(text, addBos, options.special ?? false));
  }

  /** How many tokens `text` takes: tokenize(text, options).length (BOS counted when it is added). */
  countTokens(text: string, options: { addBos?: boolean; special?: boolean } = {}): number {
    return this.tokenize(text, options).length;
  }

  /** Like tokenize(), off the main thread: for long texts (tokenizing 10 MB takes seconds). */
  async tokenizeAsync(text: string, options: { addBos?: boolean; special?: boolean } = {}): Promise<Int32Array> {
    this.assertLive('tokenizeAsync');
    if (typeof text !== 'string') throw new TypeError('tokenizeAsync: text must be a string');
    checkOptionKeys('tokenizeAsync options', options, TOKENIZE_KEYS);
    const addBos = checkBoolean('addBos', options.addBos) ?? this.info.specialTokens.addBos;
    const special = checkBoolean('special', options.special) ?? false;
    const input = text.length > UTF8_SLICE * 2 ? await utf8InSlices(text) : text;
    this.assertLive('tokenizeAsync');
    return await this.handle.tokenizeAsync(input, addBos, special);
  }

  /**
   * Renders a conversation with the model's chat template (tokenizer.chat_template, Jinja) or
   * `options.template`. A leading BOS text is left out when the tokenizer adds BOS itself, so the
   * prompt is not given two (as llama.cpp does). Throws ChatTemplateError when the model has no
   * template (PLAIN_CHAT_TEMPLATE is a documented fallback) or the template rejects the messages.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    this.assertLive('applyChatTemplate');
    const list = checkChatMessages(messages);
    checkOptionKeys('applyChatTemplate options', options, TEMPLATE_KEYS);
    const addGenerationPrompt = checkBoolean('addGenerationPrompt', options.addGenerationPrompt) ?? true;
    if (options.tools !== undefined && !Array.isArray(options.tools)) throw new TypeError('tools must be an array');
    if (options.template !== undefined && (typeof options.template !== 'string' || options.template.length === 0))
      throw new TypeError('template must be a non-empty string');
    const source = options.template ?? this.info.chatTemplate;
    if (!source) {
      throw new ChatTemplateError(
        `${this.info.name || this.path} has no chat template (tokenizer.chat_template); pass { template }, for example PLAIN_CHAT_TEMPLATE`,
      );
    }
    const { bos, eos, addBos } = this.info.specialTokens;
    const bosToken = this.specialText(bos);
    const text = renderChatTemplate(source, list, { addGenerationPrompt, bosToken, eosToken: this.specialText(eos), tools: options.tools });
    return addBos && bosToken && text.startsWith(bosToken) ? text.slice(bosToken.length) : text;
  }

  /** The text of a special token ('' for none). */
  private specialText(token: number): string {
    return token >= 0 && token < this.info.vocabularySize ? this.handle.detokenize(Int32Array.of(token), true) : '';
  }

  /** Token ids to text. */
  detokenize(tokens: readonly number[] | Int32Array, options: { special?: boolean } = {}): string {
    this.assertLive('detokenize');
    checkOptionKeys('detokenize options', options, { special: true });
    return this.handle.detokenize(Int32Array.from(tokens), options.special ?? false);
  }

  /** Creates a context (KV cache and compute state) for this model. */
  async createContext(options: ContextOptions = {}): Promise<Context> {
    this.assertLive('createContext');
    const ctx = await Context.create(this, options);
    if (this.disposed) {
      // the model was disposed while the context was being made: it goes too
      ctx.dispose();
      throw new DisposedError('createContext (the model was disposed while the context was created)');
    }
    this.contexts.add(ctx);
    ctx.onDispose(() => this.contexts.delete(ctx));
    return ctx;
  }

  /** Where the weights live: the device of each layer and of the output head ("CPU" or an RPC device and its endpoint). */
  devices(): { layers: string[]; output: string } {
    this.assertLive('devices');
    return this.handle.layerDevices();
  }

  /** Frees the weights (after the contexts made from it, which are disposed too). Idempotent. */
  dispose(): void {
    for (const c of [...this.contexts]) c.dispose();
    this.handle.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }
}
