#!/usr/bin/env node
// Builds the prebuilt binary shipped in the npm tarball: prebuildify (N-API, so one binary serves
// every Node and Electron version with N-API 8) runs node-gyp on binding.gyp in a scratch copy of
// the package, against llama.cpp built for a portable CPU (GGML_NATIVE=OFF: x86-64 with
// AVX2/FMA/F16C, no -march=native); the result lands in prebuilds/<platform>-<arch>/. On x64 a
// second binary for CPUs without AVX2 (SSE4.2 only) goes to prebuilds/<platform>-x64/baseline/.
// LAYERSKIP_PREBUILD_OUT writes elsewhere than prebuilds/, LAYERSKIP_SKIP_BASELINE=1 skips the
// second binary, and the backend variables of scripts/gyp-llama.mjs apply (LAYERSKIP_CUDA=1 ...):
// scripts/check-cuda-build.sh uses them to check the node-gyp path of a CUDA build.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { localNodeGyp } from './build-options.mjs';
import { prepareLlama } from './prepare-llama.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(root, process.env.LAYERSKIP_PREBUILD_OUT ?? 'prebuilds');
prepareLlama();
const prebuildify = join(dirname(createRequire(import.meta.url).resolve('prebuildify/package.json')), 'bin.js');
// node-gyp needs Node's headers (offline: the ones beside this node binary) and, since prebuildify
// looks for `node-gyp` on PATH otherwise, the node-gyp npm ships
const { nodedir, nodeGyp } = localNodeGyp();
if (!existsSync(join(nodedir, 'include', 'node', 'node_api.h'))) {
  throw new Error(`no Node headers under ${nodedir}: set npm_config_nodedir`);
}

/** Runs prebuildify for one CPU variant in a scratch copy; returns the folder holding prebuilds/. */
function prebuild(variant) {
  const scratch = mkdtempSync(join(tmpdir(), 'layerskip-prebuild-'));
  for (const p of ['package.json', 'binding.gyp', 'native', 'scripts']) cpSync(join(root, p), join(scratch, p), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(scratch, 'node_modules'), 'dir');
  // target: this Node (an N-API binary serves later Nodes and Electron too); its headers are local
  execFileSync(process.execPath, [prebuildify, '--napi', '--strip', '--target', process.versions.node, '--node-gyp', nodeGyp], {
    cwd: scratch,
    stdio: 'inherit',
    env: { ...process.env, LAYERSKIP_ROOT: root, LAYERSKIP_CPU_VARIANT: variant, npm_config_nodedir: nodedir },
  });
  return scratch;
}

const t0 = performance.now();
const scratches = [];
try {
  const main = prebuild('avx2');
  scratches.push(main);
  rmSync(out, { recursive: true, force: true });
  cpSync(join(main, 'prebuilds'), out, { recursive: true });
  // x64 CPUs without AVX2 get a second binary, in a subfolder node-gyp-build does not scan;
  // lib/native/binding.ts picks it from the CPU's flags
  if (process.arch === 'x64' && !process.env.LAYERSKIP_SKIP_BASELINE) {
    const base = prebuild('baseline');
    scratches.push(base);
    const dir = join(base, 'prebuilds', `${process.platform}-${process.arch}`);
    const file = readdirSync(dir).find((f) => f.endsWith('.node'));
    if (!file) throw new Error(`no .node file in ${dir}`);
    mkdirSync(join(out, `${process.platform}-${process.arch}`, 'baseline'), { recursive: true });
    cpSync(join(dir, file), join(out, `${process.platform}-${process.arch}`, 'baseline', 'layerskip.node'));
  }
  console.error(`layerskip: ${out} written in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
} finally {
  for (const s of scratches) rmSync(s, { recursive: true, force: true });
}
