// What a draft head needs from its base model's file: the LM head's rows for the draft
// vocabulary (in the weight's own GGUF type: rows of a quantized matrix are byte blocks), and the
// final norm's weight and epsilon (for training the adapter through the norm).
import { openSync, readSync, closeSync } from 'node:fs';
import { getGgufMetadata, readTensorF32, type GgufFileInfo, type GgufTensorInfo } from '../gguf/reader.js';

/** The LM head: `output.weight`, or the token embeddings when the model ties them. */
export function lmHeadTensor(info: GgufFileInfo): GgufTensorInfo {
  const t = info.tensors.find((x) => x.name === 'output.weight') ?? info.tensors.find((x) => x.name === 'token_embd.weight');
  if (!t) throw new Error(`${info.path}: no output.weight or token_embd.weight tensor`);
  if (t.shape.length !== 2) throw new Error(`${info.path}: the LM head ${t.name} is not a matrix`);
  return t;
}

/** The raw rows of the LM head for `ids`, in that order (contiguous runs are read at once). */
export function readHeadRows(info: GgufFileInfo, ids: Int32Array): { rows: Uint8Array; type: number; rowBytes: number } {
  const t = lmHeadTensor(info);
  const rowBytes = t.byteSize / t.shape[1];
  if (!Number.isInteger(rowBytes)) throw new Error(`${info.path}: ${t.name} rows are not whole bytes`);
  if (t.absoluteOffset + t.byteSize > info.fileSize) throw new Error(`${info.path}: the file is truncated (${t.name})`);
  const rows = new Uint8Array(ids.length * rowBytes);
  const fd = openSync(info.path, 'r');
  try {
    for (let i = 0; i < ids.length; ) {
      let j = i + 1;
      while (j < ids.length && ids[j] === ids[j - 1] + 1) j++;
      const want = (j - i) * rowBytes;
      let got = 0;
      while (got < want) {
        const r = readSync(fd, rows, i * rowBytes + got, want - got, t.absoluteOffset + ids[i] * rowBytes + got);
        if (r === 0) throw new Error(`${info.path}: short read in ${t.name}`);
        got += r;
      }
      i = j;
    }
  } finally {
    closeSync(fd);
  }
  return { rows, type: t.type, rowBytes };
}

/** The final RMS norm's weight and epsilon. */
export function readOutputNorm(info: GgufFileInfo): { weight: Float32Array; eps: number } {
  const t = info.tensors.find((x) => x.name === 'output_norm.weight');
  if (!t) throw new Error(`${info.path}: no output_norm.weight tensor`);
  const arch = String(getGgufMetadata(info, 'general.architecture'));
  const eps = Number(getGgufMetadata(info, `${arch}.attention.layer_norm_rms_epsilon`) ?? 1e-5);
  return { weight: readTensorF32(info.path, t), eps };
}
