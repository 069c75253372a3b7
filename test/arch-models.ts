// Random models of every architecture the layer-range patch converted, written once per spec into
// the OS temp folder (as helpers.ts does for LLaMA shapes): GQA, a sliding window of 8 where the
// architecture has one, norm weights of 1 + 0.1 N(0, 1) so a misapplied norm shows.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sliceModel, writeRandomModel, type RandomModelSpec } from '../lib/gguf/index.js';

const GGUF_SOURCES = join(dirname(fileURLToPath(import.meta.url)), '..', 'lib', 'gguf');

const SLIDING_WINDOW_ARCHS: string[] = ['gemma2', 'gemma3', 'gpt-oss'];

/** The shape the architecture tests use: small, GQA (2 query heads per KV head), late layers damped. */
export function archSpec(arch: RandomModelSpec['arch'], seed = 31): RandomModelSpec {
  return {
    arch, nLayer: 4, nEmbd: 64, nHead: 4, nHeadKv: 2, nFf: 128, nVocab: 320, nCtx: 2048, seed, tensorType: 'f32',
    normJitter: 0.1, lateLayerScale: { fromLayer: 2, scale: 0.3 },
    ...(SLIDING_WINDOW_ARCHS.includes(arch) ? { slidingWindow: 8 } : {}),
  };
}

function cacheKey(parts: unknown[]): string {
  const h = createHash('sha256');
  // the generator's sources are part of the key: a changed generator must not reuse stale files
  for (const f of readdirSync(GGUF_SOURCES).sort()) h.update(f).update(readFileSync(join(GGUF_SOURCES, f)));
  for (const p of parts) h.update(JSON.stringify(p));
  return h.digest('hex').slice(0, 16);
}

function cached(name: string, write: (tmp: string) => void): string {
  const dir = join(tmpdir(), 'layerskip-test-models');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  if (!existsSync(path)) {
    const tmp = `${path}.${process.pid}.tmp`;
    write(tmp);
    renameSync(tmp, path);
  }
  return path;
}

/** Path of the random model for `spec`. */
export function archModel(spec: RandomModelSpec): string {
  return cached(`arch-${spec.arch}-${cacheKey([spec])}.gguf`, (tmp) => writeRandomModel(tmp, spec));
}

/** Path of `spec`'s model cut to its first `layers` layers. */
export function slicedArchModel(spec: RandomModelSpec, layers: number): string {
  const src = archModel(spec);
  return cached(`arch-${spec.arch}-${cacheKey([spec, layers])}-L${layers}.gguf`, (tmp) => sliceModel(src, tmp, layers));
}
