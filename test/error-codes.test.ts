// One table of error codes: native/error-codes.h and lib/error-codes.ts agree, no code is written out
// anywhere else (native/ uses the header's constants, lib/ only codes the table has), and an addon
// error reaches the caller as this library's class, so `instanceof` works for every error.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../lib/error-codes.js';
import { BusyError, ContextFullError, DisposedError, loadModel } from '../lib/index.js';
import { STORIES } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const files = (dir: string, ext: RegExp): string[] =>
  readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name), ext) : ext.test(e.name) ? [join(dir, e.name)] : [],
  );

describe('error codes', () => {
  it('native/error-codes.h and lib/error-codes.ts list the same native codes', () => {
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
});
