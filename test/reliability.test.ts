// Faults that used to take the process down or hang it, now clear errors: a model
// whose logits come out NaN (greedy returned token 0, top-k / top-p looped forever), a vocabulary
// without byte tokens (tokenize threw a C++ exception that terminated the process), quantize misuse,
// the strict option checks that replaced silent coercions, and races with dispose and abort.
import { copyFileSync, openSync, rmSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { iterateTensorBytes, readGgufInfo, writeGguf, type GgufMetadataValue } from '../lib/gguf/index.js';
import { DisposedError, loadModel, type Context, type Model } from '../lib/index.js';
import { modelFixture, randomModel, SHAPES, STORIES } from './helpers.js';

const file = join(tmpdir(), `layerskip-nan-${process.pid}.gguf`);

describe('non-finite logits', () => {
  let model: Model;
  let ctx: Context;
  beforeAll(async () => {
    const src = randomModel(SHAPES['mha-tied']);
    copyFileSync(src, file);
    const t = readGgufInfo(file).tensors.find((x) => x.name === 'output_norm.weight')!;
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.from(new Float32Array([Number.NaN]).buffer), 0, 4, t.absoluteOffset);
    closeSync(fd);
    model = await loadModel(file);
    ctx = await model.createContext({ contextSize: 128, threads: 1 });
  });
  afterAll(() => {
    model?.dispose();
    rmSync(file, { force: true });
  });

  it.each([
    ['greedy', {}],
    ['top-k', { temperature: 1, topK: 5 }],
    ['top-p', { temperature: 1, topP: 0.9 }],
    ['self-speculative greedy', { selfSpeculative: { exitLayer: 2 } }],
    ['self-speculative sampled', { temperature: 1, topK: 5, selfSpeculative: { exitLayer: 2 } }],
  ])('%s: the generation rejects with a clear error', async (_, options) => {
    await expect(ctx.generate([1, 5, 9], { maxTokens: 8, ...options }).result).rejects.toThrow(/non-finite logits/);
    // nothing half-done is left: the verified position is the whole cache
    const st = ctx.state();
    expect(st.busy).toBe(false);
    expect(st.nextPosition).toBe(st.verifiedPosition);
  });

  it('decodeLayers rejects too, and the process goes on with a healthy model', async () => {
    ctx.clear();
    await expect(ctx.decodeLayers({ tokens: [1, 2, 3] })).rejects.toThrow(/non-finite/);
    expect(ctx.state().nextPosition).toBe(0);
    const good = await loadModel(STORIES);
    const c = await good.createContext({ threads: 1 });
    expect((await c.generate('Once upon a time', { maxTokens: 5 }).result).tokens.length).toBe(5);
    good.dispose();
  });
});

describe('a vocabulary without byte-fallback tokens', () => {
  it('is rejected at load; tokenizing past the check is an error, not a terminated process', async () => {
    const src = randomModel(SHAPES['mha-tied']);
    const info = readGgufInfo(src);
    const md = new Map(info.metadata);
    const tokens = [...(md.get('tokenizer.ggml.tokens')!.value as string[])];
    const types = Int32Array.from(md.get('tokenizer.ggml.token_type')!.value as ArrayLike<number>);
    for (let i = 0; i < tokens.length; i++) {
      if (types[i] === 6) {
        types[i] = 1; // byte tokens become normal ones: no <0xNN> to fall back on
        tokens[i] = `plain${i}`;
      }
    }
    md.set('tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: tokens } as GgufMetadataValue);
    md.set('tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: types } as GgufMetadataValue);
    const out = join(tmpdir(), `layerskip-nobyte-${process.pid}.gguf`);
    writeGguf(
      out,
      md,
      info.tensors.map((t) => ({ name: t.name, shape: t.shape, type: t.type, data: () => iterateTensorBytes(src, t) })),
    );
    await expect(loadModel(out)).rejects.toThrow(/byte-fallback token <0x00> is missing/);
    // past the check (validate: false), llama.cpp's exception still becomes a JavaScript error
    const model = await loadModel(out, { validate: false });
    try {
      expect(() => model.tokenize('price: 5 €')).toThrow(/native error/);
      const ctx = await model.createContext({ threads: 1, contextSize: 64 });
      expect(() => ctx.generate('5 €')).toThrow(/native error/);
      expect((await ctx.generate([1, 5, 9], { maxTokens: 3 }).result).tokens.length).toBe(3);
    } finally {
      model.dispose();
      rmSync(out, { force: true });
    }
  });
});

describe('quantizeModel misuse', () => {
  it('onto its source, from a FIFO, into a missing folder: clear errors, nothing written', async () => {
    const { quantizeModel } = await import('../lib/index.js');
    const { execFileSync } = await import('node:child_process');
    const copy = join(tmpdir(), `layerskip-q-${process.pid}.gguf`);
    copyFileSync(STORIES, copy);
    await expect(quantizeModel(copy, copy, 'Q8_0')).rejects.toThrow(/destination is the source/);
    const fifo = join(tmpdir(), `layerskip-fifo-${process.pid}`);
    execFileSync('mkfifo', [fifo]);
    await expect(quantizeModel(fifo, join(tmpdir(), 'x.gguf'), 'Q8_0')).rejects.toThrow(/not a regular file/);
    await expect(quantizeModel(copy, join(tmpdir(), 'no-such-dir', 'x.gguf'), 'Q8_0')).rejects.toThrow(/folder does not exist/);
    await expect(quantizeModel(copy, join(tmpdir(), 'y.gguf'), 'Q8_0', { threads: -1 })).rejects.toThrow(/threads/);
    rmSync(fifo, { force: true });
    rmSync(copy, { force: true });
  });
});

describe('strict options (no silent coercion)', () => {
  const f = modelFixture(() => STORIES, { threads: 1, contextSize: 128 });

  it.each([
    ['abc', /array of token ids/],
    [[1.7, 2.2], /tokens\[0\] must be an integer token id/],
    [[2 ** 32 + 5], /outside the vocabulary/],
    [[-1], /outside the vocabulary/],
    [[512], /token 512 is outside the vocabulary \[0, 512\)/],
  ])('decodeLayers tokens %j', async (tokens, message) => {
    f.ctx.clear();
    await expect(f.ctx.decodeLayers({ tokens: tokens as never })).rejects.toThrow(message);
    expect(f.ctx.state().nextPosition).toBe(0);
  });

  it('context and model options', async () => {
    await expect(f.model.createContext({ kvCacheType: 42 as never })).rejects.toThrow(/kvCacheType must be one of "f32", "f16", "q8_0", got 42/);
    await expect(f.model.createContext({ flashAttention: 'yes' as never })).rejects.toThrow(/flashAttention/);
    await expect(loadModel(STORIES, { mmap: 'no' as never })).rejects.toThrow(/mmap must be true or false, got "no"/);
    await expect(loadModel(STORIES, { checkTensors: 1 as never })).rejects.toThrow(/checkTensors/);
    expect((await f.ctx.generate('Once', { maxTokens: 3 }).result).tokens.length).toBe(3);
  });

  it("thread counts above the cores need an explicit override; above ggml's limit never", async () => {
    const { availableParallelism } = await import('node:os');
    const over = availableParallelism() + 1;
    await expect(f.model.createContext({ threads: over })).rejects.toThrow(/more than this machine's .* cores/);
    await expect(f.model.createContext({ threads: 1, batchThreads: over })).rejects.toThrow(/batchThreads/);
    await expect(f.model.createContext({ threads: 1024, allowMoreThreadsThanCores: true })).rejects.toThrow(/\[1, 512\]/);
    expect(() => f.ctx.setThreads(over)).toThrow(/allowMoreThreadsThanCores/);
    const c = await f.model.createContext({ threads: over, allowMoreThreadsThanCores: true, contextSize: 64 });
    expect(c.threads).toBe(over);
    c.setThreads(1);
    expect((await c.generate('Once', { maxTokens: 2 }).result).tokens.length).toBe(2);
    c.dispose();
  });
});

describe('races with dispose and abort', () => {
  it('dispose during createContext: DisposedError, nothing leaks, the process goes on', async () => {
    for (let i = 0; i < 3; i++) {
      const model = await loadModel(STORIES);
      const pending = model.createContext({ contextSize: 64, threads: 1 });
      model.dispose();
      await expect(pending).rejects.toBeInstanceOf(DisposedError);
      expect(model.disposed).toBe(true);
    }
    const model = await loadModel(STORIES);
    const ctx = await model.createContext({ contextSize: 64, threads: 1 });
    expect((await ctx.generate('Once', { maxTokens: 3 }).result).tokens).toHaveLength(3);
    model.dispose();
  });

  it('an abort during loadModel rejects with the reason and frees what was loaded', async () => {
    const ac = new AbortController();
    const pending = loadModel(STORIES, { signal: ac.signal });
    ac.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    const reason = new Error('user closed the window');
    await expect(loadModel(STORIES, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    await expect(loadModel(STORIES, { signal: 'stop' as never })).rejects.toThrow(/signal must be an AbortSignal/);
    const model = await loadModel(STORIES, { signal: new AbortController().signal });
    expect(model.tokenize('Once').length).toBeGreaterThan(0);
    model.dispose();
  });

  it('dispose during generate: DisposedError, no chunk after it, other contexts unaffected', async () => {
    const model = await loadModel(STORIES);
    const other = await model.createContext({ contextSize: 128, threads: 1 });
    for (const selfSpeculative of [undefined, { exitLayer: 3, draftTokens: 3 }]) {
      const ctx = await model.createContext({ contextSize: 512, threads: 1 });
      const gen = ctx.generate('Once upon a time', { maxTokens: 400, selfSpeculative });
      let disposedAt = -1;
      let chunksAfter = 0;
      for await (const chunk of gen) {
        if (disposedAt >= 0) chunksAfter++;
        if (disposedAt < 0 && chunk.tokens.length > 0) {
          disposedAt = chunk.tokens.length;
          ctx.dispose();
        }
        if (disposedAt >= 0) break;
      }
      await expect(gen.result).rejects.toBeInstanceOf(DisposedError);
      expect(chunksAfter).toBe(0);
      expect(() => ctx.generate('x')).toThrow(DisposedError);
    }
    expect((await other.generate('Once upon a time', { maxTokens: 5 }).result).tokens).toHaveLength(5);
    model.dispose();
  });

  it('dispose of the model during a generation: DisposedError, then freed', async () => {
    const model = await loadModel(STORIES);
    const ctx = await model.createContext({ contextSize: 512, threads: 1 });
    const gen = ctx.generate('Once upon a time', { maxTokens: 400 });
    setTimeout(() => model.dispose(), 5);
    await expect(gen.result).rejects.toBeInstanceOf(DisposedError);
    expect(ctx.disposed).toBe(true);
    await expect(model.createContext()).rejects.toBeInstanceOf(DisposedError);
  });

  it('tokenizeAsync equals tokenize, across its UTF-8 slices too', async () => {
    const model = await loadModel(STORIES);
    // a long text with 4-byte characters (surrogate pairs) so that some fall on slice boundaries
    const text = 'Lily saw a 🐶 and said "hi". '.repeat(80_000);
    const sync = model.tokenize(text);
    const async_ = await model.tokenizeAsync(text);
    expect(async_.length).toBe(sync.length);
    expect(Array.from(async_)).toEqual(sync);
    const p = model.tokenizeAsync(text);
    model.dispose(); // while its text is being encoded: the native call never starts
    await expect(p).rejects.toBeInstanceOf(DisposedError);
  });
});
