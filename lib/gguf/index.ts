export {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_KEY_GENERAL_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  GGML_TYPE_TRAITS,
  GgmlType,
  GgufValueTypeId,
  alignUp,
  ggmlTensorByteSize,
  ggmlTypeName,
  tensorElementCount,
  type GgmlTypeId,
  type GgmlTypeName,
  type GgufArrayItemType,
  type GgufValueTypeName,
} from './constants.js';
export { convertF16ToF32, convertF32ToF16, f16BitsToF32, f16Round, f32ToF16Bits } from './f16.js';
export { Xoshiro128, getUnitNormalTable, hashSeed, inverseNormalCdf, normalTableF32 } from './random.js';
export {
  getGgufMetadata,
  iterateTensorBytes,
  readGgufInfo,
  readTensorBytes,
  readTensorF32,
  type GgufFileInfo,
  type GgufTensorInfo,
} from './reader.js';
export {
  randomLlamaMetadata,
  randomLlamaTensorBytes,
  randomLlamaTensors,
  sliceLlamaModel,
  validateRandomLlamaSpec,
  writeRandomLlamaModel,
  type RandomLlamaResult,
  type RandomLlamaSpec,
} from './random-llama.js';
export {
  GEMMA2_SOFTCAPPING,
  GRANITE_SCALES,
  LFM2_CONV_L_CACHE,
  RANDOM_ARCHS,
  archTensorSlots,
  lfm2IsAttentionLayer,
  type ModelShape,
  type RandomArch,
  type TensorInit,
  type TensorSlot,
} from './random-archs.js';
export {
  randomModelMetadata,
  randomModelTensorBytes,
  randomModelTensors,
  resolveRandomModelSpec,
  writeRandomModel,
  type RandomModelResult,
  type RandomModelSpec,
} from './random-model.js';
export { sliceModel } from './slice-model.js';
export { ggufValue, type GgufMetadataInput, type GgufMetadataValue } from './types.js';
export {
  LlamaTokenType,
  SPM_BOS_ID,
  SPM_EOS_ID,
  SPM_FIXED_TOKENS,
  SPM_MIN_VOCAB,
  SPM_SPACE,
  SPM_UNK_ID,
  buildSpmVocab,
  type SpmVocab,
} from './vocab.js';
export {
  writeGguf,
  type GgufTensorInput,
  type TensorChunk,
  type TensorDataSource,
  type WriteGgufOptions,
  type WriteGgufResult,
  type WrittenTensorInfo,
} from './writer.js';
