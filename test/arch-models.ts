// Random models of every architecture the layer-range patch converted, written once per spec into
// the OS temp folder (helpers.ts cachedModel): GQA, a sliding window of 8 where the
// architecture has one, norm weights of 1 + 0.1 N(0, 1) so a misapplied norm shows.
import { sliceModel, writeRandomModel, type RandomModelSpec } from '../lib/gguf/index.js';
import { cachedModel } from './helpers.js';

const SLIDING_WINDOW_ARCHS: string[] = ['gemma2', 'gemma3', 'gpt-oss'];

/** The shape the architecture tests use: small, GQA (2 query heads per KV head), late layers damped. */
export function archSpec(arch: RandomModelSpec['arch'], seed = 31): RandomModelSpec {
  return {
    arch,
    nLayer: 4,
    nEmbd: 64,
    nHead: 4,
    nHeadKv: 2,
    nFf: 128,
    nVocab: 320,
    nCtx: 2048,
    seed,
    tensorType: 'f32',
    normJitter: 0.1,
    lateLayerScale: { fromLayer: 2, scale: 0.3 },
    ...(SLIDING_WINDOW_ARCHS.includes(arch) ? { slidingWindow: 8 } : {}),
  };
}

/** Path of the random model for `spec`. */
export function archModel(spec: RandomModelSpec): string {
  return cachedModel(`arch-${spec.arch}`, [spec], (tmp) => writeRandomModel(tmp, spec));
}

/** Path of `spec`'s model cut to its first `layers` layers. */
export function slicedArchModel(spec: RandomModelSpec, layers: number): string {
  const src = archModel(spec);
  return cachedModel(`arch-${spec.arch}-L${layers}`, [spec, layers], (tmp) => sliceModel(src, tmp, layers));
}
