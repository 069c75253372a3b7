#!/usr/bin/env node
// Prepares deps/llama.cpp: the llama.cpp tree at the pinned commit with every patch in
// patches/ applied in order. Source: $LAYERSKIP_LLAMA_CPP_DIR (a git checkout that holds the
// pinned commit) or the git bundle that node-llama-cpp@3.21.1 ships. Idempotent: a stamp of
// the patches' hash skips the work when nothing changed, so rebuilds stay incremental.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const LLAMA_CPP_COMMIT = '80fb11ac73e66d89eae2c6a91d8a77428fa733ed';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const target = join(root, 'deps', 'llama.cpp');
const patchesDir = join(root, 'patches');
const stampFile = join(target, '.layerskip-patches');

const git = (args, cwd = target) => execFileSync('git', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' }).trim();

/** @returns {never} */
function fail(message) {
  console.error(`layerskip: ${message}`);
  process.exit(1);
}

/** @returns {string} */
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
  fail(
    'no llama.cpp source: install the devDependency node-llama-cpp@3.21.1 (its llama/gitRelease.bundle ' +
      'carries the pinned tree) or set LAYERSKIP_LLAMA_CPP_DIR to a llama.cpp checkout at commit ' +
      LLAMA_CPP_COMMIT,
  );
}

function patchFiles() {
  if (!existsSync(patchesDir)) return [];
  return readdirSync(patchesDir)
    .filter((f) => f.endsWith('.patch'))
    .sort();
}

// Applies the patches to pristine copies of the files they touch (in a scratch folder), then
// writes into deps/llama.cpp only the files whose content differs, so that the build system
// recompiles only what a patch change really touches (a checkout would touch every patched file).
function applyPatches(patches, log) {
  const scratch = mkdtempSync(join(tmpdir(), 'layerskip-llama-'));
  try {
    const touched = new Set(git(['diff', '--name-only', 'HEAD']).split('\n').filter(Boolean));
    for (const f of patches) {
      for (const line of readFileSync(join(patchesDir, f), 'utf8').split('\n')) {
        const m = /^\+\+\+ b\/(.+)$/.exec(line) ?? /^--- a\/(.+)$/.exec(line);
        if (m) touched.add(m[1]);
      }
    }
    for (const path of touched) {
      let original = null;
      try {
        original = execFileSync('git', ['show', `${LLAMA_CPP_COMMIT}:${path}`], { cwd: target, maxBuffer: 1 << 28 });
      } catch {
        original = null; // a file the patches create
      }
      if (original !== null) {
        mkdirSync(dirname(join(scratch, path)), { recursive: true });
        writeFileSync(join(scratch, path), original);
      }
    }
    for (const f of patches) {
      try {
        // outside any repository (git apply then works as a plain patch tool)
        execFileSync('git', ['apply', '--whitespace=nowarn', join(patchesDir, f)], {
          cwd: scratch,
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, GIT_CEILING_DIRECTORIES: dirname(scratch) },
        });
      } catch (e) {
        const err = /** @type {Error & { stderr?: Buffer }} */ (e);
        fail(`patch ${join('patches', f)} does not apply to llama.cpp ${LLAMA_CPP_COMMIT}:\n${err.stderr || err.message}`);
      }
      log(`applied ${f}`);
    }
    for (const path of touched) {
      const want = existsSync(join(scratch, path)) ? readFileSync(join(scratch, path)) : null;
      const dest = join(target, path);
      const have = existsSync(dest) ? readFileSync(dest) : null;
      if (want === null) {
        if (have !== null) rmSync(dest);
      } else if (have === null || !have.equals(want)) {
        mkdirSync(dirname(dest), { recursive: true });
        writeFileSync(dest, want);
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
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
  const head = (() => {
    try {
      return git(['rev-parse', 'HEAD']);
    } catch {
      return '';
    }
  })();
  if (head !== LLAMA_CPP_COMMIT) {
    try {
      git(['-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--force', '--detach', LLAMA_CPP_COMMIT]);
    } catch (e) {
      fail(`deps/llama.cpp does not contain commit ${LLAMA_CPP_COMMIT}; delete deps/llama.cpp and retry (${/** @type {Error} */ (e).message})`);
    }
  }
  applyPatches(patches, log);
  writeFileSync(stampFile, stamp + '\n');
  return target;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  prepareLlama();
}
