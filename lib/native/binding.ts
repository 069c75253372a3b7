// Loads the native addon (a prebuilt binary from prebuilds/ or a source build in build/) through
// node-gyp-build; its interface is contract.ts. Everything else in lib/ goes through these.
import { existsSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { NativeBinding } from './contract.js';

export type * from './contract.js';

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..'); // lib/native/ or dist/native/

/**
 * The prebuilt binary for x64 CPUs without AVX2 (SSE4.2 only), when this CPU needs it and no
 * source build exists: the main prebuilt binary requires AVX2/FMA/F16C.
 * LAYERSKIP_CPU_VARIANT=baseline forces it (for testing).
 */
function baselineBinary(): string | undefined {
  if (process.arch !== 'x64') return undefined;
  const file = join(packageRoot, 'prebuilds', `${process.platform}-x64`, 'baseline', 'layerskip.node');
  if (!existsSync(file)) return undefined;
  if (process.env.LAYERSKIP_CPU_VARIANT === 'baseline') return file;
  if (existsSync(join(packageRoot, 'build', 'Release', 'layerskip.node'))) return undefined; // a source build fits this CPU
  let flags = '';
  try {
    flags = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return undefined; // not Linux: no cheap way to read CPU flags; use the main binary
  }
  const has = (f: string) => new RegExp(`\\b${f}\\b`).test(flags);
  return has('avx2') && has('fma') && has('f16c') ? undefined : file;
}
let binding: NativeBinding | undefined;
let warming: Promise<NativeBinding> | undefined;

/** The binary to load: `$LAYERSKIP_BINARY`, the baseline prebuild this CPU needs, or node-gyp-build's pick. */
function binaryPath(require: NodeJS.Require): string {
  const explicit = process.env.LAYERSKIP_BINARY ?? baselineBinary();
  if (explicit) return explicit;
  const gypBuild = require('node-gyp-build') as { resolve(dir: string): string };
  return gypBuild.resolve(packageRoot);
}

/** The platforms whose binaries ship in the package (prebuilds/, made by `npm run build:prebuilt`). */
export const PREBUILT_PLATFORMS = ['linux-x64'] as const;

/**
 * The native addon, loaded on first use: `$LAYERSKIP_BINARY` if set, else the best match among
 * prebuilds/ and build/ (node-gyp-build). Throws a clear error when no binary fits this platform.
 * Loading is synchronous; the async entry points use `loadNative()`, which keeps it off this thread.
 */
export function native(): NativeBinding {
  if (binding) return binding;
  const require = createRequire(import.meta.url);
  try {
    binding = require(binaryPath(require)) as NativeBinding;
  } catch (e) {
    // no "layerskip:" prefix: the CLI adds its own, and an API caller's stack names the package
    const err = new Error(
      `no native binary of layerskip for ${process.platform}-${process.arch} (Node ${process.version}); ` +
        `prebuilt binaries ship for ${PREBUILT_PLATFORMS.join(', ')}. Two ways out: allow the package's install script ` +
        '(npm 11: `npm install-scripts approve layerskip`, then `npm rebuild layerskip`), which builds from the llama.cpp ' +
        'sources the package ships (needs CMake and a C++17 compiler), or run that build yourself with ' +
        '`LAYERSKIP_BUILD_FROM_SOURCE=1 npm rebuild layerskip`. ' +
        `Cause: ${(e as Error).message}`,
    );
    (err as NodeJS.ErrnoException).code = 'ERR_LAYERSKIP_NO_BINARY';
    throw err;
  }
  return binding;
}

// Loads the addon in a worker thread, then (while that thread still holds it) on this one.
// The first load maps the binary and its libraries and initializes llama.cpp's backends: ~10 ms
// for a CPU build, but ~350 ms for a CUDA build without a GPU (the cuBLAS libraries alone) and
// longer with one (CUDA device discovery). Done in the worker, the second load finds everything
// in place and returns at once, so the event loop is not held up.
const WARM_UP = `
const { parentPort, workerData } = require('node:worker_threads');
try {
  require(workerData);
} catch {
  // the main thread's own load reports the failure, with the explanatory error
}
parentPort.postMessage('done');
parentPort.once('message', () => parentPort.close()); // released once the main thread holds the addon
`;

/** `native()` without blocking the event loop: the async API (loadModel, quantizeModel) awaits this. */
export async function loadNative(): Promise<NativeBinding> {
  if (binding) return binding;
  warming ??= (async () => {
    let path: string;
    try {
      path = binaryPath(createRequire(import.meta.url));
    } catch {
      return native(); // no binary: native() throws the explanatory error
    }
    const worker = new Worker(WARM_UP, { eval: true, workerData: path });
    try {
      // then native(): immediate while the worker holds the library; on failure it throws the
      // explanatory error (a worker that crashed instead of answering leads there too)
      await once(worker, 'message').catch(() => undefined);
      return native();
    } finally {
      worker.postMessage('release');
      worker.unref();
    }
  })();
  try {
    return await warming;
  } finally {
    // a failed load may succeed later (e.g. after a build): do not cache the failure
    if (!binding) warming = undefined;
  }
}
