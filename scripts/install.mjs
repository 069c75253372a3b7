#!/usr/bin/env node
// npm install hook: use a prebuilt binary (prebuilds/) or an earlier source build (build/) when one
// loads on this machine; otherwise build from source (scripts/build-native.mjs).
// LAYERSKIP_BUILD_FROM_SOURCE=1 forces a source build, and so does asking for CUDA
// (LAYERSKIP_CUDA=1): the prebuilt binaries are CPU-only.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { envFlag } from './build-options.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const probe = `require('node-gyp-build')(${JSON.stringify(root)})`;

if (!process.env.LAYERSKIP_BUILD_FROM_SOURCE && !envFlag('LAYERSKIP_CUDA')) {
  // in a child process: a binary for another platform or ABI must not crash this one
  const test = spawnSync(process.execPath, ['-e', probe], { cwd: root, stdio: 'pipe' });
  if (test.status === 0) {
    console.error('layerskip: using the existing native binary');
    process.exit(0);
  }
}
// a development checkout has cmake-js (devDependency) and builds with CMakeLists.txt; an installed
// copy builds through binding.gyp with npm's own node-gyp
let hasCmakeJs = true;
try {
  createRequire(import.meta.url).resolve('cmake-js/package.json');
} catch {
  hasCmakeJs = false;
}
const build = hasCmakeJs
  ? spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs'), ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' })
  : process.env.npm_config_node_gyp
    ? spawnSync(process.execPath, [process.env.npm_config_node_gyp, 'rebuild'], { cwd: root, stdio: 'inherit' })
    : spawnSync('node-gyp', ['rebuild'], { cwd: root, stdio: 'inherit', shell: true });
if (build.status !== 0) {
  console.error(
    'layerskip: no prebuilt binary fits this platform and the source build failed. It needs CMake and a C++17 ' +
      'compiler (Xcode command-line tools on macOS, the C++ workload of Visual Studio on Windows); the llama.cpp ' +
      'sources ship in the package (deps/llama.cpp). See "Installing from npm" in the README.',
  );
}
process.exit(build.status ?? 1);
