// One table of error codes: native/error-codes.h and lib/native/error-codes.ts agree, no code is written out
// anywhere else (native/ uses the header's constants, lib/ only codes the table has), and an addon
// error reaches the caller as this library's class, so `instanceof` works for every error.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../lib/native/error-codes.js';
import { AbortedError, BusyError, ContextFullError, DisposedError, loadModel, RpcError, startRpcServer } from '../lib/index.js';
import { nativeError } from '../lib/native/error-codes.js';
import { STORIES } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const files = (dir: string, ext: RegExp): string[] =>
  readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name), ext) : ext.test(e.name) ? [join(dir, e.name)] : [],
  );

describe('error codes', () => {
  it('native/error-codes.h and lib/native/error-codes.ts list the same native codes', () => {
    const header = readFileSync(join(root, 'native', 'error-codes.h'), 'utf8');
    const inHeader = [...header.matchAll(/= "(ERR_[A-Z_]+)"/g)].map((m) => m[1]).sort();
    const nativeInTable = Object.entries(ERROR_CODES)
      .filter(([, v]) => v.from === 'native')
      .map(([k]) => k)
      .sort();
    expect(inHeader).toEqual(nativeInTable);
  });

  it('no code is written out in native/ outside the header, and lib/ uses only codes of the table', () => {
    for (const f of files('native', /\.(cc|h)$/)) {
      if (f.endsWith('error-codes.h')) continue;
      expect(readFileSync(join(root, f), 'utf8').match(/"ERR_[A-Z_]+"/g), f).toBeNull();
    }
    const known = new Set(Object.keys(ERROR_CODES));
    for (const f of files('lib', /\.ts$/)) {
      for (const m of readFileSync(join(root, f), 'utf8').matchAll(/['"`](ERR_[A-Z_]+)['"`]/g)) expect(known, `${f}: ${m[1]}`).toContain(m[1]);
    }
  });

  it('addon errors arrive as their classes: a full context, a busy context, a disposed context', async () => {
    const model = await loadModel(STORIES);
    try {
      const ctx = await model.createContext({ contextSize: 256, threads: 1 });
      const { contextSize } = (ctx as unknown as { handle: { state(): { contextSize: number } } }).handle.state();
      await ctx.decodeLayers({ tokens: Array.from({ length: contextSize - 4 }, (_, i) => 10 + (i % 400)) });
      const full = await ctx.decodeLayers({ tokens: Array.from({ length: 8 }, (_, i) => 30 + i) }).catch((e: unknown) => e);
      expect(full).toBeInstanceOf(ContextFullError);
      expect((full as ContextFullError).code).toBe('ERR_CONTEXT_FULL');
      // the addon's own busy check (below the TypeScript one): two calls on its handle at once
      const handle = (ctx as unknown as { handle: { decode(o: object): Promise<unknown> } }).handle;
      const thrown = (call: () => unknown): unknown => {
        try {
          call();
        } catch (e) {
          return e;
        }
        return undefined;
      };
      ctx.clear();
      const first = handle.decode({ tokens: Int32Array.of(1, 2, 3) });
      const busy = thrown(() => handle.decode({ tokens: Int32Array.of(4) })); // the addon checks before it starts
      await first;
      expect(busy).toBeInstanceOf(BusyError);
      ctx.dispose();
      const disposed = thrown(() => handle.decode({ tokens: Int32Array.of(4) }));
      expect(disposed).toBeInstanceOf(DisposedError);
      expect((disposed as DisposedError).message).toMatch(/disposed/);
    } finally {
      model.dispose();
    }
  });

  it('an abort is an AbortedError whichever side found it: the addon, generation.abort(), a signal', async () => {
    const model = await loadModel(STORIES);
    try {
      const ctx = await model.createContext({ contextSize: 2048, threads: 1 });
      // the addon: abort() during a decode of a long prompt
      const handle = (ctx as unknown as { handle: { decode(o: object): Promise<unknown>; abort(): void } }).handle;
      const running = handle.decode({ tokens: Int32Array.from({ length: 512 }, (_, i) => 10 + (i % 400)) });
      handle.abort();
      const native = await running.then(
        () => undefined,
        (e: unknown) => e,
      );
      // a decode that finished before the abort landed cannot show it; on 2 cores 512 tokens take ~50 ms
      if (native !== undefined) {
        expect(native).toBeInstanceOf(AbortedError);
        expect(native).toMatchObject({ code: 'ERR_ABORTED', name: 'AbortError' });
      }
      ctx.clear();
      const gen = ctx.generate('Once upon a time', { maxTokens: 200 });
      gen.abort();
      const stopped = await gen.result.catch((e: unknown) => e);
      expect(stopped).toBeInstanceOf(AbortedError);
      const controller = new AbortController();
      const withSignal = ctx.generate('Once upon a time', { maxTokens: 200, signal: controller.signal });
      controller.abort();
      expect(await withSignal.result.catch((e: unknown) => e)).toBeInstanceOf(AbortedError);
      // a reason of the caller's own is what they get back
      const mine = new Error('mine');
      const custom = new AbortController();
      const withReason = ctx.generate('Once upon a time', { maxTokens: 200, signal: custom.signal });
      custom.abort(mine);
      expect(await withReason.result.catch((e: unknown) => e)).toBe(mine);
    } finally {
      model.dispose();
    }
  });

  it('the addon and TypeScript share one thread limit (TypeScript validates; the addon only guards)', () => {
    const ts = readFileSync(join(root, 'lib', 'runtime', 'context-options.ts'), 'utf8').match(/const MAX_THREADS = (\d+);/);
    const native = readFileSync(join(root, 'native', 'context.h'), 'utf8').match(/constexpr int32_t MAX_THREADS = (\d+);/);
    expect(ts?.[1]).toBeDefined();
    expect(native?.[1]).toBe(ts?.[1]);
  });

  it('every native code with a class maps to it, with message and code kept', () => {
    const addon = (code: string) => Object.assign(new Error(`addon says ${code}`), { code });
    const cases: [string, new (...a: never[]) => Error][] = [
      ['ERR_CONTEXT_FULL', ContextFullError],
      ['ERR_BUSY', BusyError],
      ['ERR_DISPOSED', DisposedError],
      ['ERR_ABORTED', AbortedError],
      ['ERR_RPC', RpcError],
      ['ERR_RPC_SERVER', RpcError],
    ];
    for (const [code, cls] of cases) {
      const e = nativeError(addon(code));
      expect(e, code).toBeInstanceOf(cls);
      expect(e).toMatchObject({ code, message: `addon says ${code}` });
    }
    const other = addon('ERR_TOKEN_RANGE');
    expect(nativeError(other)).toBe(other);
  });

  it('an RPC server that cannot start is an RpcError (ERR_RPC_SERVER), as a lost one is (test/rpc.test.ts)', async () => {
    const first = await startRpcServer({ port: 0, threads: 1 });
    try {
      const port = Number(first.endpoint.split(':').pop());
      const second = await startRpcServer({ port, threads: 1 }).catch((e: unknown) => e);
      expect(second).toBeInstanceOf(RpcError);
      expect(second).toMatchObject({ code: 'ERR_RPC_SERVER' });
    } finally {
      await first.close();
    }
  });
});
