#!/usr/bin/env node
// Builds the prebuilt binary shipped in the npm tarball: prebuildify (N-API, so one binary serves
// every Node and Electron version with N-API 8) runs node-gyp on binding.gyp in a scratch copy of
// the package, against llama.cpp built for a portable CPU baseline (GGML_NATIVE=OFF: x86-64 with
// AVX2/FMA/F16C, no -march=native), and the result lands in prebuilds/<platform>-<arch>/.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareLlama } from './prepare-llama.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
prepareLlama();
const scratch = mkdtempSync(join(tmpdir(), 'layerskip-prebuild-'));
try {
  for (const p of ['package.json', 'binding.gyp', 'native', 'scripts']) cpSync(join(root, p), join(scratch, p), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(scratch, 'node_modules'), 'dir');
  // node-gyp needs Node's headers; offline, use the ones installed beside this node binary
  const nodedir = process.env.npm_config_nodedir ?? resolve(dirname(process.execPath), '..');
  if (!existsSync(join(nodedir, 'include', 'node', 'node_api.h'))) {
    throw new Error(`no Node headers under ${nodedir}: set npm_config_nodedir`);
  }
  const prebuildify = join(dirname(createRequire(import.meta.url).resolve('prebuildify/package.json')), 'bin.js');
  // node-gyp: the one npm ships (prebuildify looks for `node-gyp` on PATH otherwise)
  const nodeGyp = process.env.npm_config_node_gyp ?? join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  const t0 = performance.now();
  // target: this Node (an N-API binary serves later Nodes and Electron too); its headers are local
  execFileSync(process.execPath, [prebuildify, '--napi', '--strip', '--target', process.versions.node, '--node-gyp', nodeGyp], {
    cwd: scratch,
    stdio: 'inherit',
    env: { ...process.env, LAYERSKIP_ROOT: root, npm_config_nodedir: nodedir },
  });
  rmSync(join(root, 'prebuilds'), { recursive: true, force: true });
  cpSync(join(scratch, 'prebuilds'), join(root, 'prebuilds'), { recursive: true });
  console.error(`layerskip: prebuilds/ written in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
