#!/usr/bin/env node
// Used by binding.gyp (the node-gyp path: prebuildify, @electron/rebuild): prepares the patched
// llama.cpp tree, builds llama + ggml as static libraries with CMake for a portable CPU baseline,
// and prints what gyp asks for:
//   node scripts/gyp-llama.mjs include   -> include directories
//   node scripts/gyp-llama.mjs libs      -> static libraries to link (built on first use)
//   node scripts/gyp-llama.mjs sources   -> the addon's sources (native/*.cc, as CMakeLists.txt globs them)
//   node scripts/gyp-llama.mjs definitions -> the llama.cpp CMake definitions this path configures with
// LAYERSKIP_ROOT overrides the folder that holds deps/ and build-llama-portable/ (prebuild.mjs
// runs node-gyp in a scratch copy of the package and points it back here).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendDefinitions, envFlag, llamaDefinitions } from './build-options.mjs';

const root = resolve(process.env.LAYERSKIP_ROOT ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
const llama = join(root, 'deps', 'llama.cpp');
// LAYERSKIP_CPU_VARIANT: 'avx2' (default: GGML_NATIVE=OFF, whose defaults are AVX/AVX2/FMA/F16C/BMI2)
// or 'baseline' (x86-64 with SSE4.2 only, for CPUs without AVX2)
const variant = process.env.LAYERSKIP_CPU_VARIANT ?? 'avx2';
if (!['avx2', 'baseline'].includes(variant)) {
  console.error(`gyp-llama: LAYERSKIP_CPU_VARIANT must be avx2 or baseline, got ${variant}`);
  process.exit(2);
}
// backends: LAYERSKIP_CUDA=1 (+ LAYERSKIP_CUDA_ARCHITECTURES) adds CUDA; Metal is llama.cpp's
// default on Apple (LAYERSKIP_METAL=0 turns it off); LAYERSKIP_CMAKE_ARGS passes more definitions
const cuda = envFlag('LAYERSKIP_CUDA');
const build = join(root, ['build-llama-portable', ...(variant === 'avx2' ? [] : [variant]), ...(cuda ? ['cuda'] : [])].join('-'));
const variantFlags =
  variant === 'baseline'
    ? ['-DGGML_AVX=OFF', '-DGGML_AVX2=OFF', '-DGGML_FMA=OFF', '-DGGML_F16C=OFF', '-DGGML_BMI2=OFF', '-DGGML_AVX512=OFF', '-DGGML_SSE42=ON']
    : [];
const backendFlags = backendDefinitions({
  cuda,
  cudaArch: process.env.LAYERSKIP_CUDA_ARCHITECTURES,
  metal: process.env.LAYERSKIP_METAL !== '0',
}).map((def) => `-D${def}`);
const what = process.argv[2];
// the shared list (scripts/llama-options.txt), then what only this path sets: a portable CPU
// baseline (prebuilt binaries), position-independent static libraries, the variant and backends
const definitions = [
  '-DCMAKE_BUILD_TYPE=Release',
  ...llamaDefinitions().map((d) => `-D${d}`),
  '-DCMAKE_POSITION_INDEPENDENT_CODE=ON',
  '-DGGML_NATIVE=OFF',
  ...variantFlags,
  ...backendFlags,
];

/** Static libraries in link order: llama, ggml, every backend that was built, ggml-base. */
function staticLibraries() {
  const ext = process.platform === 'win32' ? '.lib' : '.a';
  const found = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(ext) && /^(lib)?(llama|ggml)/.test(entry.name)) found.push(path);
    }
  };
  walk(join(build, 'src'));
  walk(join(build, 'ggml', 'src'));
  const rank = (path) => {
    const name = basename(path).replace(/^lib/, '').replace(ext, '');
    return name === 'llama' ? 0 : name === 'ggml' ? 1 : name === 'ggml-base' ? 3 : 2;
  };
  return found.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/** What the backends link against, read from the CMake cache (the same libraries CMake found). */
function systemLibraries() {
  if (process.platform === 'darwin') {
    return ['-framework Foundation', '-framework Metal', '-framework MetalKit', '-framework Accelerate'];
  }
  const out = process.platform === 'win32' ? [] : ['-lpthread'];
  if (!cuda) return out;
  const cache = readFileSync(join(build, 'CMakeCache.txt'), 'utf8');
  const entry = (name) => cache.match(new RegExp(`^${name}:[A-Z]+=(.*)$`, 'm'))?.[1];
  const noVmm = entry('GGML_CUDA_NO_VMM') === 'ON';
  for (const name of ['cudart', 'cublas', 'cublasLt', ...(noVmm ? [] : ['cuda_driver'])]) {
    const lib = entry(`CUDA_${name}_LIBRARY`);
    if (!lib || lib.endsWith('NOTFOUND')) throw new Error(`gyp-llama: CMake found no CUDA ${name} library (see ${build}/CMakeCache.txt)`);
    out.push(lib);
    if (process.platform !== 'win32') out.push(`-Wl,-rpath,${dirname(lib)}`);
  }
  return out;
}

if (what === 'definitions') {
  console.log(definitions.join('\n'));
} else if (what === 'sources') {
  const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'native');
  console.log(
    readdirSync(dir)
      .filter((f) => f.endsWith('.cc'))
      .sort()
      .map((f) => `native/${f}`)
      .join(' '),
  );
} else if (what === 'include') {
  console.log([join(llama, 'include'), join(llama, 'src'), join(llama, 'ggml', 'include'), join(llama, 'common'), join(llama, 'vendor')].join(' '));
} else if (what === 'libs') {
  const { prepareLlama } = await import(join(root, 'scripts', 'prepare-llama.mjs'));
  prepareLlama({ quiet: true });
  /** @type {import('node:child_process').ExecFileSyncOptions} */
  const quiet = { stdio: ['ignore', 'ignore', 'inherit'] };
  if (!existsSync(join(build, 'CMakeCache.txt'))) {
    execFileSync('cmake', ['-S', llama, '-B', build, ...definitions], quiet);
  }
  execFileSync('cmake', ['--build', build, '--config', 'Release', '--target', 'llama', '--parallel', String(cpus().length)], quiet);
  console.log([...staticLibraries(), ...systemLibraries()].join(' '));
} else {
  console.error('usage: gyp-llama.mjs include|libs|sources|definitions');
  process.exit(2);
}
