import fs from 'node:fs';
import os from 'node:os';

import {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_KEY_GENERAL_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_SCALAR_SIZE,
  GGUF_VALUE_TYPE_NAMES,
  GgmlType,
  alignUp,
  ggmlTensorByteSize,
  ggmlTypeName,
  tensorElementCount,
  type GgmlTypeName,
  type GgufArrayItemType,
} from './constants.js';
import { convertF16ToF32 } from './f16.js';
import type { GgufMetadataValue } from './types.js';

export interface GgufTensorInfo {
  name: string;
  /** ggml `ne` order (shape[0] is the contiguous dimension). */
  shape: number[];
  /** ggml type id. */
  type: number;
  typeName: GgmlTypeName;
  /** Offset relative to the data section, as stored in the file. */
  offset: number;
  /** Absolute file offset of the tensor's data. */
  absoluteOffset: number;
  /** Data size in bytes, without padding. */
  byteSize: number;
  nElements: number;
}

export interface GgufFileInfo {
  path: string;
  version: number;
  alignment: number;
  /** Metadata in file order; values in the same typed form the writer accepts. */
  metadata: Map<string, GgufMetadataValue>;
  tensors: GgufTensorInfo[];
  /** Absolute file offset of the tensor data section. */
  dataOffset: number;
  fileSize: number;
}

/** Reads a file region on demand, so multi-GB files are never read whole. */
class FdCursor {
  private buf = Buffer.alloc(0);
  /** File offset of buf[0]. */
  private base = 0;
  private pos = 0;

  constructor(
    private readonly fd: number,
    private readonly fileSize: number,
  ) {}

  get offset(): number {
    return this.base + this.pos;
  }

  /** Bytes left in the file: a length field above this is corrupt (checked before allocating). */
  get remaining(): number {
    return this.fileSize - this.offset;
  }

  private need(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const fileOff = this.base + this.pos;
    if (fileOff + n > this.fileSize) {
      throw new Error(`unexpected end of GGUF file at offset ${fileOff} (need ${n} bytes, file is ${this.fileSize})`);
    }
    const size = Math.min(Math.max(n, 1 << 20), this.fileSize - fileOff);
    const next = Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const r = fs.readSync(this.fd, next, got, size - got, fileOff + got);
      if (r === 0) throw new Error(`short read at offset ${fileOff + got}`);
      got += r;
    }
    this.buf = next;
    this.base = fileOff;
    this.pos = 0;
  }

  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.pos++);
  }
  i8(): number {
    this.need(1);
    return this.buf.readInt8(this.pos++);
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }
  i16(): number {
    this.need(2);
    const v = this.buf.readInt16LE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  i32(): number {
    this.need(4);
    const v = this.buf.readInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  f32(): number {
    this.need(4);
    const v = this.buf.readFloatLE(this.pos);
    this.pos += 4;
    return v;
  }
  f64(): number {
    this.need(8);
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    return v;
  }
  i64(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64LE(this.pos);
    this.pos += 8;
    return v;
  }
  /** A u64 that must fit in a JS number (counts, sizes, offsets). */
  size(what: string): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${what} too large: ${v}`);
    return Number(v);
  }
  string(): string {
    const len = this.size('string length');
    this.need(len);
    const s = this.buf.toString('utf8', this.pos, this.pos + len);
    this.pos += len;
    return s;
  }
  bytesInto(dst: Uint8Array): void {
    this.need(dst.length);
    dst.set(this.buf.subarray(this.pos, this.pos + dst.length));
    this.pos += dst.length;
  }
}

function typeNameOf(id: number, key: string): GgufArrayItemType | 'array' {
  const name = GGUF_VALUE_TYPE_NAMES[id];
  if (name === undefined) throw new Error(`metadata ${key}: unknown GGUF value type ${id}`);
  return name;
}

function readScalar(c: FdCursor, type: GgufArrayItemType): number | bigint | boolean | string {
  switch (type) {
    case 'u8':
      return c.u8();
    case 'i8':
      return c.i8();
    case 'u16':
      return c.u16();
    case 'i16':
      return c.i16();
    case 'u32':
      return c.u32();
    case 'i32':
      return c.i32();
    case 'f32':
      return c.f32();
    case 'f64':
      return c.f64();
    case 'u64':
      return c.u64();
    case 'i64':
      return c.i64();
    case 'bool': {
      const b = c.u8();
      if (b > 1) throw new Error(`invalid bool value ${b}`);
      return b === 1;
    }
    case 'string':
      return c.string();
  }
}

const TYPED_ARRAY_CTORS = {
  u8: Uint8Array,
  i8: Int8Array,
  u16: Uint16Array,
  i16: Int16Array,
  u32: Uint32Array,
  i32: Int32Array,
  f32: Float32Array,
  f64: Float64Array,
  u64: BigUint64Array,
  i64: BigInt64Array,
} as const;

function readValue(c: FdCursor, key: string, typeId: number): GgufMetadataValue {
  const type = typeNameOf(typeId, key);
  if (type !== 'array') return { type, value: readScalar(c, type) } as GgufMetadataValue;
  const itemType = typeNameOf(c.u32(), key);
  if (itemType === 'array') throw new Error(`metadata ${key}: nested arrays are not supported`);
  const n = c.size(`metadata ${key} array length`);
  // a string takes at least its 8-byte length; refuse a count the file cannot hold before allocating
  const minItemBytes = itemType === 'string' ? 8 : GGUF_SCALAR_SIZE[itemType];
  if (n * minItemBytes > c.remaining) {
    throw new Error(`metadata ${key}: array of ${n} ${itemType} values is longer than the rest of the file (${c.remaining} bytes)`);
  }
  if (itemType === 'string') {
    const value: string[] = new Array(n);
    for (let i = 0; i < n; i++) value[i] = c.string();
    return { type: 'array', itemType, value };
  }
  if (itemType === 'bool') {
    const value: boolean[] = new Array(n);
    for (let i = 0; i < n; i++) value[i] = readScalar(c, 'bool') as boolean;
    return { type: 'array', itemType, value };
  }
  const Ctor = TYPED_ARRAY_CTORS[itemType];
  const arr = new Ctor(n);
  c.bytesInto(new Uint8Array(arr.buffer, 0, n * GGUF_SCALAR_SIZE[itemType]));
  return { type: 'array', itemType, value: arr } as GgufMetadataValue;
}

/** Parses a GGUF file's header: metadata and tensor table. Reads only the header bytes. */
export function readGgufInfo(filePath: string): GgufFileInfo {
  if (os.endianness() !== 'LE') throw new Error('readGgufInfo supports little-endian hosts only');
  const fd = fs.openSync(filePath, 'r');
  try {
    const fileSize = fs.fstatSync(fd).size;
    const c = new FdCursor(fd, fileSize);
    const magic = c.u32();
    if (magic !== GGUF_MAGIC) throw new Error(`${filePath}: not a GGUF file (bad magic 0x${magic.toString(16)})`);
    const version = c.u32();
    if (version !== 2 && version !== 3) throw new Error(`${filePath}: unsupported GGUF version ${version}`);
    const nTensors = c.size('tensor count');
    const nKv = c.size('metadata count');

    const metadata = new Map<string, GgufMetadataValue>();
    for (let i = 0; i < nKv; i++) {
      const key = c.string();
      if (metadata.has(key)) throw new Error(`${filePath}: duplicate metadata key ${key}`);
      metadata.set(key, readValue(c, key, c.u32()));
    }

    let alignment = GGUF_DEFAULT_ALIGNMENT;
    const alignValue = metadata.get(GGUF_KEY_GENERAL_ALIGNMENT);
    if (alignValue) {
      if (alignValue.type !== 'u32' || alignValue.value <= 0 || alignValue.value % 8 !== 0) {
        throw new Error(`${filePath}: invalid ${GGUF_KEY_GENERAL_ALIGNMENT}`);
      }
      alignment = alignValue.value;
    }

    const raw: { name: string; shape: number[]; type: number; offset: number }[] = [];
    for (let i = 0; i < nTensors; i++) {
      const name = c.string();
      const nDims = c.u32();
      if (nDims < 1 || nDims > 4) throw new Error(`${filePath}: tensor ${name} has ${nDims} dimensions`);
      const shape: number[] = [];
      for (let d = 0; d < nDims; d++) shape.push(c.size(`tensor ${name} dimension`));
      const type = c.u32();
      const offset = c.size(`tensor ${name} offset`);
      raw.push({ name, shape, type, offset });
    }
    const dataOffset = alignUp(c.offset, alignment);

    const tensors: GgufTensorInfo[] = raw.map((t) => {
      const typeName = ggmlTypeName(t.type);
      const byteSize = ggmlTensorByteSize(t.type, t.shape);
      if (t.offset % alignment !== 0) throw new Error(`${filePath}: tensor ${t.name} offset ${t.offset} is not aligned`);
      const absoluteOffset = dataOffset + t.offset;
      if (absoluteOffset + byteSize > fileSize) {
        throw new Error(`${filePath}: tensor ${t.name} data [${absoluteOffset}, +${byteSize}) is beyond the file end`);
      }
      return {
        name: t.name,
        shape: t.shape,
        type: t.type,
        typeName,
        offset: t.offset,
        absoluteOffset,
        byteSize,
        nElements: tensorElementCount(t.shape),
      };
    });
    return { path: filePath, version, alignment, metadata, tensors, dataOffset, fileSize };
  } finally {
    fs.closeSync(fd);
  }
}

/** The plain value of a metadata key (typed wrapper removed), or undefined. */
export function getGgufMetadata(info: GgufFileInfo, key: string): unknown {
  return info.metadata.get(key)?.value;
}

/**
 * Yields a tensor's raw bytes in chunks of at most `chunkBytes`. The yielded buffer is reused:
 * consume it before requesting the next chunk.
 */
export function* iterateTensorBytes(
  filePath: string,
  tensor: Pick<GgufTensorInfo, 'absoluteOffset' | 'byteSize'>,
  chunkBytes = 8 << 20,
): Generator<Uint8Array, void, void> {
  const fd = fs.openSync(filePath, 'r');
  try {
    const buf = Buffer.allocUnsafe(Math.min(chunkBytes, Math.max(tensor.byteSize, 1)));
    let done = 0;
    while (done < tensor.byteSize) {
      const want = Math.min(buf.length, tensor.byteSize - done);
      let got = 0;
      while (got < want) {
        const r = fs.readSync(fd, buf, got, want - got, tensor.absoluteOffset + done + got);
        if (r === 0) throw new Error(`${filePath}: short read`);
        got += r;
      }
      done += want;
      yield buf.subarray(0, want);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads a tensor's raw bytes into a new Buffer (small tensors / tests). */
export function readTensorBytes(filePath: string, tensor: Pick<GgufTensorInfo, 'absoluteOffset' | 'byteSize'>): Buffer {
  const out = Buffer.allocUnsafe(tensor.byteSize);
  let off = 0;
  for (const chunk of iterateTensorBytes(filePath, tensor)) {
    out.set(chunk, off);
    off += chunk.length;
  }
  return out;
}

/** Reads an F32 or F16 tensor as floats (small tensors / tests). */
export function readTensorF32(filePath: string, tensor: GgufTensorInfo): Float32Array {
  const bytes = readTensorBytes(filePath, tensor);
  const aligned = new Uint8Array(bytes.length);
  aligned.set(bytes);
  if (tensor.type === GgmlType.F32) return new Float32Array(aligned.buffer);
  if (tensor.type === GgmlType.F16) return convertF16ToF32(new Uint16Array(aligned.buffer));
  throw new Error(`readTensorF32: tensor ${tensor.name} is ${tensor.typeName}, not F32/F16`);
}
