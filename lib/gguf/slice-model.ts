// sliceModel: the first n blocks of a GGUF model of any architecture, as a new GGUF.
import { getGgufMetadata, iterateTensorBytes, readGgufInfo, type GgufFileInfo } from './reader.js';
import type { GgufMetadataValue } from './types.js';
import { writeGguf, type GgufTensorInput, type WriteGgufResult } from './writer.js';

/** `<arch>.*` keys that may hold one value per layer (llama.cpp's get_key_or_arr). */
const PER_LAYER_ARRAY_KEYS = [
  'attention.head_count',
  'attention.head_count_kv',
  'feed_forward_length',
  'attention.sliding_window_pattern',
  'expert_used_count',
  'expert_feed_forward_length',
];

/**
 * Copies a GGUF model keeping only blocks `blk.<i>.*` with i < nLayers (and every non-block tensor:
 * token_embd, output_norm, output, rope_freqs, ...), setting `<arch>.block_count` = nLayers. All other
 * metadata is copied unchanged (per-layer arrays such as head counts, FFN lengths or the
 * sliding-window pattern are truncated). Tensor data of any ggml type is copied byte for byte, streamed.
 */
export function sliceModel(srcPath: string, dstPath: string, nLayers: number): WriteGgufResult {
  const info: GgufFileInfo = readGgufInfo(srcPath);
  const arch = getGgufMetadata(info, 'general.architecture');
  if (typeof arch !== 'string') throw new Error(`${srcPath}: missing general.architecture`);
  const blockKey = `${arch}.block_count`;
  const blockValue = info.metadata.get(blockKey);
  if (!blockValue || typeof blockValue.value !== 'number') throw new Error(`${srcPath}: missing numeric ${blockKey}`);
  const nOld = blockValue.value;
  if (!Number.isInteger(nLayers) || nLayers < 1 || nLayers > nOld) {
    throw new Error(`sliceModel: nLayers must be an integer in [1, ${nOld}], got ${nLayers}`);
  }

  const metadata: [string, GgufMetadataValue][] = [];
  for (const [key, value] of info.metadata) {
    if (key === blockKey) {
      metadata.push([key, { ...value, value: nLayers } as GgufMetadataValue]);
    } else if (value.type === 'array' && value.value.length === nOld && PER_LAYER_ARRAY_KEYS.some((k) => key === `${arch}.${k}`)) {
      const v = value.value as ArrayLike<unknown> & { slice(a: number, b: number): unknown };
      metadata.push([key, { ...value, value: v.slice(0, nLayers) } as GgufMetadataValue]);
    } else {
      metadata.push([key, value]);
    }
  }

  const tensors: GgufTensorInput[] = [];
  for (const t of info.tensors) {
    const m = /^blk\.(\d+)\./.exec(t.name);
    if (m && Number(m[1]) >= nLayers) continue;
    tensors.push({ name: t.name, shape: t.shape, type: t.type, data: () => iterateTensorBytes(srcPath, t) });
  }
  return writeGguf(dstPath, metadata, tensors, { alignment: info.alignment });
}

/** The former name of sliceModel. */
export const sliceLlamaModel = sliceModel;
