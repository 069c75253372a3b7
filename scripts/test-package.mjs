#!/usr/bin/env node
// Package test: packs the library, checks the tarball's contents, installs it into an empty
// project with install scripts off (so only the prebuilt binary can make it work), and generates
// text from the bundled demo model (stories260K) there. Then, as on a platform without a prebuilt
// binary: another empty project, the prebuilds removed, the install script run, which builds from
// the llama.cpp sources the package ships (no node-llama-cpp anywhere), and the same text.
// Run `npm run build:prebuilt` first. LAYERSKIP_SKIP_SOURCE_BUILD=1 skips the source build.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { localNodeGyp } from './build-options.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
let passed = 0;
let failed = 0;
function check(name, fn) {
  try {
    fn();
    passed++;
    console.log(`  ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`  FAIL ${name}: ${/** @type {Error} */ (e).message}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

if (!existsSync(join(root, 'prebuilds'))) {
  console.error('test-package: no prebuilds/ (run `npm run build:prebuilt` first)');
  process.exit(1);
}
const work = mkdtempSync(join(tmpdir(), 'layerskip-package-'));
try {
  const [pack] = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8' }));
  const files = pack.files.map((f) => ({ path: f.path, size: f.size }));
  console.log(`packed ${pack.filename}: ${files.length} files, ${(pack.size / 1e6).toFixed(1)} MB`);
  check('no file over 50 MB', () => {
    const big = files.filter((f) => f.size > 50e6);
    assert(big.length === 0, big.map((f) => f.path).join(', '));
  });
  check('nothing from test/, bench/, build folders, nor llama.cpp beyond the sources a build needs', () => {
    const bad = files.filter((f) => /^(test|bench|build|build-[^/]*|models-generated|\.cache|node_modules)\//.test(f.path));
    assert(bad.length === 0, bad.map((f) => f.path).join(', '));
    const llamaExtra = files.filter(
      (f) => f.path.startsWith('deps/') && /^deps\/llama\.cpp\/(\.git|tests|tools|examples|models|docs|vendor\/cpp-httplib)\//.test(f.path),
    );
    // of common/, only the JSON-schema converter and the headers it includes
    const commonExtra = files.filter(
      (f) => f.path.startsWith('deps/llama.cpp/common/') && !/\/(CMakeLists\.txt|common\.h|json\.(h|cpp)|json-schema-to-grammar\.(h|cpp))$/.test(f.path),
    );
    assert(llamaExtra.length === 0 && commonExtra.length === 0, [...llamaExtra, ...commonExtra].map((f) => f.path).join(', '));
  });
  check('the patched llama.cpp sources are in (with their licence and patch stamp), the tarball under 15 MB', () => {
    for (const p of [
      'deps/llama.cpp/LICENSE',
      'deps/llama.cpp/.layerskip-patches',
      'deps/llama.cpp/CMakeLists.txt',
      'deps/llama.cpp/src/llama-context.cpp',
      'deps/llama.cpp/ggml/src/ggml-cpu/ggml-cpu.c',
      'deps/llama.cpp/ggml/src/ggml-metal/ggml-metal.cpp',
    ]) {
      assert(
        files.some((f) => f.path === p),
        `missing ${p}`,
      );
    }
    assert(pack.size < 15e6, `${(pack.size / 1e6).toFixed(1)} MB`);
  });
  check('the demo model is in, and no other model file', () => {
    const models = files.filter((f) => /\.gguf$/i.test(f.path)).map((f) => f.path);
    assert(models.length === 1 && models[0] === 'models/stories260K.gguf', models.join(', ') || 'no model');
  });
  check('the prebuilt binary, the compiled library and its types are in', () => {
    assert(
      files.some((f) => /^prebuilds\/[^/]+\/.+\.node$/.test(f.path)),
      'no prebuilds/*/*.node',
    );
    for (const p of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/index.js', 'dist/gguf/index.js', 'dist/analysis/index.js']) {
      assert(
        files.some((f) => f.path === p),
        `missing ${p}`,
      );
    }
  });

  const app = join(work, 'app');
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'module', private: true }));
  execFileSync('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', join(work, pack.filename)], { cwd: app, stdio: 'inherit' });
  check('installed without a build folder (scripts were off)', () => {
    assert(!existsSync(join(app, 'node_modules', 'layerskip', 'build')), 'a build/ folder exists');
  });
  writeFileSync(
    join(app, 'run.mjs'),
    `
import { DEMO_MODEL_PATH, loadModel, systemInfo } from 'layerskip';
import { writeRandomLlamaModel } from 'layerskip/gguf';
import { linearCka } from 'layerskip/analysis';
const model = await loadModel(DEMO_MODEL_PATH);
const ctx = await model.createContext({ contextSize: 256 });
const r = await ctx.generate('Once upon a time', { maxTokens: 24 }).result;
const s = await ctx.generate('Once upon a time', { maxTokens: 24, selfSpeculative: { exitLayer: 4, draftTokens: 3 } }).result;
console.log(JSON.stringify({ text: r.text, same: s.text === r.text, devices: systemInfo().devices.length,
  gguf: typeof writeRandomLlamaModel, cka: typeof linearCka }));
model.dispose();
`,
  );
  const run = (env = {}) =>
    JSON.parse(
      execFileSync(process.execPath, ['run.mjs'], { cwd: app, encoding: 'utf8', env: { ...process.env, ...env } })
        .trim()
        .split('\n')
        .pop() ?? '',
    );
  const out = run();
  check('generates text from stories260K with the prebuilt binary', () => {
    assert(out.text.startsWith(', there was a little girl named Lily'), JSON.stringify(out.text));
    assert(out.same, 'self-speculative text differs');
    assert(out.gguf === 'function' && out.cka === 'function', 'subpath exports');
  });
  if (process.arch === 'x64' && process.platform === 'linux') {
    check('the baseline (no AVX2) binary is packed, loads, and gives the same text', () => {
      assert(
        files.some((f) => f.path === 'prebuilds/linux-x64/baseline/layerskip.node'),
        'no prebuilds/linux-x64/baseline/layerskip.node',
      );
      const base = run({ LAYERSKIP_CPU_VARIANT: 'baseline' });
      assert(base.text === out.text && base.same, JSON.stringify(base));
    });
  }
  check('the CLI runs from the installed package, on the demo model without -m', () => {
    const demo = join(app, 'node_modules', 'layerskip', 'models', 'stories260K.gguf');
    const cli = execFileSync(join(app, 'node_modules', '.bin', 'layerskip'), ['info', '-m', demo], { encoding: 'utf8' });
    assert(/layers\s+5/.test(cli), cli);
    const r = spawnSync(join(app, 'node_modules', '.bin', 'layerskip'), ['generate', '-p', 'Once upon a time', '-n', '24'], { encoding: 'utf8' });
    assert(r.status === 0 && r.stdout.startsWith('Once upon a time, there was a little girl named Lily'), r.stdout + r.stderr);
    assert(/demo model/.test(r.stderr), r.stderr);
  });
  writeFileSync(join(app, 'req.cjs'), `try { require('layerskip'); console.log('loaded'); } catch (e) { console.log(e.message); }`);
  check('CommonJS require fails with a clear message', () => {
    const msg = execFileSync(process.execPath, ['req.cjs'], { cwd: app, encoding: 'utf8' });
    assert(/ES module/.test(msg), msg);
  });
  check('types resolve under moduleResolution node16 and bundler', () => {
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    writeFileSync(
      join(app, 'use.ts'),
      `import { loadModel, type GenerationResult } from 'layerskip';\nimport { pca } from 'layerskip/analysis';\nexport const f: typeof loadModel = loadModel; export type R = GenerationResult; export const g = pca;\n`,
    );
    for (const [module, resolution] of [
      ['node16', 'node16'],
      ['esnext', 'bundler'],
    ]) {
      execFileSync(
        process.execPath,
        [
          tsc,
          '--noEmit',
          '--strict',
          '--skipLibCheck',
          '--module',
          module,
          '--moduleResolution',
          resolution,
          '--target',
          'es2022',
          '--types',
          'node',
          '--typeRoots',
          join(root, 'node_modules', '@types'),
          'use.ts',
        ],
        { cwd: app, stdio: 'pipe' },
      );
    }
  });

  if (process.env.LAYERSKIP_SKIP_SOURCE_BUILD !== '1') {
    // a platform without a prebuilt binary: no prebuilds, the install script builds from the shipped sources
    const fresh = join(work, 'from-source');
    execFileSync('mkdir', ['-p', fresh]);
    writeFileSync(join(fresh, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'module', private: true }));
    execFileSync('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', join(work, pack.filename)], { cwd: fresh, stdio: 'inherit' });
    const pkg = join(fresh, 'node_modules', 'layerskip');
    rmSync(join(pkg, 'prebuilds'), { recursive: true, force: true });
    writeFileSync(join(fresh, 'run.mjs'), readFileSync(join(app, 'run.mjs')));
    check('no node-llama-cpp in the source-build project', () => {
      assert(!existsSync(join(fresh, 'node_modules', 'node-llama-cpp')), 'node-llama-cpp is installed');
    });
    // what npm runs for the install script: npm's own node-gyp; Node's headers from beside this node (offline)
    const { nodeGyp, nodedir } = localNodeGyp();
    const t0 = Date.now();
    const build = spawnSync(process.execPath, [join(pkg, 'scripts', 'install.mjs')], {
      cwd: pkg,
      encoding: 'utf8',
      env: { ...process.env, npm_config_node_gyp: nodeGyp, npm_config_nodedir: nodedir },
    });
    console.log(`  source build: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    check('the install script builds the addon from the shipped llama.cpp sources', () => {
      assert(build.status === 0, `${build.stdout}\n${build.stderr}`.slice(-3000));
      assert(existsSync(join(pkg, 'build', 'Release', 'layerskip.node')), 'no build/Release/layerskip.node');
    });
    check('the source-built addon generates the same text', () => {
      const built = JSON.parse(execFileSync(process.execPath, ['run.mjs'], { cwd: fresh, encoding: 'utf8' }).trim().split('\n').pop() ?? '');
      assert(built.text === out.text && built.same, JSON.stringify(built));
    });
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
