import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  GgmlType,
  f16BitsToF32,
  f16Round,
  f32ToF16Bits,
  ggmlTensorByteSize,
  ggufValue,
  inverseNormalCdf,
  readGgufInfo,
  readTensorBytes,
  readTensorF32,
  writeGguf,
  type GgufMetadataValue,
} from '../../lib/gguf/index.js';
import { STORIES } from '../helpers.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerskip-gguf-rw-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('f16 conversion', () => {
  it('encodes exact values, rounding, subnormals and specials', () => {
    expect(f32ToF16Bits(0)).toBe(0);
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(-2)).toBe(0xc000);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // rounds to Inf
    expect(f32ToF16Bits(1e6)).toBe(0x7c00);
    expect(f32ToF16Bits(Infinity)).toBe(0x7c00);
    expect(f32ToF16Bits(-Infinity)).toBe(0xfc00);
    expect(f16BitsToF32(f32ToF16Bits(NaN))).toBeNaN();
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f32ToF16Bits(2 ** -25)).toBe(0); // tie -> even (0)
    expect(f32ToF16Bits(3 * 2 ** -25)).toBe(0x0002); // tie -> even (2)
    expect(f32ToF16Bits(2 ** -14)).toBe(0x0400); // smallest normal
    // ties to even in the normal range: 1 + 2^-11 is halfway between 1 and 1 + 2^-10
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00);
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f16Round(0.1)).toBeCloseTo(0.0999755859375, 12);
  });

  it('round-trips every half value', () => {
    const bad: number[] = [];
    for (let h = 0; h < 0x10000; h++) {
      const exp = (h >>> 10) & 0x1f;
      if (exp === 0x1f && (h & 0x3ff) !== 0) continue; // NaN payloads
      if (f32ToF16Bits(f16BitsToF32(h)) !== h) bad.push(h);
    }
    expect(bad).toEqual([]);
  });

  it('inverse normal CDF is accurate', () => {
    expect(inverseNormalCdf(0.5)).toBeCloseTo(0, 12);
    expect(inverseNormalCdf(0.975)).toBeCloseTo(1.959963984540054, 8);
    expect(inverseNormalCdf(0.001)).toBeCloseTo(-3.090232306167813, 7);
  });
});

describe('GGUF writer -> reader round trip', () => {
  const metadata: [string, GgufMetadataValue][] = [
    ['general.architecture', ggufValue.string('test')],
    ['general.name', ggufValue.string('ünïcödé ▁name')],
    ['t.u8', ggufValue.u8(255)],
    ['t.i8', ggufValue.i8(-128)],
    ['t.u16', ggufValue.u16(65535)],
    ['t.i16', ggufValue.i16(-32768)],
    ['t.u32', ggufValue.u32(0xffffffff)],
    ['t.i32', ggufValue.i32(-0x80000000)],
    ['t.f32', ggufValue.f32(0.1)],
    ['t.bool', ggufValue.bool(true)],
    ['t.bool2', ggufValue.bool(false)],
    ['t.u64', ggufValue.u64(0xffffffffffffffffn)],
    ['t.i64', ggufValue.i64(-5)],
    ['t.f64', ggufValue.f64(Math.PI)],
    ['t.empty', ggufValue.string('')],
    ['t.arr.str', ggufValue.stringArray(['a', '', '▁b', '<0x0A>'])],
    ['t.arr.f32', ggufValue.f32Array([1.5, -2, 0.1])],
    ['t.arr.i32', ggufValue.i32Array([-1, 0, 2147483647])],
    ['t.arr.u32', ggufValue.u32Array([0, 4294967295])],
    ['t.arr.empty', ggufValue.i32Array([])],
    ['t.arr.u8', { type: 'array', itemType: 'u8', value: [1, 2, 3] }],
    ['t.arr.bool', { type: 'array', itemType: 'bool', value: [true, false] }],
    ['t.arr.i64', { type: 'array', itemType: 'i64', value: [-1n, 2n] }],
  ];

  it('preserves metadata (order, types, values) and tensors', () => {
    const file = path.join(dir, 'rt.gguf');
    const f32 = Float32Array.from({ length: 6 * 5 }, (_, i) => i * 0.25 - 3);
    const f16src = Float32Array.from({ length: 64 * 3 }, (_, i) => Math.sin(i) * 100);
    const q8 = Buffer.from(Array.from({ length: 34 * 4 }, (_, i) => (i * 7) & 0xff)); // 2x[64] Q8_0
    const odd = Float32Array.from([1, 2, 3]);
    const res = writeGguf(file, metadata, [
      { name: 'a.f32', shape: [6, 5], type: GgmlType.F32, data: f32 },
      {
        name: 'b.f16.chunked',
        shape: [64, 3],
        type: GgmlType.F16,
        // chunks of uneven size, reusing one buffer
        data: function* () {
          const buf = new Float32Array(50);
          for (let i = 0; i < f16src.length; i += 50) {
            const n = Math.min(50, f16src.length - i);
            buf.set(f16src.subarray(i, i + n));
            yield buf.subarray(0, n);
          }
        },
      },
      { name: 'c.q8_0.raw', shape: [64, 2], type: GgmlType.Q8_0, data: () => [q8.subarray(0, 50), q8.subarray(50)] },
      { name: 'd.odd', shape: [3], type: GgmlType.F32, data: odd },
    ]);

    const info = readGgufInfo(file);
    expect(info.version).toBe(3);
    expect(info.alignment).toBe(32);
    expect(info.fileSize).toBe(fs.statSync(file).size);
    expect(info.fileSize).toBe(res.fileSize);
    expect(info.dataOffset).toBe(res.dataOffset);
    expect(info.dataOffset % 32).toBe(0);
    expect([...info.metadata.keys()]).toEqual(metadata.map(([k]) => k));

    const plain = (v: GgufMetadataValue | undefined) => (v && v.type === 'array' ? Array.from(v.value as ArrayLike<unknown>) : v?.value);
    for (const [k, v] of metadata) {
      const got = info.metadata.get(k)!;
      expect(got.type, k).toBe(v.type);
      if (v.type === 'array' && got.type === 'array') expect(got.itemType, k).toBe(v.itemType);
      if (k === 't.f32') expect(got.value).toBe(Math.fround(0.1));
      else if (k === 't.arr.f32') expect(plain(got)).toEqual([1.5, -2, 0.1].map(Math.fround));
      else if (k === 't.u64' || k === 't.i64') expect(got.value).toBe(BigInt(v.value as bigint));
      else expect(plain(got), k).toEqual(plain(v));
    }

    expect(info.tensors.map((t) => [t.name, t.typeName, t.shape, t.byteSize])).toEqual([
      ['a.f32', 'F32', [6, 5], 120],
      ['b.f16.chunked', 'F16', [64, 3], 384],
      ['c.q8_0.raw', 'Q8_0', [64, 2], 136],
      ['d.odd', 'F32', [3], 12],
    ]);
    for (const t of info.tensors) {
      expect(t.offset % 32).toBe(0);
      expect(t.absoluteOffset).toBe(info.dataOffset + t.offset);
    }
    expect(info.tensors.map((t) => t.offset)).toEqual([0, 128, 512, 672]);
    expect(info.fileSize).toBe(info.dataOffset + 704); // last tensor padded too
    expect(Array.from(readTensorF32(file, info.tensors[0]))).toEqual(Array.from(f32));
    expect(Array.from(readTensorF32(file, info.tensors[1]))).toEqual(Array.from(f16src, f16Round));
    expect(readTensorBytes(file, info.tensors[2]).equals(q8)).toBe(true);
    expect(Array.from(readTensorF32(file, info.tensors[3]))).toEqual([1, 2, 3]);
  });

  it('honours a custom alignment and writes general.alignment', () => {
    const file = path.join(dir, 'align64.gguf');
    writeGguf(
      file,
      [['general.architecture', ggufValue.string('x')]],
      [
        { name: 't0', shape: [3], type: GgmlType.F32, data: new Float32Array(3) },
        { name: 't1', shape: [5], type: GgmlType.F16, data: new Float32Array(5).fill(1) },
      ],
      { alignment: 64 },
    );
    const info = readGgufInfo(file);
    expect(info.alignment).toBe(64);
    expect(info.metadata.get('general.alignment')).toEqual({ type: 'u32', value: 64 });
    expect(info.dataOffset % 64).toBe(0);
    expect(info.tensors[1].offset).toBe(64);
    expect(Array.from(readTensorF32(file, info.tensors[1]))).toEqual([1, 1, 1, 1, 1]);
  });

  it('rejects bad input with clear errors and leaves no file behind', () => {
    const file = path.join(dir, 'bad.gguf');
    const t = (data: Float32Array | Uint8Array, type: number = GgmlType.F32, shape = [4]) => [{ name: 'x', shape, type, data }];
    expect(() => writeGguf(file, [], t(new Float32Array(3)))).toThrow(/expected 16 bytes/);
    expect(() => writeGguf(file, [], t(new Float32Array(5)))).toThrow(/expected 16 bytes/);
    expect(() => writeGguf(file, [], t(new Float32Array(32), GgmlType.Q8_0, [32]))).toThrow(/raw bytes/);
    expect(() => writeGguf(file, [], t(new Uint8Array(34), GgmlType.Q8_0, [33]))).toThrow(/block size 32/);
    expect(() => writeGguf(file, [['k', ggufValue.u8(256)]], [])).toThrow(/not a valid u8/);
    expect(() => writeGguf(file, [['k', ggufValue.i32(1.5)]], [])).toThrow(/not a valid i32/);
    expect(() => writeGguf(file, [['k', ggufValue.u64(-1n)]], [])).toThrow(/out of range/);
    expect(() =>
      writeGguf(
        file,
        [],
        [
          { name: 'x', shape: [1], type: 0, data: new Float32Array(1) },
          { name: 'x', shape: [1], type: 0, data: new Float32Array(1) },
        ],
      ),
    ).toThrow(/duplicate tensor/);
    expect(() =>
      writeGguf(
        file,
        [
          ['k', ggufValue.u8(1)],
          ['k', ggufValue.u8(1)],
        ],
        [],
      ),
    ).toThrow(/duplicate metadata/);
    expect(fs.existsSync(file)).toBe(false);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('computes quantized tensor sizes from ggml block sizes', () => {
    expect(ggmlTensorByteSize(GgmlType.Q8_0, [4096, 2])).toBe((4096 / 32) * 34 * 2);
    expect(ggmlTensorByteSize(GgmlType.Q4_0, [64])).toBe(36);
    expect(ggmlTensorByteSize(GgmlType.Q4_K, [512])).toBe(288);
    expect(ggmlTensorByteSize(GgmlType.Q5_K, [256])).toBe(176);
    expect(ggmlTensorByteSize(GgmlType.Q6_K, [256])).toBe(210);
    expect(ggmlTensorByteSize(GgmlType.BF16, [3, 3])).toBe(18);
    expect(() => ggmlTensorByteSize(4, [32])).toThrow(/unknown ggml type/);
  });

  it('reads the real stories260K model header', () => {
    const model = STORIES;
    if (!fs.existsSync(model)) {
      if (process.env.CI) throw new Error(`missing ${model}`);
      return;
    }
    const info = readGgufInfo(model);
    expect(info.version).toBe(3);
    expect(info.tensors.length).toBe(48);
    expect(info.metadata.get('llama.block_count')?.value).toBe(5);
    const tokens = info.metadata.get('tokenizer.ggml.tokens');
    expect(tokens?.type === 'array' && tokens.value.length).toBe(512);
    const last = info.tensors.reduce((a, b) => (a.absoluteOffset > b.absoluteOffset ? a : b));
    expect(last.absoluteOffset + last.byteSize).toBeLessThanOrEqual(info.fileSize);
  });
});
