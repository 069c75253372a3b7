#!/usr/bin/env node
// Used by binding.gyp (the node-gyp path: prebuildify, @electron/rebuild): prepares the patched
// llama.cpp tree, builds llama + ggml as static libraries with CMake for a portable CPU baseline,
// and prints what gyp asks for:
//   node scripts/gyp-llama.mjs include   -> include directories
//   node scripts/gyp-llama.mjs libs      -> static libraries to link (built on first use)
// LAYERSKIP_ROOT overrides the folder that holds deps/ and build-llama-portable/ (prebuild.mjs
// runs node-gyp in a scratch copy of the package and points it back here).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(process.env.LAYERSKIP_ROOT ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
const llama = join(root, 'deps', 'llama.cpp');
// LAYERSKIP_CPU_VARIANT: 'avx2' (default: GGML_NATIVE=OFF, whose defaults are AVX/AVX2/FMA/F16C/BMI2)
// or 'baseline' (x86-64 with SSE4.2 only, for CPUs without AVX2)
const variant = process.env.LAYERSKIP_CPU_VARIANT ?? 'avx2';
if (!['avx2', 'baseline'].includes(variant)) {
  console.error(`gyp-llama: LAYERSKIP_CPU_VARIANT must be avx2 or baseline, got ${variant}`);
  process.exit(2);
}
const build = join(root, variant === 'avx2' ? 'build-llama-portable' : `build-llama-portable-${variant}`);
const variantFlags = variant === 'baseline'
  ? ['-DGGML_AVX=OFF', '-DGGML_AVX2=OFF', '-DGGML_FMA=OFF', '-DGGML_F16C=OFF', '-DGGML_BMI2=OFF', '-DGGML_AVX512=OFF', '-DGGML_SSE42=ON']
  : [];
const what = process.argv[2];

if (what === 'include') {
  console.log([join(llama, 'include'), join(llama, 'src'), join(llama, 'ggml', 'include')].join(' '));
} else if (what === 'libs') {
  const { prepareLlama } = await import(join(root, 'scripts', 'prepare-llama.mjs'));
  prepareLlama({ quiet: true });
  const quiet = { stdio: ['ignore', 'ignore', 'inherit'] };
  if (!existsSync(join(build, 'CMakeCache.txt'))) {
    execFileSync('cmake', ['-S', llama, '-B', build, '-DCMAKE_BUILD_TYPE=Release', '-DBUILD_SHARED_LIBS=OFF',
      '-DCMAKE_POSITION_INDEPENDENT_CODE=ON', '-DGGML_NATIVE=OFF', '-DGGML_OPENMP=OFF', '-DLLAMA_BUILD_TESTS=OFF',
      '-DLLAMA_BUILD_EXAMPLES=OFF', '-DLLAMA_BUILD_TOOLS=OFF', '-DLLAMA_BUILD_SERVER=OFF', '-DLLAMA_BUILD_APP=OFF',
      '-DLLAMA_BUILD_COMMON=OFF', '-DLLAMA_OPENSSL=OFF', '-DLLAMA_CURL=OFF', '-DGGML_CCACHE=OFF',
      ...variantFlags, ...(process.env.LAYERSKIP_CUDA === '1' ? ['-DGGML_CUDA=ON'] : [])], quiet);
  }
  execFileSync('cmake', ['--build', build, '--config', 'Release', '--target', 'llama', '--parallel', String(cpus().length)], quiet);
  const libs = process.platform === 'win32'
    ? ['src/Release/llama.lib', 'ggml/src/Release/ggml.lib', 'ggml/src/Release/ggml-cpu.lib', 'ggml/src/Release/ggml-base.lib']
    : ['src/libllama.a', 'ggml/src/libggml.a', 'ggml/src/libggml-cpu.a', 'ggml/src/libggml-base.a'];
  console.log(libs.map((l) => join(build, l)).join(' ') + (process.platform === 'darwin' ? ' -framework Accelerate -framework Metal -framework Foundation' : ' -lpthread'));
} else {
  console.error('usage: gyp-llama.mjs include|libs');
  process.exit(2);
}
