#!/usr/bin/env node
// Prepares deps/llama.cpp: the llama.cpp tree at the pinned commit with every patch in
// patches/ applied in order. Source: $LAYERSKIP_LLAMA_CPP_DIR (a git checkout that holds the
// pinned commit) or the git bundle that node-llama-cpp@3.21.1 ships. Idempotent: a stamp of
// the patches' hash skips the work when nothing changed, so rebuilds stay incremental.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const LLAMA_CPP_COMMIT = '80fb11ac73e66d89eae2c6a91d8a77428fa733ed';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const target = join(root, 'deps', 'llama.cpp');
const patchesDir = join(root, 'patches');
const stampFile = join(target, '.layerskip-patches');

const git = (args, cwd = target) =>
  execFileSync('git', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' }).trim();

function fail(message) {
  console.error(`layerskip: ${message}`);
  process.exit(1);
}

function findSource() {
  const fromEnv = process.env.LAYERSKIP_LLAMA_CPP_DIR;
  if (fromEnv) {
    const dir = resolve(fromEnv);
    let head;
    try {
      head = git(['rev-parse', `${LLAMA_CPP_COMMIT}^{commit}`], dir);
    } catch {
      fail(`LAYERSKIP_LLAMA_CPP_DIR=${dir} is not a git checkout that contains llama.cpp commit ${LLAMA_CPP_COMMIT}`);
    }
    if (head !== LLAMA_CPP_COMMIT) fail(`LAYERSKIP_LLAMA_CPP_DIR=${dir} does not hold commit ${LLAMA_CPP_COMMIT}`);
    return dir;
  }
  let dir = root;
  for (;;) {
    const bundle = join(dir, 'node_modules', 'node-llama-cpp', 'llama', 'gitRelease.bundle');
    if (existsSync(bundle)) return bundle;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  fail('no llama.cpp source: install the devDependency node-llama-cpp@3.21.1 (its llama/gitRelease.bundle ' +
    'carries the pinned tree) or set LAYERSKIP_LLAMA_CPP_DIR to a llama.cpp checkout at commit ' + LLAMA_CPP_COMMIT);
}

function patchFiles() {
  if (!existsSync(patchesDir)) return [];
  return readdirSync(patchesDir).filter((f) => f.endsWith('.patch')).sort();
}

export function prepareLlama({ quiet = false } = {}) {
  const log = quiet ? () => {} : (m) => console.error(`layerskip: ${m}`);
  const patches = patchFiles();
  const hash = createHash('sha256');
  hash.update(LLAMA_CPP_COMMIT);
  for (const f of patches) hash.update(f).update(readFileSync(join(patchesDir, f)));
  const stamp = hash.digest('hex');

  if (existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === stamp) {
    log('llama.cpp tree is up to date');
    return target;
  }

  if (!existsSync(join(target, '.git'))) {
    rmSync(target, { recursive: true, force: true });
    const source = findSource();
    log(`cloning llama.cpp ${LLAMA_CPP_COMMIT.slice(0, 7)} from ${source}`);
    execFileSync('git', ['clone', '--quiet', '--no-checkout', source, target], { stdio: 'inherit' });
  }
  try {
    git(['-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--force', '--detach', LLAMA_CPP_COMMIT]);
  } catch (e) {
    fail(`deps/llama.cpp does not contain commit ${LLAMA_CPP_COMMIT}; delete deps/llama.cpp and retry (${e.message})`);
  }
  git(['clean', '-fdq']);
  for (const f of patches) {
    try {
      git(['apply', '--whitespace=nowarn', join(patchesDir, f)]);
    } catch (e) {
      fail(`patch ${join('patches', f)} does not apply to llama.cpp ${LLAMA_CPP_COMMIT}:\n${e.stderr || e.message}`);
    }
    log(`applied ${f}`);
  }
  writeFileSync(stampFile, stamp + '\n');
  return target;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  prepareLlama();
}
