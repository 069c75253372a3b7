#!/usr/bin/env node
// Builds llama.cpp's own command-line peers (llama-bench, llama-speculative-simple, llama-lookup)
// from the same patched tree the addon uses (deps/llama.cpp, read only here) into build-peers/, so
// that bench/peers.ts can compare against them. CPU only, Release, static libraries, and the same
// ggml CPU settings as the addon's local build (CMakeLists.txt, scripts/llama-options.txt):
// GGML_NATIVE=ON with AMX disabled (it faults under this VM's hypervisor) and no OpenMP (the
// addon uses ggml's thread pool), so the peers run the same kernels as ours.
//
// With --upstream, the same tools from the pinned commit without our patches (deps/llama.cpp-upstream,
// checked out here from deps/llama.cpp's history, into build-peers-upstream/): llama.cpp as its users
// build it. Our patches 0015-0022 make CPU decoding and verification cheaper (short dot products,
// the KV window, two-row kernels, kept graphs, F32 dot products in blocks, V cache stores); the
// patched peers have them too, the upstream ones do not.
//
//   node bench/build-peers.mjs [--force] [--upstream]
//
// Idempotent: does nothing when every binary exists and the last successful build is newer than
// every file of the tree and than this script. Environment: LAYERSKIP_BUILD_JOBS (default 2).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const upstream = process.argv.includes('--upstream');
const patched = join(root, 'deps', 'llama.cpp');
const tree = upstream ? join(root, 'deps', 'llama.cpp-upstream') : patched;
const out = join(root, upstream ? 'build-peers-upstream' : 'build-peers');
const binDir = join(out, 'bin');
// Written after each successful build: ninja does not relink when only a file the binaries do not
// depend on changed (a README), so the binaries' own times cannot say "built after the tree".
const stamp = join(out, 'peers.stamp');
const targets = ['llama-bench', 'llama-speculative-simple', 'llama-lookup'];
const jobs = process.env.LAYERSKIP_BUILD_JOBS ?? '2';

// The addon's CMakeLists.txt adds these beside -march=native (GCC lets explicit -mno-* win whatever
// the order); ggml would otherwise route Q8_0/Q4_0 products through AMX kernels that SIGILL here.
const noAmx = '-mno-amx-tile -mno-amx-int8 -mno-amx-bf16';

const definitions = [
  'CMAKE_BUILD_TYPE=Release',
  'BUILD_SHARED_LIBS=OFF',
  'GGML_NATIVE=ON',
  'GGML_OPENMP=OFF', // as scripts/llama-options.txt: ggml's thread pool, like the addon
  'GGML_CCACHE=OFF',
  'GGML_RPC=OFF', // the addon has it on, but it only adds a backend these peers never use
  'GGML_CUDA=OFF',
  'GGML_METAL=OFF',
  'GGML_VULKAN=OFF',
  'LLAMA_BUILD_COMMON=ON', // common/ (argument parsing, sampling, speculative) is what the peers are
  'LLAMA_BUILD_TOOLS=ON', // llama-bench
  'LLAMA_BUILD_EXAMPLES=ON', // llama-speculative-simple, llama-lookup
  'LLAMA_BUILD_TESTS=OFF',
  'LLAMA_BUILD_SERVER=OFF',
  'LLAMA_BUILD_APP=OFF',
  'LLAMA_CURL=OFF',
  'LLAMA_OPENSSL=OFF',
  `CMAKE_C_FLAGS=${noAmx}`,
  `CMAKE_CXX_FLAGS=${noAmx}`,
];

function log(msg) {
  process.stderr.write(`[build-peers] ${msg}\n`);
}

/** Newest modification time (ms) of any file under `dir`, skipping .git. */
function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === '.git') continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(path));
    else if (entry.isFile()) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

function upToDate() {
  const sources = Math.max(newestMtime(tree), statSync(fileURLToPath(import.meta.url)).mtimeMs);
  return existsSync(stamp) && statSync(stamp).mtimeMs > sources && targets.every((t) => existsSync(join(binDir, t)));
}

function run(cmd, args) {
  log(`${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    log(`${cmd} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status ?? 1);
  }
}

function hasNinja() {
  return spawnSync('ninja', ['--version'], { stdio: 'ignore' }).status === 0;
}

if (!existsSync(join(patched, 'CMakeLists.txt'))) {
  log(`llama.cpp tree not found at ${patched}: run \`node scripts/prepare-llama.mjs\` first`);
  process.exit(1);
}
if (upstream) {
  // the pinned commit as it is: a clone of the patched tree's repository (its patches are only in
  // its working files), checked out at the commit that tree is at (again if the pin moved)
  const head = (dir) => execFileSync('git', ['rev-parse', 'HEAD'], { cwd: dir, encoding: 'utf8' }).trim();
  const commit = head(patched);
  if (!existsSync(join(tree, '.git'))) run('git', ['clone', '--quiet', '--no-checkout', patched, tree]);
  if (!existsSync(join(tree, 'CMakeLists.txt')) || head(tree) !== commit) {
    run('git', ['-C', tree, 'fetch', '--quiet', patched, commit]);
    run('git', ['-C', tree, 'checkout', '--quiet', '--force', '--detach', commit]);
  }
}
if (!process.argv.includes('--force') && upToDate()) {
  log('up to date');
} else {
  // Configuring again is cheap and picks up changed definitions; an existing cache keeps its
  // generator, so only choose one for a fresh directory.
  const fresh = !existsSync(join(out, 'CMakeCache.txt'));
  const generator = fresh && hasNinja() ? ['-G', 'Ninja'] : [];
  run('cmake', [
    '-S',
    tree,
    '-B',
    out,
    ...generator,
    ...definitions.map((d) => `-D${d}`),
    // binaries in one folder whatever the generator
    `-DCMAKE_RUNTIME_OUTPUT_DIRECTORY=${binDir}`,
  ]);
  run('cmake', ['--build', out, '--config', 'Release', '--parallel', jobs, '--target', ...targets]);
  const missing = targets.filter((t) => !existsSync(join(binDir, t)));
  if (missing.length > 0) {
    log(`build finished but ${missing.join(', ')} missing from ${binDir}`);
    process.exit(1);
  }
  writeFileSync(stamp, `${new Date().toISOString()}\n`);
}
for (const t of targets) console.log(join(binDir, t));
