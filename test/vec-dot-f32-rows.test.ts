// patches/0021: the block kernel for short F32 dot products (attention's query-key products) must
// give every product the one-row kernel's bits, or a verification row could differ from the
// one-token decode it replaces wherever threads split a head's keys into partial blocks (3 or more
// threads; the tests' 1-2 threads never do, so test/context.test.ts cannot see it). This compiles
// test/native/vec-dot-f32-rows.cpp with the patched tree's vec.cpp, for each x86 SIMD level this CPU
// runs (AVX-512 where present, and AVX2 as the portable prebuilt binary has it), and runs it.
// It needs a source build (deps/llama.cpp and the build's libggml-base.a) and a C++ compiler.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ggml = join(root, 'deps', 'llama.cpp', 'ggml');
const base = join(root, 'build', 'llama.cpp', 'ggml', 'src', 'libggml-base.a');
const compiler = ['g++', 'c++', 'clang++'].find((c) => spawnSync(c, ['--version']).status === 0);
const flags = process.platform === 'linux' ? (/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/) : [];
const levels: [string, string][] = [];
if (flags.includes('avx512f')) levels.push(['AVX-512 (-march=native)', '-march=native']);
if (flags.includes('avx2') && flags.includes('fma')) levels.push(['AVX2 (x86-64-v3, the portable binary)', '-march=x86-64-v3']);
const missing =
  process.arch !== 'x64'
    ? 'not an x86-64 machine'
    : !existsSync(join(ggml, 'src', 'ggml-cpu', 'vec.cpp')) || !existsSync(base)
      ? 'no source build here (deps/llama.cpp, build/)'
      : !compiler
        ? 'no C++ compiler'
        : levels.length === 0
          ? 'no AVX2 on this CPU (the kernel is not taken)'
          : null;

describe.skipIf(missing !== null)(`ggml_vec_dot_f32_rows equals ggml_vec_dot_f32 bit for bit${missing ? ` (skipped: ${missing})` : ''}`, () => {
  for (const [name, march] of levels) {
    it(name, () => {
      const dir = mkdtempSync(join(tmpdir(), 'layerskip-vec-'));
      try {
        const exe = join(dir, 'vec-dot-f32-rows');
        const include = ['ggml-cpu', '.'].map((d) => `-I${join(ggml, 'src', d)}`);
        execFileSync(
          compiler!,
          [
            '-O2',
            march,
            '-std=c++17',
            ...include,
            `-I${join(ggml, 'include')}`,
            join(root, 'test', 'native', 'vec-dot-f32-rows.cpp'),
            join(ggml, 'src', 'ggml-cpu', 'vec.cpp'),
            base,
            '-lpthread',
            '-o',
            exe,
          ],
          { stdio: ['ignore', 'ignore', 'pipe'] },
        );
        const run = spawnSync(exe, { encoding: 'utf8' });
        const summary = /width (\d+), lengths (\d+), products (\d+), differ (\d+)/.exec(run.stdout);
        expect(summary, run.stdout + run.stderr).not.toBeNull();
        // the block kernel takes every length of whole vectors up to 320: 16 floats with AVX-512, 8 with AVX2
        expect(Number(summary![1])).toBe(march === '-march=native' ? 16 : 8);
        expect(Number(summary![2])).toBe(320 / Number(summary![1]));
        expect(Number(summary![4]), run.stdout).toBe(0);
        expect(run.status).toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
