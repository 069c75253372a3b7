// Bad input gets a clear error and the process lives: files, sizes, tokens, positions, disposed
// objects, concurrent calls and aborts (the context stays usable afterwards).
import { copyFileSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BusyError, ContextFullError, loadModel } from '../lib/index.js';
import { modelFixture, STORIES } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'layerskip-errors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('model files', () => {
  it('a missing file', async () => {
    await expect(loadModel(join(dir, 'nope.gguf'))).rejects.toThrow(/not found/);
  });
  it('a directory', async () => {
    await expect(loadModel(dir)).rejects.toThrow(/not a file/);
  });
  it('a file that is not GGUF', async () => {
    const p = join(dir, 'text.gguf');
    writeFileSync(p, 'hello, this is not a model');
    await expect(loadModel(p)).rejects.toThrow(/not a GGUF file/);
  });
  it.each([8, 1000, 600_000, 1_185_000])('a GGUF truncated to %i bytes', async (size) => {
    const p = join(dir, `trunc-${size}.gguf`);
    copyFileSync(STORIES, p);
    truncateSync(p, size);
    // the header check names the fault; without it llama.cpp's own reason reaches the message
    await expect(loadModel(p)).rejects.toMatchObject({ name: 'ModelFileError', code: 'ERR_MODEL_FILE', fault: 'structure' });
    await expect(loadModel(p, { validate: false })).rejects.toMatchObject({
      code: 'ERR_MODEL_LOAD',
      message: expect.stringMatching(/failed to load model \S+: \S/),
    });
  });
  it('a GGUF with a corrupted header', async () => {
    const p = join(dir, 'corrupt.gguf');
    copyFileSync(STORIES, p);
    const buf = Buffer.alloc(16, 0xff);
    const { openSync, writeSync, closeSync } = await import('node:fs');
    const fd = openSync(p, 'r+');
    writeSync(fd, buf, 0, 16, 8); // tensor and KV counts
    closeSync(fd);
    await expect(loadModel(p)).rejects.toThrow(/invalid model file .*too large/);
    await expect(loadModel(p, { validate: false })).rejects.toThrow(/failed to load model \S+: \S/);
  });
  it('a bad path type', async () => {
    await expect(loadModel(42 as never)).rejects.toThrow(TypeError);
  });
});

describe('contexts and decoding', () => {
  const f = modelFixture(() => STORIES, { contextSize: 64, threads: 1 });

  it.each([0, -1, 1.5, 1e12, Number.NaN])('context size %s', async (size) => {
    await expect(f.model.createContext({ contextSize: size })).rejects.toThrow(/contextSize/);
  });
  it('bad thread counts', async () => {
    await expect(f.model.createContext({ threads: 0 })).rejects.toThrow(/threads/);
  });
  it('tokens outside the vocabulary', async () => {
    await expect(f.ctx.decodeLayers({ tokens: [1, 512] })).rejects.toThrow(/outside the vocabulary/);
    await expect(f.ctx.decodeLayers({ tokens: [-3] })).rejects.toThrow(/outside the vocabulary/);
    expect(() => f.ctx.generate([1, 9999])).toThrow(/prompt token/);
  });
  it('positions past the context, and a full context', async () => {
    f.ctx.clear();
    const n = f.ctx.contextSize; // llama.cpp may round the requested size up
    expect(n).toBeGreaterThanOrEqual(64);
    const big = await f.model.createContext({ contextSize: n, batchSize: n, threads: 1 });
    await expect(big.decodeLayers({ tokens: Array(n + 1).fill(5) })).rejects.toThrow(/batch size/);
    await big.decodeLayers({ tokens: Array(n - 4).fill(5) });
    await expect(big.decodeLayers({ tokens: Array(5).fill(5) })).rejects.toThrow(/context is full/);
    await expect(big.decodeLayers({ tokens: [5], position: n + 10 })).rejects.toThrow(/does not continue/);
    expect(() => big.generate(Array(n + 5).fill(5))).toThrow(ContextFullError);
    const r = await big.generate(Array(n - 4).fill(5), { maxTokens: 50 }).result;
    expect(r.stopReason).toBe('contextFull');
    expect(r.tokens.length).toBe(5); // 4 free positions, and the last token needs none
    big.dispose();
  });
  it('invalid generate options', () => {
    expect(() => f.ctx.generate('x', { maxTokens: 0 })).toThrow(/maxTokens/);
    expect(() => f.ctx.generate('x', { temperature: -1 })).toThrow(/temperature/);
    expect(() => f.ctx.generate('x', { topP: 2 })).toThrow(/topP/);
    expect(() => f.ctx.generate('x', { stop: [''] })).toThrow(/stop/);
    expect(() => f.ctx.generate('', { addBos: false })).toThrow(/empty/);
  });
  it('a generate call while another runs on the same context', async () => {
    const a = f.ctx.generate('Once upon a time', { maxTokens: 30 });
    expect(() => f.ctx.generate('Once upon a time')).toThrow(BusyError);
    await expect(f.ctx.decodeLayers({ tokens: [1] })).rejects.toThrow(BusyError);
    expect(() => f.ctx.removeFrom(0)).toThrow(BusyError);
    expect((await a.result).tokens.length).toBe(30);
  });
  it('two contexts of one model generate concurrently', async () => {
    const other = await f.model.createContext({ contextSize: 256, threads: 1 });
    f.ctx.clear();
    const big = await f.model.createContext({ contextSize: 256, threads: 1 });
    const [x, y] = await Promise.all([
      big.generate('Once upon a time', { maxTokens: 40 }).result,
      other.generate('Once upon a time', { maxTokens: 40 }).result,
    ]);
    expect(x.tokens).toEqual(y.tokens);
    other.dispose();
    big.dispose();
  });
  it('an abort mid-generation rejects with AbortError and leaves the context usable', async () => {
    const big = await f.model.createContext({ contextSize: 512, threads: 1 });
    const expected = await big.generate('Once upon a time', { maxTokens: 50 }).result;
    for (const spec of [undefined, { exitLayer: 3, draftTokens: 4 }]) {
      const ac = new AbortController();
      const gen = big.generate('Once upon a time', { maxTokens: 400, signal: ac.signal, selfSpeculative: spec });
      let n = 0;
      await expect(
        (async () => {
          for await (const c of gen) {
            n += c.tokens.length;
            if (n >= 10) ac.abort();
          }
        })(),
      ).rejects.toThrow(/abort/i);
      await expect(gen.result).rejects.toMatchObject({ name: 'AbortError' });
      expect(big.state().verifiedPosition).toBe(big.state().nextPosition);
      const again = await big.generate('Once upon a time', { maxTokens: 50 }).result;
      expect(again.tokens).toEqual(expected.tokens);
    }
    const pre = new AbortController();
    pre.abort();
    expect(() => big.generate('x', { signal: pre.signal })).toThrow(/abort/i);
    big.dispose();
  });
  it('calls on a disposed context and model', async () => {
    const m = await loadModel(STORIES);
    const c = await m.createContext({ contextSize: 32, threads: 1 });
    c.dispose();
    c.dispose(); // idempotent
    expect(() => c.generate('x')).toThrow(/disposed/);
    await expect(c.decodeLayers({ tokens: [1] })).rejects.toThrow(/disposed/);
    expect(() => c.clear()).toThrow(/disposed/);
    expect(() => c.state()).toThrow(/disposed/);
    const c2 = await m.createContext({ contextSize: 32, threads: 1 });
    m.dispose();
    expect(c2.disposed).toBe(true);
    expect(() => m.tokenize('x')).toThrow(/disposed/);
    await expect(m.createContext()).rejects.toThrow(/disposed/);
    expect(() => c2.generate('x')).toThrow(/disposed/);
  });
  it('disposing a context during generation stops it with a clear error', async () => {
    const m = await loadModel(STORIES);
    const c = await m.createContext({ contextSize: 512, threads: 1 });
    const gen = c.generate('Once upon a time', { maxTokens: 400 });
    setTimeout(() => c.dispose(), 5);
    await expect(gen.result).rejects.toThrow(/disposed/);
    m.dispose();
  });
  it('Symbol.asyncDispose', async () => {
    const m = await loadModel(STORIES);
    {
      await using c = await m.createContext({ contextSize: 32, threads: 1 });
      expect(c.disposed).toBe(false);
    }
    await m[Symbol.asyncDispose]();
    expect(m.disposed).toBe(true);
  });
});
