/**
 * GGUF / ggml constants.
 *
 * References (llama.cpp 80fb11a): ggml/include/gguf.h, ggml/include/ggml.h (enum ggml_type),
 * ggml/src/ggml.c (type_traits: blck_size / type_size), gguf-py/gguf/constants.py (GGML_QUANT_SIZES).
 */

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
export const GGUF_KEY_GENERAL_ALIGNMENT = 'general.alignment';

/** GGUF metadata value types (enum gguf_type). */
export const GgufValueTypeId = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;

export type GgufValueTypeName = keyof typeof GgufValueTypeId;
/** Element types allowed inside a GGUF array (nested arrays are not supported). */
export type GgufArrayItemType = Exclude<GgufValueTypeName, 'array'>;
export type GgufNumberType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'f64';
export type GgufBigIntType = 'u64' | 'i64';

export const GGUF_VALUE_TYPE_NAMES: readonly (GgufValueTypeName | undefined)[] = (() => {
  const names: (GgufValueTypeName | undefined)[] = [];
  for (const [name, id] of Object.entries(GgufValueTypeId)) names[id] = name as GgufValueTypeName;
  return names;
})();

/** Byte size of fixed-size GGUF scalar types. */
export const GGUF_SCALAR_SIZE: Readonly<Record<Exclude<GgufArrayItemType, 'string'>, number>> = {
  u8: 1,
  i8: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  bool: 1,
  u64: 8,
  i64: 8,
  f64: 8,
};

/** ggml tensor types (enum ggml_type). Removed ids (4, 5, 31-33, 36-38) are absent. */
export const GgmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  IQ2_XXS: 16,
  IQ2_XS: 17,
  IQ3_XXS: 18,
  IQ1_S: 19,
  IQ4_NL: 20,
  IQ3_S: 21,
  IQ2_S: 22,
  IQ4_XS: 23,
  I8: 24,
  I16: 25,
  I32: 26,
  I64: 27,
  F64: 28,
  IQ1_M: 29,
  BF16: 30,
  TQ1_0: 34,
  TQ2_0: 35,
  MXFP4: 39,
  NVFP4: 40,
  Q1_0: 41,
  Q2_0: 42,
} as const;

export type GgmlTypeName = keyof typeof GgmlType;
export type GgmlTypeId = (typeof GgmlType)[GgmlTypeName];

const QK_K = 256;

/**
 * [block size in elements, bytes per block] for every ggml type, matching ggml.c type_traits
 * and gguf-py GGML_QUANT_SIZES at llama.cpp 80fb11a.
 */
export const GGML_TYPE_TRAITS: Readonly<Record<GgmlTypeName, readonly [blockSize: number, typeSize: number]>> = {
  F32: [1, 4],
  F16: [1, 2],
  Q4_0: [32, 2 + 16],
  Q4_1: [32, 2 + 2 + 16],
  Q5_0: [32, 2 + 4 + 16],
  Q5_1: [32, 2 + 2 + 4 + 16],
  Q8_0: [32, 2 + 32],
  Q8_1: [32, 4 + 4 + 32],
  Q2_K: [QK_K, 2 + 2 + QK_K / 16 + QK_K / 4],
  Q3_K: [QK_K, 2 + QK_K / 4 + QK_K / 8 + 12],
  Q4_K: [QK_K, 2 + 2 + QK_K / 2 + 12],
  Q5_K: [QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12],
  Q6_K: [QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16],
  Q8_K: [QK_K, 4 + QK_K + QK_K / 8],
  IQ2_XXS: [QK_K, 2 + QK_K / 4],
  IQ2_XS: [QK_K, 2 + QK_K / 4 + QK_K / 32],
  IQ3_XXS: [QK_K, 2 + QK_K / 4 + QK_K / 8],
  IQ1_S: [QK_K, 2 + QK_K / 8 + QK_K / 16],
  IQ4_NL: [32, 2 + 16],
  IQ3_S: [QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4],
  IQ2_S: [QK_K, 2 + QK_K / 4 + QK_K / 16],
  IQ4_XS: [QK_K, 2 + 2 + QK_K / 2 + QK_K / 64],
  I8: [1, 1],
  I16: [1, 2],
  I32: [1, 4],
  I64: [1, 8],
  F64: [1, 8],
  IQ1_M: [QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32],
  BF16: [1, 2],
  TQ1_0: [QK_K, 2 + 4 * 13],
  TQ2_0: [QK_K, 2 + 64],
  MXFP4: [32, 1 + 16],
  NVFP4: [64, 4 + 32],
  Q1_0: [128, 2 + 16],
  Q2_0: [64, 2 + 16],
};

const TYPE_NAME_BY_ID = new Map<number, GgmlTypeName>(Object.entries(GgmlType).map(([name, id]) => [id, name as GgmlTypeName]));

/** Name of a ggml type id (e.g. 1 -> "F16"); throws for unknown ids. */
export function ggmlTypeName(type: number): GgmlTypeName {
  const name = TYPE_NAME_BY_ID.get(type);
  if (name === undefined) throw new Error(`unknown ggml type id ${type}`);
  return name;
}

/** Number of elements of a tensor with ggml shape `ne`. */
export function tensorElementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Byte size of a tensor's data (without alignment padding), as ggml_nbytes computes it for a
 * contiguous tensor: ne[0] must be a multiple of the type's block size.
 */
export function ggmlTensorByteSize(type: number, shape: readonly number[]): number {
  const name = ggmlTypeName(type);
  const [blockSize, typeSize] = GGML_TYPE_TRAITS[name];
  if (shape.length === 0) throw new Error('tensor shape must have at least one dimension');
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d <= 0) throw new Error(`invalid tensor dimension ${d} in [${shape.join(', ')}]`);
  }
  if (shape[0] % blockSize !== 0) {
    throw new Error(`ne[0]=${shape[0]} is not a multiple of the ${name} block size ${blockSize}`);
  }
  return (tensorElementCount(shape) / blockSize) * typeSize;
}

export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}
