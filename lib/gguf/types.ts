import type { GgufBigIntType, GgufNumberType } from './constants.js';

/**
 * A typed GGUF metadata value. The reader returns exactly these shapes (numeric arrays as typed
 * arrays, 64-bit integers as bigint), and the writer accepts them back unchanged, so metadata
 * round-trips losslessly.
 */
export type GgufMetadataValue =
  | { type: GgufNumberType; value: number }
  | { type: GgufBigIntType; value: bigint | number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: 'string'; value: readonly string[] }
  | { type: 'array'; itemType: 'bool'; value: readonly boolean[] }
  | { type: 'array'; itemType: GgufBigIntType; value: ArrayLike<bigint> }
  | { type: 'array'; itemType: GgufNumberType; value: ArrayLike<number> };

/** Metadata as an ordered list of [key, value] pairs, a Map, or a plain object (insertion order kept). */
export type GgufMetadataInput = Iterable<readonly [string, GgufMetadataValue]> | Readonly<Record<string, GgufMetadataValue>>;

/** Convenience constructors for typed metadata values. */
export const ggufValue = {
  u8: (value: number): GgufMetadataValue => ({ type: 'u8', value }),
  i8: (value: number): GgufMetadataValue => ({ type: 'i8', value }),
  u16: (value: number): GgufMetadataValue => ({ type: 'u16', value }),
  i16: (value: number): GgufMetadataValue => ({ type: 'i16', value }),
  u32: (value: number): GgufMetadataValue => ({ type: 'u32', value }),
  i32: (value: number): GgufMetadataValue => ({ type: 'i32', value }),
  u64: (value: bigint | number): GgufMetadataValue => ({ type: 'u64', value }),
  i64: (value: bigint | number): GgufMetadataValue => ({ type: 'i64', value }),
  f32: (value: number): GgufMetadataValue => ({ type: 'f32', value }),
  f64: (value: number): GgufMetadataValue => ({ type: 'f64', value }),
  bool: (value: boolean): GgufMetadataValue => ({ type: 'bool', value }),
  string: (value: string): GgufMetadataValue => ({ type: 'string', value }),
  stringArray: (value: readonly string[]): GgufMetadataValue => ({ type: 'array', itemType: 'string', value }),
  f32Array: (value: ArrayLike<number>): GgufMetadataValue => ({ type: 'array', itemType: 'f32', value }),
  i32Array: (value: ArrayLike<number>): GgufMetadataValue => ({ type: 'array', itemType: 'i32', value }),
  u32Array: (value: ArrayLike<number>): GgufMetadataValue => ({ type: 'array', itemType: 'u32', value }),
} as const;
