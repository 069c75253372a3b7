#!/usr/bin/env node
// npm install hook: use a prebuilt binary (prebuilds/) or an earlier source build (build/) when one
// loads on this machine; otherwise build from source (scripts/build-native.mjs).
// LAYERSKIP_BUILD_FROM_SOURCE=1 forces a source build.
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const probe = `require('node-gyp-build')(${JSON.stringify(root)})`;

if (!process.env.LAYERSKIP_BUILD_FROM_SOURCE) {
  // in a child process: a binary for another platform or ABI must not crash this one
  const test = spawnSync(process.execPath, ['-e', probe], { cwd: root, stdio: 'pipe' });
  if (test.status === 0) {
    console.error('layerskip: using the existing native binary');
    process.exit(0);
  }
}
const build = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs'), ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
process.exit(build.status ?? 1);
