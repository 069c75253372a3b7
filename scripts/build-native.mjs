#!/usr/bin/env node
// Source build of the native addon: prepares the patched llama.cpp tree, then runs cmake-js
// (CMakeLists.txt) to build llama + ggml as static libraries and the N-API module in build/.
//
//   node scripts/build-native.mjs [--cuda] [--cuda-arch 90] [--portable] [--no-metal] [--debug] [--out DIR]
//
// Environment equivalents: LAYERSKIP_CUDA=1, LAYERSKIP_CUDA_ARCHITECTURES=90,
// LAYERSKIP_PORTABLE=1, LAYERSKIP_METAL=0, LAYERSKIP_BUILD_JOBS=N, LAYERSKIP_CMAKE_ARGS="-DX=Y ...".
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { backendDefinitions, envFlag } from './build-options.mjs';
import { prepareLlama } from './prepare-llama.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const known = { '--cuda': 0, '--cuda-arch': 1, '--portable': 0, '--no-metal': 0, '--debug': 0, '--out': 1 };
for (let i = 0; i < args.length; i++) {
  if (!(args[i] in known) || (known[args[i]] === 1 && args[i + 1] === undefined)) {
    console.error(`layerskip: unknown or incomplete build option ${args[i]}; options: ${Object.keys(known).join(' ')} (--cuda-arch and --out take a value)`);
    process.exit(2);
  }
  i += known[args[i]];
}
const flag = (name, env) => args.includes(name) || envFlag(env);
const flagValue = (name, env) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : process.env[env];
};

const cuda = flag('--cuda', 'LAYERSKIP_CUDA');
const cudaArch = flagValue('--cuda-arch', 'LAYERSKIP_CUDA_ARCHITECTURES');
const portable = flag('--portable', 'LAYERSKIP_PORTABLE');
const noMetal = args.includes('--no-metal') || process.env.LAYERSKIP_METAL === '0';
const debug = args.includes('--debug');
const out = flagValue('--out', 'LAYERSKIP_BUILD_DIR') ?? 'build';
const jobs = process.env.LAYERSKIP_BUILD_JOBS ?? String(Math.max(1, cpus().length));

prepareLlama();

const cmakeArgs = [`LAYERSKIP_PORTABLE=${portable ? 'ON' : 'OFF'}`, ...backendDefinitions({ cuda, cudaArch, metal: !noMetal })].map((def) => `--CD${def}`);

const require = createRequire(import.meta.url);
const cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
const build = spawnSync(
  process.execPath,
  [cmakeJs, 'build', '--directory', root, '--out', out, '--parallel', jobs, ...(debug ? ['--debug'] : []), ...cmakeArgs],
  { stdio: 'inherit', cwd: root },
);
if (build.status !== 0) {
  console.error('layerskip: native build failed (see the output above)');
  process.exit(build.status ?? 1);
}
console.error(`layerskip: built ${join(root, out, debug ? 'Debug' : 'Release', 'layerskip.node')}`);
