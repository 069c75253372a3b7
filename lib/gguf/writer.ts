import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_KEY_GENERAL_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  GgmlType,
  GgufValueTypeId,
  alignUp,
  ggmlTensorByteSize,
  ggmlTypeName,
  type GgufArrayItemType,
} from './constants.js';
import { convertF32ToF16 } from './f16.js';
import type { GgufMetadataInput, GgufMetadataValue } from './types.js';

/**
 * One piece of a tensor's data:
 * - `Float32Array`: float values, converted to the tensor's type (only F32 and F16 tensors);
 * - `Uint8Array` (incl. Buffer): raw bytes already encoded in the tensor's type (any type).
 * The writer consumes a chunk completely before asking for the next one, so producers may reuse
 * one chunk buffer.
 */
export type TensorChunk = Float32Array | Uint8Array;

/** A whole tensor, or a function called once (at write time) that yields the data in order. */
export type TensorDataSource = TensorChunk | (() => Iterable<TensorChunk>);

export interface GgufTensorInput {
  name: string;
  /** ggml `ne` order: shape[0] is the contiguous (row) dimension; numpy shape is the reverse. */
  shape: readonly number[];
  /** ggml type id, e.g. GgmlType.F16. */
  type: number;
  data: TensorDataSource;
}

export interface WriteGgufOptions {
  /**
   * Data alignment. Default: the `general.alignment` metadata value if present, else 32. When it is
   * not 32 and the metadata lacks `general.alignment`, the key is added.
   */
  alignment?: number;
  /** Size of the write buffer in bytes (default 8 MiB). */
  bufferBytes?: number;
}

export interface WrittenTensorInfo {
  name: string;
  shape: number[];
  type: number;
  /** Offset relative to the start of the data section. */
  offset: number;
  byteSize: number;
}

export interface WriteGgufResult {
  path: string;
  fileSize: number;
  /** Absolute file offset of the tensor data section. */
  dataOffset: number;
  alignment: number;
  tensors: WrittenTensorInfo[];
}

// ---------------------------------------------------------------------------------------------
// Header serialisation

class ByteBuilder {
  private chunks: Buffer[] = [];
  private cur: Buffer;
  private pos = 0;
  length = 0;

  constructor(private readonly blockSize = 1 << 20) {
    this.cur = Buffer.allocUnsafe(blockSize);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.cur.length) return;
    this.chunks.push(this.cur.subarray(0, this.pos));
    this.cur = Buffer.allocUnsafe(Math.max(this.blockSize, n));
    this.pos = 0;
  }

  u8(v: number): void {
    this.ensure(1);
    this.cur.writeUInt8(v, this.pos);
    this.advance(1);
  }
  i8(v: number): void {
    this.ensure(1);
    this.cur.writeInt8(v, this.pos);
    this.advance(1);
  }
  u16(v: number): void {
    this.ensure(2);
    this.cur.writeUInt16LE(v, this.pos);
    this.advance(2);
  }
  i16(v: number): void {
    this.ensure(2);
    this.cur.writeInt16LE(v, this.pos);
    this.advance(2);
  }
  u32(v: number): void {
    this.ensure(4);
    this.cur.writeUInt32LE(v, this.pos);
    this.advance(4);
  }
  i32(v: number): void {
    this.ensure(4);
    this.cur.writeInt32LE(v, this.pos);
    this.advance(4);
  }
  f32(v: number): void {
    this.ensure(4);
    this.cur.writeFloatLE(v, this.pos);
    this.advance(4);
  }
  f64(v: number): void {
    this.ensure(8);
    this.cur.writeDoubleLE(v, this.pos);
    this.advance(8);
  }
  u64(v: bigint): void {
    this.ensure(8);
    this.cur.writeBigUInt64LE(v, this.pos);
    this.advance(8);
  }
  i64(v: bigint): void {
    this.ensure(8);
    this.cur.writeBigInt64LE(v, this.pos);
    this.advance(8);
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.cur.set(b, this.pos);
    this.advance(b.length);
  }
  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(BigInt(b.length));
    this.bytes(b);
  }
  zeros(n: number): void {
    this.ensure(n);
    this.cur.fill(0, this.pos, this.pos + n);
    this.advance(n);
  }
  private advance(n: number): void {
    this.pos += n;
    this.length += n;
  }
  toBuffer(): Buffer {
    return Buffer.concat([...this.chunks, this.cur.subarray(0, this.pos)]);
  }
}

const INT_RANGES: Record<'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32', [number, number]> = {
  u8: [0, 0xff],
  i8: [-0x80, 0x7f],
  u16: [0, 0xffff],
  i16: [-0x8000, 0x7fff],
  u32: [0, 0xffffffff],
  i32: [-0x80000000, 0x7fffffff],
};

function checkInt(key: string, type: keyof typeof INT_RANGES, v: number): void {
  const [lo, hi] = INT_RANGES[type];
  if (!Number.isInteger(v) || v < lo || v > hi) {
    throw new Error(`metadata ${key}: ${v} is not a valid ${type}`);
  }
}

function toBigInt(key: string, type: 'u64' | 'i64', v: bigint | number): bigint {
  if (typeof v === 'number' && !Number.isSafeInteger(v)) {
    throw new Error(`metadata ${key}: ${v} is not a safe integer for ${type}; pass a bigint`);
  }
  const b = BigInt(v);
  if (type === 'u64' ? b < 0n || b > 0xffffffffffffffffn : b < -(1n << 63n) || b >= 1n << 63n) {
    throw new Error(`metadata ${key}: ${v} is out of range for ${type}`);
  }
  return b;
}

function writeScalar(out: ByteBuilder, key: string, type: GgufArrayItemType, v: unknown): void {
  switch (type) {
    case 'u8':
    case 'i8':
    case 'u16':
    case 'i16':
    case 'u32':
    case 'i32': {
      if (typeof v !== 'number') throw new Error(`metadata ${key}: expected a number for ${type}, got ${typeof v}`);
      checkInt(key, type, v);
      out[type](v);
      return;
    }
    case 'f32':
    case 'f64':
      if (typeof v !== 'number') throw new Error(`metadata ${key}: expected a number for ${type}, got ${typeof v}`);
      out[type](v);
      return;
    case 'u64':
    case 'i64':
      if (typeof v !== 'number' && typeof v !== 'bigint') {
        throw new Error(`metadata ${key}: expected a bigint or number for ${type}, got ${typeof v}`);
      }
      out[type](toBigInt(key, type, v));
      return;
    case 'bool':
      if (typeof v !== 'boolean') throw new Error(`metadata ${key}: expected a boolean, got ${typeof v}`);
      out.u8(v ? 1 : 0);
      return;
    case 'string':
      if (typeof v !== 'string') throw new Error(`metadata ${key}: expected a string, got ${typeof v}`);
      out.string(v);
      return;
    default:
      throw new Error(`metadata ${key}: unsupported value type ${String(type)}`);
  }
}

function writeKv(out: ByteBuilder, key: string, v: GgufMetadataValue): void {
  out.string(key);
  if (v.type === 'array') {
    const itemType = v.itemType as string;
    if (!(itemType in GgufValueTypeId) || itemType === 'array') {
      throw new Error(`metadata ${key}: unsupported array item type ${itemType}`);
    }
    out.u32(GgufValueTypeId.array);
    out.u32(GgufValueTypeId[v.itemType]);
    const arr = v.value as ArrayLike<unknown>;
    out.u64(BigInt(arr.length));
    for (let i = 0; i < arr.length; i++) writeScalar(out, key, v.itemType, arr[i]);
    return;
  }
  if (!(v.type in GgufValueTypeId)) throw new Error(`metadata ${key}: unsupported value type ${String(v.type)}`);
  out.u32(GgufValueTypeId[v.type]);
  writeScalar(out, key, v.type, v.value);
}

function metadataEntries(metadata: GgufMetadataInput): [string, GgufMetadataValue][] {
  const entries: [string, GgufMetadataValue][] =
    Symbol.iterator in metadata
      ? Array.from(metadata as Iterable<readonly [string, GgufMetadataValue]>, ([k, v]) => [k, v])
      : Object.entries(metadata as Record<string, GgufMetadataValue>);
  const seen = new Set<string>();
  for (const [k] of entries) {
    if (seen.has(k)) throw new Error(`duplicate metadata key ${k}`);
    seen.add(k);
  }
  return entries;
}

// ---------------------------------------------------------------------------------------------
// Buffered file output

class FdWriter {
  private readonly buf: Buffer;
  private pos = 0;
  /** Bytes written to the file so far, including the buffered ones. */
  offset = 0;

  constructor(
    private readonly fd: number,
    bufferBytes: number,
  ) {
    this.buf = Buffer.allocUnsafeSlow(bufferBytes);
  }

  get available(): number {
    return this.buf.length - this.pos;
  }

  /** A view into the free part of the buffer; call commit(n) after filling n bytes of it. */
  reserve(): Buffer {
    return this.buf.subarray(this.pos);
  }

  commit(n: number): void {
    this.pos += n;
    this.offset += n;
    if (this.pos === this.buf.length) this.flush();
  }

  write(data: Uint8Array): void {
    if (data.length >= this.buf.length) {
      this.flush();
      writeAll(this.fd, data);
      this.offset += data.length;
      return;
    }
    let src = 0;
    while (src < data.length) {
      const n = Math.min(this.available, data.length - src);
      this.buf.set(data.subarray(src, src + n), this.pos);
      src += n;
      this.commit(n);
    }
  }

  zeros(n: number): void {
    while (n > 0) {
      const k = Math.min(this.available, n);
      this.buf.fill(0, this.pos, this.pos + k);
      n -= k;
      this.commit(k);
    }
  }

  flush(): void {
    if (this.pos > 0) writeAll(this.fd, this.buf.subarray(0, this.pos));
    this.pos = 0;
  }
}

function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off);
}

// ---------------------------------------------------------------------------------------------

/**
 * Writes a GGUF v3 file. Tensor data is streamed: each tensor's `data` function is called once, in
 * tensor order, and its chunks are encoded into a fixed-size buffer, so memory use is independent
 * of model size. The file is written to a temporary name next to `filePath` and renamed at the end.
 * Synchronous (blocks the event loop for large models).
 */
export function writeGguf(filePath: string, metadata: GgufMetadataInput, tensors: readonly GgufTensorInput[], options: WriteGgufOptions = {}): WriteGgufResult {
  if (os.endianness() !== 'LE') throw new Error('writeGguf supports little-endian hosts only');
  const entries = metadataEntries(metadata);

  // Alignment
  const alignEntry = entries.find(([k]) => k === GGUF_KEY_GENERAL_ALIGNMENT);
  let alignment = options.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  if (alignEntry) {
    const v = alignEntry[1];
    if (v.type !== 'u32') throw new Error(`${GGUF_KEY_GENERAL_ALIGNMENT} must be a u32`);
    if (options.alignment !== undefined && options.alignment !== v.value) {
      throw new Error(`options.alignment ${options.alignment} conflicts with ${GGUF_KEY_GENERAL_ALIGNMENT}=${v.value}`);
    }
    alignment = v.value;
  } else if (alignment !== GGUF_DEFAULT_ALIGNMENT) {
    entries.push([GGUF_KEY_GENERAL_ALIGNMENT, { type: 'u32', value: alignment }]);
  }
  if (!Number.isInteger(alignment) || alignment <= 0 || alignment % 8 !== 0) {
    throw new Error(`alignment must be a positive multiple of 8, got ${alignment}`);
  }

  // Tensor table
  const names = new Set<string>();
  const infos: WrittenTensorInfo[] = [];
  let dataSize = 0;
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`duplicate tensor name ${t.name}`);
    names.add(t.name);
    if (Buffer.byteLength(t.name, 'utf8') >= 64) throw new Error(`tensor name too long (ggml max 63 bytes): ${t.name}`);
    if (t.shape.length < 1 || t.shape.length > 4) throw new Error(`tensor ${t.name}: 1-4 dimensions required`);
    let byteSize: number;
    try {
      byteSize = ggmlTensorByteSize(t.type, t.shape);
    } catch (e) {
      throw new Error(`tensor ${t.name}: ${(e as Error).message}`);
    }
    infos.push({ name: t.name, shape: [...t.shape], type: t.type, offset: dataSize, byteSize });
    dataSize = alignUp(dataSize + byteSize, alignment);
  }

  // Header
  const hb = new ByteBuilder();
  hb.u32(GGUF_MAGIC);
  hb.u32(GGUF_VERSION);
  hb.u64(BigInt(tensors.length));
  hb.u64(BigInt(entries.length));
  for (const [k, v] of entries) writeKv(hb, k, v);
  for (const info of infos) {
    hb.string(info.name);
    hb.u32(info.shape.length);
    for (const d of info.shape) hb.u64(BigInt(d));
    hb.u32(info.type);
    hb.u64(BigInt(info.offset));
  }
  const dataOffset = alignUp(hb.length, alignment);
  hb.zeros(dataOffset - hb.length);
  const header = hb.toBuffer();

  const dir = path.dirname(path.resolve(filePath));
  const tmpPath = path.join(dir, `.${path.basename(filePath)}.${process.pid}.${Date.now()}.tmp`);
  const fd = fs.openSync(tmpPath, 'w');
  let ok = false;
  let closed = false;
  try {
    const out = new FdWriter(fd, options.bufferBytes ?? 8 << 20);
    out.write(header);
    let f16Scratch: Uint16Array | undefined;
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i];
      const info = infos[i];
      const start = out.offset;
      const expectedEnd = start + info.byteSize;
      const chunks: Iterable<TensorChunk> = typeof t.data === 'function' ? t.data() : [t.data];
      for (const chunk of chunks) {
        if (chunk instanceof Float32Array) {
          if (t.type !== GgmlType.F32 && t.type !== GgmlType.F16) {
            throw new Error(`tensor ${t.name}: Float32Array data only for F32/F16 tensors (type is ${ggmlTypeName(t.type)}); pass raw bytes`);
          }
          const byteLen = chunk.length * (t.type === GgmlType.F16 ? 2 : 4);
          if (out.offset + byteLen > expectedEnd) throw sizeError(info, out.offset + byteLen - start);
          if (t.type === GgmlType.F32) {
            out.write(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          } else {
            const step = 1 << 20;
            if (!f16Scratch) f16Scratch = new Uint16Array(step);
            for (let s = 0; s < chunk.length; s += step) {
              const part = chunk.subarray(s, Math.min(s + step, chunk.length));
              convertF32ToF16(part, f16Scratch);
              out.write(new Uint8Array(f16Scratch.buffer, 0, part.length * 2));
            }
          }
        } else if (chunk instanceof Uint8Array) {
          if (out.offset + chunk.length > expectedEnd) throw sizeError(info, out.offset + chunk.length - start);
          out.write(chunk);
        } else {
          throw new Error(`tensor ${t.name}: data chunks must be Float32Array or Uint8Array`);
        }
      }
      if (out.offset !== expectedEnd) throw sizeError(info, out.offset - start);
      out.zeros(dataOffset + alignUp(info.offset + info.byteSize, alignment) - out.offset);
    }
    out.flush();
    const fileSize = out.offset;
    closed = true;
    fs.closeSync(fd);
    fs.renameSync(tmpPath, filePath);
    ok = true;
    return { path: filePath, fileSize, dataOffset, alignment, tensors: infos };
  } finally {
    if (!ok) {
      if (!closed) fs.closeSync(fd);
      fs.rmSync(tmpPath, { force: true });
    }
  }
}

function sizeError(info: WrittenTensorInfo, got: number): Error {
  return new Error(
    `tensor ${info.name}: data is ${got} bytes so far, expected ${info.byteSize} bytes ` + `(${ggmlTypeName(info.type)} [${info.shape.join(', ')}])`,
  );
}
