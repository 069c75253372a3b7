// Seeded mutations of a GGUF model file for the fuzz harness. One case seed picks one named
// mutation kind and its details; the same seed always gives the same bytes, so any case can be
// reproduced from its seed alone.
//
// Two families:
// - byte-level: flips and truncations of the seed file's bytes (header, metadata, tensor infos,
//   data), patches of single header fields in place;
// - structural: the file is re-serialised from its parsed metadata and tensor table by a lenient
//   encoder of our own (writeGguf refuses duplicate keys, alignments that are not multiples of 8
//   and data that does not fit its tensor's type and shape, which are exactly the files wanted
//   here), with keys, values, vocabularies, tensor types and shapes changed.
import { readFileSync } from 'node:fs';
import { GgmlType, GgufValueTypeId, alignUp, ggmlTensorByteSize, ggmlTypeName, type GgufArrayItemType } from '../../lib/gguf/constants.js';
import { f32ToF16Bits } from '../../lib/gguf/f16.js';
import { Xoshiro128, hashSeed } from '../../lib/gguf/random.js';
import { readGgufInfo, type GgufFileInfo } from '../../lib/gguf/reader.js';
import type { GgufMetadataValue } from '../../lib/gguf/types.js';

export interface Mutation {
  bytes: Buffer;
  /** The mutation kind, "family/name" (see MUTATION_KINDS). */
  kind: string;
  /** What exactly was changed, for a human reading a crash report. */
  detail: string;
}

/** Byte spans of one metadata entry in the seed file. */
interface KvSpan {
  key: string;
  start: number;
  /** Offset of the u32 value type. */
  typeAt: number;
  end: number;
}

/** Byte spans of one tensor info in the seed file. */
interface TensorSpan {
  name: string;
  start: number;
  nDimsAt: number;
  dimsAt: number;
  typeAt: number;
  offsetAt: number;
  end: number;
}

/** The parsed seed model, computed once and shared by every case. */
export interface SeedModel {
  path: string;
  bytes: Buffer;
  info: GgufFileInfo;
  kvs: KvSpan[];
  tensorSpans: TensorSpan[];
  /** End of the metadata entries (start of the tensor infos). */
  kvEnd: number;
  /** End of the tensor infos (before the alignment padding). */
  infoEnd: number;
}

export function loadSeedModel(path: string): SeedModel {
  const info = readGgufInfo(path);
  const bytes = readFileSync(path);
  const { kvs, tensorSpans, kvEnd, infoEnd } = scanHeader(bytes);
  if (kvs.length !== info.metadata.size || tensorSpans.length !== info.tensors.length) throw new Error(`${path}: header scan disagrees with readGgufInfo`);
  const seed: SeedModel = { path, bytes, info, kvs, tensorSpans, kvEnd, infoEnd };
  // the lenient encoder must reproduce the seed byte for byte, or structural cases would differ from it in more than their mutation
  if (!encode(draftOf(seed)).equals(bytes)) throw new Error(`${path}: re-encoding the seed model does not reproduce it`);
  return seed;
}

/** Walks the header of a well-formed GGUF file and records where every field is. */
function scanHeader(b: Buffer): Pick<SeedModel, 'kvs' | 'tensorSpans' | 'kvEnd' | 'infoEnd'> {
  let p = 24;
  const nTensors = Number(b.readBigUInt64LE(8));
  const nKv = Number(b.readBigUInt64LE(16));
  const str = () => {
    const n = Number(b.readBigUInt64LE(p));
    const s = b.toString('utf8', p + 8, p + 8 + n);
    p += 8 + n;
    return s;
  };
  const SIZES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  const skipValue = (type: number): void => {
    if (type === GgufValueTypeId.string) str();
    else if (type === GgufValueTypeId.array) {
      const item = b.readUInt32LE(p);
      const n = Number(b.readBigUInt64LE(p + 4));
      p += 12;
      if (item === GgufValueTypeId.string) for (let i = 0; i < n; i++) str();
      else p += n * SIZES[item];
    } else p += SIZES[type];
  };
  const kvs: KvSpan[] = [];
  for (let i = 0; i < nKv; i++) {
    const start = p;
    const key = str();
    const typeAt = p;
    p += 4;
    skipValue(b.readUInt32LE(typeAt));
    kvs.push({ key, start, typeAt, end: p });
  }
  const kvEnd = p;
  const tensorSpans: TensorSpan[] = [];
  for (let i = 0; i < nTensors; i++) {
    const start = p;
    const name = str();
    const nDimsAt = p;
    const nDims = b.readUInt32LE(p);
    const dimsAt = p + 4;
    const typeAt = dimsAt + 8 * nDims;
    p = typeAt + 4 + 8;
    tensorSpans.push({ name, start, nDimsAt, dimsAt, typeAt, offsetAt: typeAt + 4, end: p });
  }
  return { kvs, tensorSpans, kvEnd, infoEnd: p };
}

// ---------------------------------------------------------------------------------------------
// Lenient GGUF encoder

interface DraftTensor {
  name: string;
  /** Written as u64 each; bigint for values beyond 2^53. */
  dims: (number | bigint)[];
  type: number;
  data: Buffer;
}

/** A whole model to re-serialise: entries may repeat keys, tensors may be inconsistent. */
interface Draft {
  entries: [string, GgufMetadataValue][];
  tensors: DraftTensor[];
  /** The alignment the data is laid out with (need not match general.alignment). */
  alignment: number;
}

function draftOf(seed: SeedModel): Draft {
  return {
    entries: [...seed.info.metadata],
    tensors: seed.info.tensors.map((t) => ({
      name: t.name,
      dims: [...t.shape],
      type: t.type,
      data: seed.bytes.subarray(t.absoluteOffset, t.absoluteOffset + t.byteSize),
    })),
    alignment: seed.info.alignment,
  };
}

class Out {
  private parts: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    this.parts.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    this.push(b);
  }
  u64(v: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)));
    this.push(b);
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  scalar(type: GgufArrayItemType, v: unknown): void {
    if (type === 'string') {
      this.str(String(v));
      return;
    }
    const size = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, bool: 1, u64: 8, i64: 8, f64: 8 }[type];
    const b = Buffer.alloc(size);
    // values wrap into the type's range instead of throwing: the mutations write what they mean
    const n = typeof v === 'bigint' ? Number(v) : Number(v);
    switch (type) {
      case 'u8':
        b.writeUInt8(n & 0xff);
        break;
      case 'i8':
        b.writeInt8((n << 24) >> 24);
        break;
      case 'u16':
        b.writeUInt16LE(n & 0xffff);
        break;
      case 'i16':
        b.writeInt16LE((n << 16) >> 16);
        break;
      case 'u32':
        b.writeUInt32LE(n >>> 0);
        break;
      case 'i32':
        b.writeInt32LE(n | 0);
        break;
      case 'f32':
        b.writeFloatLE(n);
        break;
      case 'f64':
        b.writeDoubleLE(n);
        break;
      case 'bool':
        b.writeUInt8(v ? 1 : 0);
        break;
      case 'u64':
        b.writeBigUInt64LE(BigInt.asUintN(64, typeof v === 'bigint' ? v : BigInt(Math.trunc(n) || 0)));
        break;
      case 'i64':
        b.writeBigInt64LE(BigInt.asIntN(64, typeof v === 'bigint' ? v : BigInt(Math.trunc(n) || 0)));
        break;
    }
    this.push(b);
  }
  toBuffer(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function encode(d: Draft): Buffer {
  const h = new Out();
  h.u32(0x46554747);
  h.u32(3);
  h.u64(d.tensors.length);
  h.u64(d.entries.length);
  for (const [key, v] of d.entries) {
    h.str(key);
    if (v.type === 'array') {
      h.u32(GgufValueTypeId.array);
      h.u32(GgufValueTypeId[v.itemType]);
      const arr = v.value as ArrayLike<unknown>;
      h.u64(arr.length);
      for (let i = 0; i < arr.length; i++) h.scalar(v.itemType, arr[i]);
    } else {
      h.u32(GgufValueTypeId[v.type]);
      h.scalar(v.type, v.value);
    }
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of d.tensors) {
    h.str(t.name);
    h.u32(t.dims.length);
    for (const x of t.dims) h.u64(x);
    h.u32(t.type);
    h.u64(offset);
    offsets.push(offset);
    offset = alignUp(offset + t.data.length, d.alignment);
  }
  const dataOffset = alignUp(h.length, d.alignment);
  const out = Buffer.alloc(dataOffset + offset);
  h.toBuffer().copy(out, 0);
  d.tensors.forEach((t, i) => t.data.copy(out, dataOffset + offsets[i]));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Seeded choices

class Dice {
  private readonly rng: Xoshiro128;
  constructor(seed: number) {
    this.rng = new Xoshiro128(hashSeed(seed, 'layerskip-fuzz'));
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.rng.nextFloat() * n);
  }
  /** Integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  chance(p: number): boolean {
    return this.rng.nextFloat() < p;
  }
}

type Mutator = (seed: SeedModel, d: Dice) => { bytes: Buffer; detail: string };

const U32_MAX = 0xffffffff;
const INTEGER_TYPES = [GgmlType.I8, GgmlType.I16, GgmlType.I32, GgmlType.I64];
/** Every type id a file can carry: the valid ones, the removed ones (4, 5, 31-33, 36-38) and garbage. */
const ALL_TYPE_IDS = [...Array.from({ length: 46 }, (_, i) => i), 100, 255, 0x7fffffff, U32_MAX];
const NON_FINITE = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
const WEIRD_F32 = [...NON_FINITE, 0, -0, -1, 1e-45, 1e-38, 1e30, 3.4e38, -3.4e38];
const WEIRD_U32 = [0, 1, 2, 3, 7, 0x7fffffff, 0x80000000, 0xfffffffe, U32_MAX];
const STRINGS = [
  'bert',
  'gpt2',
  'none',
  'no_vocab',
  't5',
  'rwkv',
  'ugm',
  'plamo2',
  'foo',
  '',
  'llama',
  'LLAMA',
  'llama ',
  'default',
  'llama3',
  '\u0000',
  '日本語',
  'x'.repeat(70000),
];

/** A ggml type id with its name, when it has one. */
function typeLabel(id: number): string {
  try {
    return `${ggmlTypeName(id)}(${id})`;
  } catch {
    return `invalid(${id})`;
  }
}
const short = (s: string) => JSON.stringify(s.length > 24 ? `${s.slice(0, 12)}...(${s.length})` : s);
const u32 = (value: number): GgufMetadataValue => ({ type: 'u32', value: value >>> 0 });
const f32 = (value: number): GgufMetadataValue => ({ type: 'f32', value });
const str = (value: string): GgufMetadataValue => ({ type: 'string', value });

function describeValue(v: GgufMetadataValue): string {
  if (v.type === 'array') return `${v.itemType}[${(v.value as ArrayLike<unknown>).length}]`;
  return `${v.type} ${typeof v.value === 'string' ? short(v.value) : String(v.value)}`;
}

function setKey(d: Draft, key: string, v: GgufMetadataValue): string {
  const i = d.entries.findIndex(([k]) => k === key);
  if (i >= 0) d.entries[i] = [key, v];
  else d.entries.push([key, v]);
  return `${key} = ${describeValue(v)}${i >= 0 ? '' : ' (added)'}`;
}

function getArray<T>(d: Draft, key: string): T[] {
  const v = d.entries.find(([k]) => k === key)?.[1];
  if (v?.type !== 'array') throw new Error(`seed model lacks array ${key}`);
  return Array.from(v.value as ArrayLike<T>);
}

function setArray(d: Draft, key: string, itemType: GgufArrayItemType, value: unknown[]): void {
  const i = d.entries.findIndex(([k]) => k === key);
  d.entries[i] = [key, { type: 'array', itemType, value } as GgufMetadataValue];
}

/** Re-encoded bytes of a draft changed by `edit`, which returns the detail. */
function structural(edit: (draft: Draft, d: Dice, seed: SeedModel) => string): Mutator {
  return (seed, d) => {
    const draft = draftOf(seed);
    const detail = edit(draft, d, seed);
    return { bytes: encode(draft), detail };
  };
}

/** A copy of the seed bytes changed in place by `edit`, which may also cut the file to `length` bytes. */
function inPlace(edit: (b: Buffer, d: Dice, seed: SeedModel) => string | { detail: string; length: number }): Mutator {
  return (seed, d) => {
    const b = Buffer.from(seed.bytes);
    const r = edit(b, d, seed);
    return typeof r === 'string' ? { bytes: b, detail: r } : { bytes: b.subarray(0, r.length), detail: r.detail };
  };
}

/** Flips `n` bytes in [lo, hi): a single bit or a whole random byte. */
function flip(b: Buffer, d: Dice, lo: number, hi: number, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n && hi > lo; i++) {
    const at = d.range(lo, hi - 1);
    const before = b[at];
    b[at] = d.chance(0.5) ? before ^ (1 << d.int(8)) : d.int(256);
    out.push(`@${at} ${before}->${b[at]}`);
  }
  return out;
}

/** `src` repeated or cut to `size` bytes. */
function fit(src: Buffer, size: number): Buffer {
  const out = Buffer.alloc(size);
  if (src.length === 0) return out;
  for (let p = 0; p < size; p += src.length) src.copy(out, p, 0, Math.min(src.length, size - p));
  return out;
}

/** Tensor data converted to another type: F32 values re-encoded for float types, raw bytes refitted for the rest. */
function convertData(src: Buffer, fromType: number, toType: number, size: number): Buffer {
  if (fromType === GgmlType.F32 && [GgmlType.F16, GgmlType.BF16, GgmlType.F64].includes(toType as 1 | 30 | 28)) {
    const n = src.length / 4;
    const per = toType === GgmlType.F64 ? 8 : 2;
    if (n * per === size) {
      const out = Buffer.alloc(size);
      for (let i = 0; i < n; i++) {
        const x = src.readFloatLE(i * 4);
        if (toType === GgmlType.F16) out.writeUInt16LE(f32ToF16Bits(x), i * 2);
        else if (toType === GgmlType.BF16) out.writeUInt16LE(src.readUInt32LE(i * 4) >>> 16, i * 2);
        else out.writeDoubleLE(x, i * 8);
      }
      return out;
    }
  }
  return fit(src, size);
}

/** Largest tensor a structural mutation writes out in full (bigger ones keep their old bytes: an inconsistent file). */
const MAX_TENSOR_BYTES = 32 << 20;

function byteSizeOrNull(type: number, dims: readonly (number | bigint)[]): number | null {
  if (dims.some((x) => typeof x === 'bigint')) return null;
  try {
    const n = ggmlTensorByteSize(type, dims as number[]);
    return n <= MAX_TENSOR_BYTES ? n : null;
  } catch {
    return null;
  }
}

function pickTensor(d: Dice, draft: Draft, prefer?: 'matrix' | 'norm'): number {
  const idx = draft.tensors.map((t, i) => ({ t, i }));
  const pool = prefer === 'norm' ? idx.filter(({ t }) => t.name.includes('norm')) : prefer === 'matrix' ? idx.filter(({ t }) => t.dims.length === 2) : idx;
  return d.pick(pool.length > 0 ? pool : idx).i;
}

const TOKENS = 'tokenizer.ggml.tokens';
const SCORES = 'tokenizer.ggml.scores';
const TOKEN_TYPES = 'tokenizer.ggml.token_type';
const SPECIAL_ID_KEYS = ['bos', 'eos', 'unknown', 'padding', 'seperator', 'eot', 'eom', 'mask', 'cls', 'fim_pre', 'fim_suf', 'fim_mid'].map(
  (k) => `tokenizer.ggml.${k}_token_id`,
);

/** Keys a LLaMA file may carry that the seed lacks, with value makers. */
const EXTRA_KEYS: [string, (d: Dice) => GgufMetadataValue][] = [
  ['llama.expert_count', (d) => u32(d.pick([0, 1, 2, 8, 256, U32_MAX]))],
  ['llama.expert_used_count', (d) => u32(d.pick([0, 1, 2, 9, U32_MAX]))],
  ['llama.rope.scaling.type', (d) => str(d.pick(['none', 'linear', 'yarn', 'longrope', 'foo', '']))],
  ['llama.rope.scaling.factor', (d) => f32(d.pick([4, ...WEIRD_F32]))],
  ['llama.rope.freq_base', (d) => f32(d.pick([10000, ...WEIRD_F32]))],
  ['llama.rope.scale_linear', (d) => f32(d.pick(WEIRD_F32))],
  ['llama.vocab_size', (d) => u32(d.pick([0, 256, 511, 513, U32_MAX]))],
  ['llama.attention.key_length', (d) => u32(d.pick([0, 1, 4, 8, 16, 64, 4096]))],
  ['llama.attention.value_length', (d) => u32(d.pick([0, 1, 4, 8, 16, 64, 4096]))],
  ['llama.attention.sliding_window', (d) => u32(d.pick([0, 1, 16, U32_MAX]))],
  ['llama.attention.layer_norm_epsilon', (d) => f32(d.pick(WEIRD_F32))],
  ['llama.attention.causal', () => ({ type: 'bool', value: false })],
  ['llama.leading_dense_block_count', (d) => u32(d.pick([0, 1, 5, 6, U32_MAX]))],
  ['llama.logit_scale', (d) => f32(d.pick(WEIRD_F32))],
  ['tokenizer.ggml.add_bos_token', (d) => ({ type: 'bool', value: d.chance(0.5) })],
  ['tokenizer.ggml.add_eos_token', (d) => ({ type: 'bool', value: d.chance(0.5) })],
  ['tokenizer.ggml.add_space_prefix', (d) => ({ type: 'bool', value: d.chance(0.5) })],
  ['tokenizer.ggml.pre', (d) => str(d.pick(['default', 'llama3', 'gpt-2', 'foo', '']))],
  ['tokenizer.ggml.merges', (d) => ({ type: 'array', itemType: 'string', value: d.pick([[], ['a b'], ['▁ t', '▁t h', 'x']]) })],
  ['tokenizer.chat_template', (d) => str(d.pick(['{{ bos_token }}', '{% for', '']))],
  ['general.alignment', (d) => u32(d.pick([0, 1, 8, 16, 24, 31, 33, 64]))],
  ['general.file_type', (d) => u32(d.pick([0, 1, 7, 1000]))],
];

const LLAMA_LAYER_SUFFIXES = [
  'attn_q.weight',
  'attn_k.weight',
  'attn_v.weight',
  'attn_output.weight',
  'attn_norm.weight',
  'ffn_gate.weight',
  'ffn_down.weight',
  'ffn_up.weight',
  'ffn_norm.weight',
];

/** A replacement value of another type than `v`. */
function wrongType(v: GgufMetadataValue, d: Dice): GgufMetadataValue {
  const n = v.type !== 'array' && typeof v.value === 'number' && Number.isFinite(v.value) ? v.value : 5;
  const options: GgufMetadataValue[] = [
    { type: 'u8', value: n & 0xff },
    { type: 'i8', value: -1 },
    { type: 'u16', value: n & 0xffff },
    { type: 'i16', value: -7 },
    { type: 'i32', value: -1 },
    { type: 'u32', value: n >>> 0 },
    { type: 'u64', value: BigInt(Math.trunc(n)) },
    { type: 'i64', value: -1n },
    f32(n),
    { type: 'f64', value: n },
    { type: 'bool', value: true },
    str(String(n)),
    { type: 'array', itemType: 'string', value: ['a'] },
    { type: 'array', itemType: 'i32', value: Int32Array.of(n) },
    { type: 'array', itemType: 'f32', value: Float32Array.of(n) },
    { type: 'array', itemType: 'u8', value: new Uint8Array(0) },
  ];
  if (v.type === 'array') {
    // the same length in another item type (tokens as numbers, scores as strings, ...)
    const len = (v.value as ArrayLike<unknown>).length;
    const item = d.pick(['string', 'i32', 'u8', 'i64', 'f32', 'f64', 'bool', 'u32'] as const);
    const value =
      item === 'string'
        ? Array.from({ length: len }, (_, i) => `t${i}`)
        : item === 'bool'
          ? Array.from({ length: len }, () => false)
          : item === 'i64'
            ? new BigInt64Array(len)
            : new Float64Array(len).map((_, i) => i % 7);
    options.push({ type: 'array', itemType: item, value } as GgufMetadataValue);
  }
  const sameKind = (o: GgufMetadataValue) => o.type === v.type && (o.type !== 'array' || v.type !== 'array' || o.itemType === v.itemType);
  return d.pick(options.filter((o) => !sameKind(o)));
}

// ---------------------------------------------------------------------------------------------
// The mutation kinds

const MUTATORS: Record<string, Mutator> = {
  // --- byte flips and truncations of the seed bytes
  'flip/header': inPlace((b, d) => flip(b, d, 0, 24, d.range(1, 3)).join(', ')),
  'flip/metadata': inPlace((b, d, s) => {
    if (d.chance(0.5)) return flip(b, d, 24, s.kvEnd, d.range(1, 4)).join(', ');
    const kv = d.pick(s.kvs); // one entry, so that small scalar entries are hit as often as the big arrays
    return `${kv.key}: ${flip(b, d, kv.start, kv.end, d.range(1, 3)).join(', ')}`;
  }),
  'flip/tensor-info': inPlace((b, d, s) => {
    if (d.chance(0.4)) return flip(b, d, s.kvEnd, s.infoEnd, d.range(1, 4)).join(', ');
    const t = d.pick(s.tensorSpans);
    const [field, lo, hi] = d.pick([
      ['name', t.start, t.nDimsAt],
      ['n_dims', t.nDimsAt, t.dimsAt],
      ['dims', t.dimsAt, t.typeAt],
      ['type', t.typeAt, t.offsetAt],
      ['offset', t.offsetAt, t.end],
    ] as const);
    return `${t.name} ${field}: ${flip(b, d, lo, hi, d.range(1, 2)).join(', ')}`;
  }),
  'flip/data': inPlace((b, d, s) => {
    const t = d.chance(0.5) ? d.pick(s.info.tensors) : null;
    const [lo, hi] = t ? [t.absoluteOffset, t.absoluteOffset + t.byteSize] : [s.info.dataOffset, b.length];
    return `${t ? `${t.name} ` : ''}${flip(b, d, lo, hi, d.range(1, 64)).length} bytes`;
  }),
  'data/non-finite': inPlace((b, d, s) => {
    const t = d.pick(s.info.tensors.filter((x) => x.type === GgmlType.F32));
    const value = d.pick([...NON_FINITE, 3.4e38, -3.4e38, 1e20, 1e-45]);
    const n = t.byteSize / 4;
    const count = d.chance(0.2) ? n : d.range(1, 16);
    for (let i = 0; i < count; i++) b.writeFloatLE(value, t.absoluteOffset + 4 * (count === n ? i : d.int(n)));
    return `${t.name}: ${count === n ? 'all' : count} values = ${value}`;
  }),
  'truncate/header': inPlace((_b, d, s) => {
    const bounds = [...s.kvs.map((k) => k.end), ...s.tensorSpans.map((t) => t.end), s.infoEnd];
    const at = d.chance(0.3) ? d.pick(bounds) : d.int(s.info.dataOffset);
    return { detail: `to ${at} bytes`, length: at };
  }),
  'truncate/data': inPlace((b, d, s) => {
    const bounds = s.info.tensors.flatMap((t) => [t.absoluteOffset, t.absoluteOffset + t.byteSize]).filter((x) => x < b.length);
    const at = d.chance(0.3) ? d.pick(bounds) : d.range(s.info.dataOffset, b.length - 1);
    return { detail: `to ${at} bytes`, length: at };
  }),
  'header/field': inPlace((b, d, s) => {
    const field = d.pick(['magic', 'version', 'tensor count', 'metadata count'] as const);
    if (field === 'magic') {
      const m = d.pick(['GGML', 'FUGG', 'GGJT', '\0\0\0\0', 'ggUF']);
      b.write(m, 0, 'latin1');
      return `magic ${JSON.stringify(m)}`;
    }
    if (field === 'version') {
      const v = d.pick([0, 1, 2, 4, U32_MAX]);
      b.writeUInt32LE(v, 4);
      return `version ${v}`;
    }
    const n = field === 'tensor count' ? s.tensorSpans.length : s.kvs.length;
    const v = d.pick([0n, BigInt(n - 1), BigInt(n + 1), 1n << 32n, 1n << 62n, (1n << 64n) - 1n]);
    b.writeBigUInt64LE(v, field === 'tensor count' ? 8 : 16);
    return `${field} ${v}`;
  }),

  // --- metadata in general
  'meta/number': structural((draft, d) => {
    const numeric = draft.entries.filter(([, v]) => v.type === 'u32' || v.type === 'f32');
    const [key, v] = d.pick(numeric);
    const old = v.value as number;
    const nv =
      v.type === 'f32' ? f32(d.pick([...WEIRD_F32, old * 2, old / 2])) : u32(d.pick([...WEIRD_U32, old - 1, old + 1, old * 2, old >>> 1, d.int(U32_MAX)]));
    return setKey(draft, key, nv);
  }),
  'meta/wrong-type': structural((draft, d) => {
    const [key, v] = d.pick(draft.entries);
    return setKey(draft, key, wrongType(v, d));
  }),
  'meta/string': structural((draft, d) => {
    const keys = [...draft.entries.filter(([, v]) => v.type === 'string').map(([k]) => k), 'tokenizer.ggml.pre', 'tokenizer.chat_template'];
    return setKey(draft, d.pick(keys), str(d.pick(STRINGS)));
  }),
  'meta/array': structural((draft, d) => {
    const key = d.pick([TOKENS, SCORES, TOKEN_TYPES]);
    const v = draft.entries.find(([k]) => k === key)![1] as Extract<GgufMetadataValue, { type: 'array' }>;
    const arr: unknown[] = Array.from(v.value as ArrayLike<unknown>);
    const n = arr.length;
    const op = d.pick(['shorten', 'lengthen', 'duplicate', 'swap', 'empty'] as const);
    let detail: string;
    if (op === 'shorten' || op === 'empty') {
      const k = op === 'empty' ? 0 : d.pick([1, 2, 3, 258, 259, n >> 1, n - 1]);
      arr.length = k;
      detail = `to ${k} of ${n}`;
    } else if (op === 'lengthen') {
      const k = d.pick([1, 2, 100, 1000]);
      for (let i = 0; i < k; i++) arr.push(key === TOKENS ? `extra${i}` : key === SCORES ? -1000 - i : 1);
      detail = `+${k} entries`;
    } else if (op === 'duplicate') {
      const i = d.int(n);
      const j = d.int(n);
      arr.splice(i, 0, arr[j]);
      detail = `entry ${j} inserted again at ${i}`;
    } else {
      const i = d.int(n);
      const j = d.int(n);
      [arr[i], arr[j]] = [arr[j], arr[i]];
      detail = `entries ${i} and ${j} swapped`;
    }
    setArray(draft, key, v.itemType, arr);
    return `${key} ${op} ${detail}`;
  }),
  'meta/remove': structural((draft, d) => {
    const i = d.int(draft.entries.length);
    const [key] = draft.entries.splice(i, 1)[0];
    return `removed ${key}`;
  }),
  'meta/duplicate': structural((draft, d) => {
    const i = d.int(draft.entries.length);
    const [key, v] = draft.entries[i];
    const copy: GgufMetadataValue = d.chance(0.5) ? v : wrongType(v, d);
    draft.entries.splice(d.chance(0.5) ? i + 1 : draft.entries.length, 0, [key, copy]);
    return `${key} twice (${describeValue(copy)})`;
  }),
  'meta/add': structural((draft, d) => {
    const [key, make] = d.pick(EXTRA_KEYS);
    return setKey(draft, key, make(d));
  }),

  // --- hyper-parameters (targeted)
  'hparam/block-count': structural((draft, d) => setKey(draft, 'llama.block_count', u32(d.pick([0, 1, 2, 3, 4, 6, 64, 511, 512, 513, 1000, 65536, U32_MAX])))),
  'hparam/heads': structural((draft, d) => {
    const key = d.pick(['llama.attention.head_count', 'llama.attention.head_count_kv']);
    if (d.chance(0.25)) {
      // per-layer arrays, sometimes of the wrong length
      const len = d.pick([5, 5, 4, 6, 0]);
      return setKey(draft, key, {
        type: 'array',
        itemType: d.pick(['u32', 'i32'] as const),
        value: Array.from({ length: len }, () => d.pick([0, 1, 4, 8, 16])),
      } as GgufMetadataValue);
    }
    return setKey(draft, key, u32(d.pick([0, 1, 2, 3, 5, 7, 16, 64, 65536, U32_MAX])));
  }),
  'hparam/embedding': structural((draft, d) => setKey(draft, 'llama.embedding_length', u32(d.pick([0, 1, 8, 32, 63, 65, 128, 4096, U32_MAX])))),
  'hparam/context-length': structural((draft, d) =>
    setKey(draft, 'llama.context_length', u32(d.pick([0, 1, 2, 16, 127, 128, 129, 1 << 24, 0x7fffffff, 0x80000000, U32_MAX]))),
  ),
  'hparam/feed-forward': structural((draft, d) => {
    if (d.chance(0.25)) {
      const len = d.pick([5, 4, 6]);
      return setKey(draft, 'llama.feed_forward_length', {
        type: 'array',
        itemType: 'u32',
        value: Array.from({ length: len }, () => d.pick([0, 172, 173])),
      } as GgufMetadataValue);
    }
    return setKey(draft, 'llama.feed_forward_length', u32(d.pick([0, 1, 171, 173, 344, 1 << 30, U32_MAX])));
  }),
  'hparam/rope': structural((draft, d) => {
    const which = d.pick(['dims', 'base', 'type', 'factor', 'scale', 'orig-ctx'] as const);
    switch (which) {
      case 'dims':
        return setKey(draft, 'llama.rope.dimension_count', u32(d.pick([0, 1, 2, 7, 9, 16, 64, 65, U32_MAX])));
      case 'base':
        return setKey(draft, 'llama.rope.freq_base', f32(d.pick(WEIRD_F32)));
      case 'type':
        return setKey(draft, 'llama.rope.scaling.type', str(d.pick(['foo', '', 'LINEAR', 'none', 'linear', 'yarn', 'longrope', 'ntk'])));
      case 'factor':
        return setKey(draft, 'llama.rope.scaling.factor', f32(d.pick(WEIRD_F32)));
      case 'scale':
        return setKey(draft, 'llama.rope.scale_linear', f32(d.pick(WEIRD_F32)));
      case 'orig-ctx':
        return setKey(draft, 'llama.rope.scaling.original_context_length', u32(d.pick([0, 1, U32_MAX])));
    }
  }),
  'hparam/rms-eps': structural((draft, d) =>
    setKey(
      draft,
      'llama.attention.layer_norm_rms_epsilon',
      d.chance(0.15)
        ? { type: 'f64', value: d.pick([-1, Number.NaN, 1e-5]) }
        : f32(d.pick([-1, -1e-5, 0, -0, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1e30, 1e-45])),
    ),
  ),
  'hparam/experts': structural((draft, d) => {
    const parts: string[] = [];
    const which = d.pick(['count', 'used', 'both', 'both'] as const);
    if (which !== 'used') parts.push(setKey(draft, 'llama.expert_count', u32(d.pick([0, 1, 2, 4, 8, 256, U32_MAX]))));
    if (which !== 'count') parts.push(setKey(draft, 'llama.expert_used_count', u32(d.pick([0, 1, 2, 9, U32_MAX]))));
    return parts.join('; ');
  }),
  'hparam/alignment': structural((draft, d) => {
    const a = d.pick([0, 1, 2, 4, 8, 16, 24, 31, 33, 48, 64, 128, 4096, 65536, U32_MAX]);
    const pow2 = a > 0 && (a & (a - 1)) === 0 && a <= 65536;
    // lay the data out with the declared alignment when it is one gguf accepts, so the file is self-consistent
    if (pow2) draft.alignment = a;
    const detail = setKey(draft, 'general.alignment', d.chance(0.1) ? { type: 'u64', value: BigInt(a) } : u32(a));
    return `${detail}${pow2 ? ', data laid out with it' : ''}`;
  }),

  // --- tensor infos
  'tensor/type-in-place': inPlace((b, d, s) => {
    const t = d.pick(s.tensorSpans);
    const type = d.pick(ALL_TYPE_IDS);
    b.writeUInt32LE(type >>> 0, t.typeAt);
    return `${t.name} type ${typeLabel(type)}, data unchanged`;
  }),
  'tensor/type': structural((draft, d) => {
    const i = pickTensor(d, draft, d.pick(['matrix', 'matrix', 'norm', undefined] as const));
    const t = draft.tensors[i];
    const fits = Object.values(GgmlType).filter((ty) => ty !== t.type && byteSizeOrNull(ty, t.dims) !== null);
    const ints = INTEGER_TYPES.filter((ty) => fits.includes(ty));
    const type = ints.length > 0 && d.chance(0.4) ? d.pick(ints) : d.pick(fits);
    const size = byteSizeOrNull(type, t.dims)!;
    draft.tensors[i] = { ...t, type, data: convertData(t.data, t.type, type, size) };
    return `${t.name} ${typeLabel(t.type)} -> ${typeLabel(type)} (${size} bytes)`;
  }),
  'tensor/shape': structural((draft, d) => {
    const i = pickTensor(d, draft);
    const t = draft.tensors[i];
    const dims = [...t.dims];
    const k = d.int(dims.length);
    const op = d.pick(['swap', '+1', '-1', '*2', '/2', '=1', '=0', 'huge', 'add-dim', 'drop-dim', 'five-dims'] as const);
    const n = Number(dims[k]);
    switch (op) {
      case 'swap':
        dims.reverse();
        break;
      case '+1':
        dims[k] = n + 1;
        break;
      case '-1':
        dims[k] = n - 1;
        break;
      case '*2':
        dims[k] = n * 2;
        break;
      case '/2':
        dims[k] = Math.max(1, n >> 1);
        break;
      case '=1':
        dims[k] = 1;
        break;
      case '=0':
        dims[k] = 0;
        break;
      case 'huge':
        dims[k] = d.pick([1n << 32n, 1n << 40n, 1n << 62n, (1n << 64n) - 1n]);
        break;
      case 'add-dim':
        dims.push(d.pick([1, 2]));
        break;
      case 'drop-dim':
        if (dims.length > 1) dims.pop();
        else dims.push(2);
        break;
      case 'five-dims':
        while (dims.length < 5) dims.push(1);
        break;
    }
    const size = byteSizeOrNull(t.type, dims);
    // a consistent file when the new shape has a size, else the old bytes under the new shape
    draft.tensors[i] = { ...t, dims, data: size === null ? t.data : fit(t.data, size) };
    return `${t.name} [${t.dims.join(', ')}] -> [${dims.join(', ')}] (${op})`;
  }),
  'tensor/remove': structural((draft, d) => {
    const byName = draft.tensors.findIndex((t) => t.name === 'output.weight');
    const i = d.chance(0.25) && byName >= 0 ? byName : pickTensor(d, draft, d.chance(0.3) ? 'norm' : undefined);
    return `removed ${draft.tensors.splice(i, 1)[0].name}`;
  }),
  'tensor/duplicate': structural((draft, d) => {
    const i = pickTensor(d, draft);
    const t = draft.tensors[i];
    const layer = d.pick(LLAMA_LAYER_SUFFIXES);
    const name = d.pick([
      t.name,
      t.name,
      `blk.5.${layer}`,
      `blk.4294967295.${layer}`,
      'blk.0.attn_q.bias',
      'blk.0.attn_output.bias',
      'blk.0.ffn_gate_inp.weight',
      'blk.0.ffn_gate_exps.weight',
      'rope_freqs.weight',
      'foo.weight',
      'output_norm.bias',
      'token_embd_norm.weight',
    ]);
    draft.tensors.splice(d.chance(0.5) ? i + 1 : draft.tensors.length, 0, { ...t, name });
    return `${t.name} [${t.dims.join(', ')}] copied as ${name}`;
  }),
  'tensor/rename': structural((draft, d) => {
    const i = pickTensor(d, draft);
    const old = draft.tensors[i].name;
    const other = draft.tensors[d.int(draft.tensors.length)].name;
    const mode = d.pick(['swap', 'unknown', 'empty', 'long', 'same-as-other'] as const);
    if (mode === 'swap') {
      const j = draft.tensors.findIndex((t) => t.name === other);
      draft.tensors[j] = { ...draft.tensors[j], name: old };
    }
    const name =
      mode === 'swap' || mode === 'same-as-other' ? other : mode === 'unknown' ? `${old}.x` : mode === 'empty' ? '' : 'w'.repeat(d.pick([63, 64, 300]));
    draft.tensors[i] = { ...draft.tensors[i], name };
    return `${old} -> ${short(name)} (${mode})`;
  }),
  'tensor/offset': inPlace((b, d, s) => {
    const i = d.int(s.tensorSpans.length);
    const t = s.tensorSpans[i];
    const old = BigInt(s.info.tensors[i].offset);
    const align = BigInt(s.info.alignment);
    const dataSize = BigInt(s.bytes.length - s.info.dataOffset);
    const v = d.pick([
      0n,
      old + 1n,
      old + align,
      old - align,
      BigInt(s.info.tensors[d.int(s.info.tensors.length)].offset),
      dataSize,
      1n << 40n,
      1n << 63n,
      (1n << 64n) - 1n,
    ]);
    b.writeBigUInt64LE(BigInt.asUintN(64, v), t.offsetAt);
    return `${t.name} offset ${old} -> ${BigInt.asUintN(64, v)}`;
  }),

  // --- vocabulary
  'vocab/duplicate-token': structural((draft, d) => {
    const tokens = getArray<string>(draft, TOKENS);
    const n = tokens.length;
    const pairs = d.pick([1, 1, 2, 10]);
    const out: string[] = [];
    for (let p = 0; p < pairs; p++) {
      const mode = d.pick(['normal', 'byte', 'special'] as const);
      const i = d.range(259, n - 1);
      const j = mode === 'normal' ? d.range(259, n - 1) : mode === 'byte' ? d.range(3, 258) : d.range(0, 2);
      tokens[i] = tokens[j];
      out.push(`${i}=${j} ${short(tokens[j])}`);
    }
    setArray(draft, TOKENS, 'string', tokens);
    return out.join(', ');
  }),
  'vocab/no-byte-tokens': structural((draft, d) => {
    const tokens = getArray<string>(draft, TOKENS);
    const types = getArray<number>(draft, TOKEN_TYPES);
    const scores = getArray<number>(draft, SCORES);
    const mode = d.pick(['rename+retype', 'retype', 'rename', 'some', 'delete'] as const);
    const bytes = types.map((ty, i) => (ty === 6 ? i : -1)).filter((i) => i >= 0);
    const chosen = mode === 'some' ? bytes.filter(() => d.chance(0.3)) : bytes;
    if (mode === 'delete') {
      const keep = (_: unknown, i: number) => types[i] !== 6;
      setArray(draft, TOKENS, 'string', tokens.filter(keep));
      setArray(draft, SCORES, 'f32', scores.filter(keep));
      setArray(draft, TOKEN_TYPES, 'i32', types.filter(keep));
      return `deleted ${bytes.length} byte tokens`;
    }
    for (const i of chosen) {
      if (mode !== 'retype') tokens[i] = `plain${i}`;
      if (mode !== 'rename') types[i] = 1;
    }
    setArray(draft, TOKENS, 'string', tokens);
    setArray(draft, TOKEN_TYPES, 'i32', types);
    return `${mode} ${chosen.length} byte tokens`;
  }),
  'vocab/token-type': structural((draft, d) => {
    const types = getArray<number>(draft, TOKEN_TYPES);
    const value = d.pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 99, -1, 0x7fffffff]);
    const mode = d.pick(['some', 'all', 'specials'] as const);
    const idx = mode === 'all' ? types.map((_, i) => i) : mode === 'specials' ? [0, 1, 2] : Array.from({ length: d.range(1, 20) }, () => d.int(types.length));
    for (const i of idx) types[i] = value;
    setArray(draft, TOKEN_TYPES, 'i32', types);
    return `${mode === 'some' ? `${idx.length} tokens` : mode} type ${value}`;
  }),
  'vocab/special-id': structural((draft, d) => {
    const key = d.pick(SPECIAL_ID_KEYS);
    const n = getArray<string>(draft, TOKENS).length;
    const v: GgufMetadataValue = d.chance(0.2)
      ? { type: 'i32', value: d.pick([-1, -2, -100]) }
      : u32(d.pick([n, n + 1, 1000, 0x7fffffff, 0xfffffffe, U32_MAX, 0, 3, 258, 259, n - 1]));
    const parts = [setKey(draft, key, v)];
    if (d.chance(0.3)) parts.push(setKey(draft, 'tokenizer.ggml.add_bos_token', { type: 'bool', value: d.chance(0.5) }));
    return parts.join('; ');
  }),
  'vocab/scores': structural((draft, d) => {
    const scores = getArray<number>(draft, SCORES);
    const value = d.pick([...NON_FINITE, 3.4e38, -3.4e38]);
    const all = d.chance(0.3);
    const count = all ? scores.length : d.range(1, 32);
    for (let k = 0; k < count; k++) scores[all ? k : d.int(scores.length)] = value;
    setArray(draft, SCORES, 'f32', scores);
    return `${all ? 'all' : count} scores = ${value}`;
  }),
  'vocab/token-text': structural((draft, d) => {
    const tokens = getArray<string>(draft, TOKENS);
    const types = getArray<number>(draft, TOKEN_TYPES);
    const count = d.pick([1, 1, 3, 30]);
    const out: string[] = [];
    for (let k = 0; k < count; k++) {
      const i = d.int(tokens.length);
      const text = d.pick([
        '',
        ' ',
        '\u0000',
        '\u2581',
        '\u2581\u2581\u2581',
        '<0x41>',
        '<0xZZ>',
        '<0x>',
        '<0x4142>',
        '\uFFFD',
        'a'.repeat(5000),
        '<s>',
        '</s>',
      ]);
      tokens[i] = text;
      // a byte-looking text on a token typed as a byte (or not) is where the tokenizer parses it
      if (text.startsWith('<0x') && d.chance(0.5)) types[i] = 6;
      out.push(`${i}=${short(text)}${types[i] === 6 ? ' (byte)' : ''}`);
    }
    setArray(draft, TOKENS, 'string', tokens);
    setArray(draft, TOKEN_TYPES, 'i32', types);
    return out.join(', ');
  }),
  'vocab/model': structural((draft, d) => {
    const parts = [setKey(draft, 'tokenizer.ggml.model', str(d.pick(['bert', 'gpt2', 'none', 'no_vocab', 't5', 'rwkv', 'ugm', 'plamo2', 'foo', '', 'llama'])))];
    if (d.chance(0.3)) parts.push(setKey(draft, 'tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: d.pick([[], ['\u2581 t', 'h e']]) }));
    return parts.join('; ');
  }),
};

/** Every mutation kind, in a fixed order (the seeded choice indexes it). */
export const MUTATION_KINDS: readonly string[] = Object.keys(MUTATORS);

/** The mutated model of one case: deterministic in (seed model, caseSeed). */
export function mutateModel(seed: SeedModel, caseSeed: number): Mutation {
  const d = new Dice(caseSeed);
  const kind = d.pick(MUTATION_KINDS);
  const { bytes, detail } = MUTATORS[kind](seed, d);
  return { bytes, kind, detail };
}
