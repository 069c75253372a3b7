// One list of llama.cpp build options and one list of native sources for both build paths: the
// cmake-js source build (CMakeLists.txt) and the node-gyp path (binding.gyp + scripts/gyp-llama.mjs,
// used for prebuilt binaries, installed copies and @electron/rebuild). A drift would silently cost
// speed (OpenMP on, -march=native in a prebuild) or leave a source out of one binary.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
// @ts-expect-error a plain ES module script without types
import { llamaDefinitions } from '../scripts/build-options.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const gyp = (what: string) => execFileSync(process.execPath, [join(root, 'scripts', 'gyp-llama.mjs'), what], { cwd: root, encoding: 'utf8' }).trim();
const shared = llamaDefinitions() as string[];
const cache = join(root, 'build', 'CMakeCache.txt');

describe('build options', () => {
  it('the shared list holds the options that matter for speed and size', () => {
    expect(shared).toContain('GGML_OPENMP=OFF');
    expect(shared).toContain('BUILD_SHARED_LIBS=OFF');
    expect(shared).toContain('LLAMA_CURL=OFF');
  });

  it('the node-gyp path configures llama.cpp with the shared list, portable', () => {
    const defs = gyp('definitions').split('\n');
    for (const d of shared) expect(defs).toContain(`-D${d}`);
    expect(defs).toContain('-DGGML_NATIVE=OFF'); // never -march=native in a prebuilt binary
  });

  it.skipIf(!existsSync(cache))('the cmake-js build was configured with the same values', () => {
    const text = readFileSync(cache, 'utf8');
    for (const d of shared) {
      const [name, value] = d.split('=');
      expect(text, name).toMatch(new RegExp(`^${name}:[A-Z]+=${value}$`, 'm'));
    }
  });

  it('both paths compile the same native sources', () => {
    const sources = readdirSync(join(root, 'native'))
      .filter((f) => f.endsWith('.cc'))
      .sort();
    expect(gyp('sources').split(' ')).toEqual(sources.map((f) => `native/${f}`));
    const ninja = join(root, 'build', 'build.ninja');
    if (existsSync(ninja)) {
      const text = readFileSync(ninja, 'utf8');
      for (const f of sources) expect(text).toContain(`native/${f}.o`);
    }
  });
});
