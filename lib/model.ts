// Model: a GGUF model loaded by the addon, with its metadata and tokenizer. Contexts are made
// from it; disposing the model disposes them.
import { existsSync, statSync } from 'node:fs';
import { Context, type ContextOptions } from './context.js';
import { DisposedError, checkBoolean, checkInteger } from './errors.js';
import { loadNative, type NativeModel, type NativeModelInfo } from './native.js';
import { modelIdentity } from './draft-head/draft-head.js';
import { readGgufInfo, type GgufFileInfo } from './gguf/reader.js';
import { validateModelFile } from './model-validation.js';

export type ModelInfo = NativeModelInfo;

export interface LoadModelOptions {
  /** Layers to offload to a GPU backend (-1 = all, the default; ignored on CPU-only builds). */
  gpuLayers?: number;
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
}

/**
 * Loads a GGUF model. The weights load off the main thread. Rejects with a clear error for a
 * missing or non-GGUF file, a ModelFileError (code ERR_MODEL_FILE, `fault`) for a file the checks
 * reject, and an error with code ERR_MODEL_LOAD carrying llama.cpp's own reason otherwise.
 */
export async function loadModel(path: string, options: LoadModelOptions = {}): Promise<Model> {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError('loadModel: path must be a non-empty string');
  if (!existsSync(path)) {
    const e = new Error(`loadModel: model file not found: ${path}`);
    (e as NodeJS.ErrnoException).code = 'ENOENT';
    throw e;
  }
  if (!statSync(path).isFile()) throw new Error(`loadModel: not a file: ${path}`);
  if (options.gpuLayers !== undefined) checkInteger('gpuLayers', options.gpuLayers, -1, 100000);
  const mmap = checkBoolean('mmap', options.mmap);
  const checkTensors = checkBoolean('checkTensors', options.checkTensors);
  const header = checkBoolean('validate', options.validate) === false ? undefined : validateModelFile(path);
  let handle: NativeModel;
  try {
    handle = await (await loadNative()).loadModel(path, { gpuLayers: options.gpuLayers, mmap, checkTensors });
  } catch (e) {
    if (e instanceof Error) Object.assign(e, { code: 'ERR_MODEL_LOAD' });
    throw e;
  }
  return new Model(handle, path, header);
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
    header?: GgufFileInfo,
  ) {
    this.header = header;
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
    const addBos = options.addBos ?? this.info.specialTokens.addBos;
    return Array.from(this.handle.tokenize(text, addBos, options.special ?? false));
  }

  /** Token ids to text. */
  detokenize(tokens: readonly number[] | Int32Array, options: { special?: boolean } = {}): string {
    this.assertLive('detokenize');
    return this.handle.detokenize(Int32Array.from(tokens), options.special ?? false);
  }

  /** Creates a context (KV cache and compute state) for this model. */
  async createContext(options: ContextOptions = {}): Promise<Context> {
    this.assertLive('createContext');
    const ctx = await Context.create(this, options);
    this.contexts.add(ctx);
    ctx.onDispose(() => this.contexts.delete(ctx));
    return ctx;
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
