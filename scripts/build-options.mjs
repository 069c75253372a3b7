// The build options that the two native build paths share (scripts/build-native.mjs for cmake-js,
// scripts/gyp-llama.mjs for node-gyp), so both turn them into the same llama.cpp CMake definitions.

import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/**
 * The llama.cpp CMake definitions (NAME=VALUE) of every build, from scripts/llama-options.txt, the
 * list CMakeLists.txt reads too.
 */
export function llamaDefinitions() {
  const text = readFileSync(new URL('./llama-options.txt', import.meta.url), 'utf8');
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^[A-Z_0-9]+=/.test(l));
}

/** An on/off environment variable: 1, on or true (any case) turn it on. */
export function envFlag(name) {
  return ['1', 'on', 'true'].includes(String(process.env[name] ?? '').toLowerCase());
}

/**
 * llama.cpp backend definitions (NAME=VALUE) for the chosen backends, then the extra definitions
 * in LAYERSKIP_CMAKE_ARGS ("-DNAME=VALUE ..."). Metal is llama.cpp's default on Apple.
 */
export function backendDefinitions({ cuda = false, cudaArch, metal = true }) {
  const defs = [];
  if (cuda) defs.push('GGML_CUDA=ON');
  if (cuda && cudaArch) defs.push(`CMAKE_CUDA_ARCHITECTURES=${cudaArch}`);
  if (!metal) defs.push('GGML_METAL=OFF');
  // e.g. LAYERSKIP_CMAKE_ARGS="-DCUDA_cublas_LIBRARY=/path/libcublas.so"
  for (const def of (process.env.LAYERSKIP_CMAKE_ARGS ?? '').split(/\s+/).filter(Boolean)) {
    if (!def.startsWith('-D')) throw new Error(`LAYERSKIP_CMAKE_ARGS: expected -DNAME=VALUE, got ${def}`);
    defs.push(def.slice(2));
  }
  return defs;
}

/**
 * What node-gyp needs offline: Node's headers (npm_config_nodedir, else the ones installed beside
 * this node binary) and the node-gyp npm ships (npm_config_node_gyp, else npm's own copy).
 */
export function localNodeGyp() {
  const prefix = resolve(dirname(process.execPath), '..');
  return {
    nodedir: process.env.npm_config_nodedir ?? prefix,
    nodeGyp: process.env.npm_config_node_gyp ?? join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  };
}
