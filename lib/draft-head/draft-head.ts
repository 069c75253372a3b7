// A fitted draft head for early exit: an affine exit adapter h' = W·h + b on the layer-E residual
// (before the model's own final norm and LM head) and/or a restricted draft vocabulary, bound to
// one base model and one exit layer. Stored as a small GGUF file.
import { createHash } from 'node:crypto';
import { getGgufMetadata, readGgufInfo, readTensorF32, type GgufFileInfo } from '../gguf/reader.js';
import { GgmlType } from '../gguf/constants.js';
import { ggufValue, type GgufMetadataValue } from '../gguf/types.js';
import { writeGguf, type GgufTensorInput } from '../gguf/writer.js';

export const DRAFT_HEAD_TYPE = 'layerskip.draft_head';
const KEY = 'layerskip.draft_head';

/** Whether a GGUF file is a draft head (its metadata has the head's exit layer). */
export function isDraftHeadFile(path: string): boolean {
  try {
    return readGgufInfo(path).metadata.has(`${KEY}.exit_layer`);
  } catch {
    return false; // not a GGUF file at all: loadModel gives the error
  }
}

/** What calibration measured (agreement = early-exit argmax equals the full model's, on held-out positions). */
export interface DraftHeadStats {
  /** Calibration positions used to fit, and held out to evaluate. */
  fitPositions: number;
  heldOutPositions: number;
  /** Held-out agreement of the plain early exit (no head). */
  agreementBefore: number;
  /** Held-out agreement with the draft vocabulary alone (no adapter; = agreementBefore for the full vocabulary). */
  agreementVocabulary: number;
  /** Held-out agreement with the closed-form (ridge) adapter (and the draft vocabulary). */
  agreementRidge: number;
  /** Held-out agreement with this head (its adapter and the draft vocabulary). */
  agreementAfter: number;
  /** Held-out agreement with the refined adapter, when a refinement ran (kept or not). */
  agreementRefined?: number;
  /** Whether the head holds the refined adapter: it is kept only when it agrees at least as well as the ridge one held out. */
  refinementKept?: boolean;
  ridgeLambda: number;
  refinementSteps: number;
  /** Share of the fit positions' greedy tokens that the draft vocabulary holds. */
  vocabularyCoverage: number;
  calibrationMs: number;
}

export interface DraftHeadParts {
  exitLayer: number;
  embeddingSize: number;
  /** The base model's vocabulary size. */
  vocabularySize: number;
  /** `modelIdentity()` of the base model. */
  baseModel: string;
  adapter: Float32Array | null;
  bias: Float32Array | null;
  tokenIds: Int32Array | null;
  stats: DraftHeadStats | null;
}

export class DraftHead implements DraftHeadParts {
  readonly exitLayer: number;
  readonly embeddingSize: number;
  readonly vocabularySize: number;
  readonly baseModel: string;
  readonly adapter: Float32Array | null;
  readonly bias: Float32Array | null;
  readonly tokenIds: Int32Array | null;
  readonly stats: DraftHeadStats | null;

  constructor(parts: DraftHeadParts) {
    const { exitLayer, embeddingSize: d, vocabularySize: v } = parts;
    if (!Number.isInteger(exitLayer) || exitLayer < 1) throw new RangeError(`draft head: exit layer ${exitLayer} is invalid`);
    if (!Number.isInteger(d) || d < 1 || !Number.isInteger(v) || v < 1) throw new RangeError('draft head: invalid embedding or vocabulary size');
    if (parts.adapter && parts.adapter.length !== d * d) throw new RangeError(`draft head: the adapter has ${parts.adapter.length} values, expected ${d * d}`);
    if (parts.bias && parts.bias.length !== d) throw new RangeError(`draft head: the bias has ${parts.bias.length} values, expected ${d}`);
    if (parts.tokenIds) {
      if (parts.tokenIds.length === 0) throw new RangeError('draft head: the draft vocabulary is empty');
      const seen = new Set<number>();
      for (const t of parts.tokenIds) {
        if (!Number.isInteger(t) || t < 0 || t >= v) throw new RangeError(`draft head: token id ${t} is outside the vocabulary [0, ${v})`);
        if (seen.has(t)) throw new RangeError(`draft head: token id ${t} appears twice in the draft vocabulary`);
        seen.add(t);
      }
    }
    for (const [name, a] of [
      ['adapter', parts.adapter],
      ['bias', parts.bias],
    ] as const) {
      if (a && !a.every(Number.isFinite)) throw new RangeError(`draft head: the ${name} holds non-finite values`);
    }
    this.exitLayer = exitLayer;
    this.embeddingSize = d;
    this.vocabularySize = v;
    this.baseModel = parts.baseModel;
    this.adapter = parts.adapter;
    this.bias = parts.bias;
    this.tokenIds = parts.tokenIds;
    this.stats = parts.stats;
  }

  /** Reads a draft head file written by `save()` / `layerskip calibrate`. */
  static load(path: string): DraftHead {
    let info: GgufFileInfo;
    try {
      info = readGgufInfo(path);
    } catch (e) {
      throw new Error(`draft head ${path}: not a readable GGUF file (${(e as Error).message})`);
    }
    const meta = (k: string) => getGgufMetadata(info, `${KEY}.${k}`);
    if (getGgufMetadata(info, 'general.type') !== DRAFT_HEAD_TYPE)
      throw new Error(`draft head ${path}: not a layerskip draft head (general.type is not ${DRAFT_HEAD_TYPE})`);
    const tensor = (name: string) => {
      const t = info.tensors.find((x) => x.name === name);
      if (!t) return null;
      if (t.type !== GgmlType.F32) throw new Error(`draft head ${path}: tensor ${name} is not F32`);
      if (t.absoluteOffset + t.byteSize > info.fileSize) throw new Error(`draft head ${path}: the file is truncated (tensor ${name})`);
      return readTensorF32(path, t);
    };
    const ids = meta('token_ids');
    const statsJson = meta('stats');
    return new DraftHead({
      exitLayer: Number(meta('exit_layer')),
      embeddingSize: Number(meta('embedding_length')),
      vocabularySize: Number(meta('vocab_size')),
      baseModel: String(meta('base_model') ?? ''),
      adapter: tensor('adapter.weight'),
      bias: tensor('adapter.bias'),
      tokenIds: ids === undefined ? null : Int32Array.from(ids as ArrayLike<number>),
      stats: typeof statsJson === 'string' ? (JSON.parse(statsJson) as DraftHeadStats) : null,
    });
  }

  /** Writes the head as a GGUF file. */
  save(path: string): void {
    const d = this.embeddingSize;
    const metadata: [string, GgufMetadataValue][] = [
      ['general.type', ggufValue.string(DRAFT_HEAD_TYPE)],
      [`${KEY}.version`, ggufValue.u32(1)],
      [`${KEY}.exit_layer`, ggufValue.u32(this.exitLayer)],
      [`${KEY}.embedding_length`, ggufValue.u32(d)],
      [`${KEY}.vocab_size`, ggufValue.u32(this.vocabularySize)],
      [`${KEY}.base_model`, ggufValue.string(this.baseModel)],
    ];
    if (this.tokenIds) metadata.push([`${KEY}.token_ids`, ggufValue.i32Array(this.tokenIds)]);
    if (this.stats) metadata.push([`${KEY}.stats`, ggufValue.string(JSON.stringify(this.stats))]);
    const tensors: GgufTensorInput[] = [];
    if (this.adapter) tensors.push({ name: 'adapter.weight', shape: [d, d], type: GgmlType.F32, data: this.adapter });
    if (this.bias) tensors.push({ name: 'adapter.bias', shape: [d], type: GgmlType.F32, data: this.bias });
    writeGguf(path, metadata, tensors);
  }
}

/**
 * The identity of a base model: a hash of its tensor infos (names, types, shapes) and key
 * metadata (architecture, layer count, embedding size, vocabulary size). A head fitted on one
 * model is refused by any other, including another quantization of the same weights.
 */
export function modelIdentity(info: GgufFileInfo): string {
  const arch = String(getGgufMetadata(info, 'general.architecture'));
  const tokens = getGgufMetadata(info, 'tokenizer.ggml.tokens') as ArrayLike<unknown> | undefined;
  const key = {
    arch,
    layers: Number(getGgufMetadata(info, `${arch}.block_count`)),
    embd: Number(getGgufMetadata(info, `${arch}.embedding_length`)),
    vocab: tokens?.length ?? 0,
    tensors: info.tensors.map((t) => [t.name, t.type, t.shape]),
  };
  return createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 32);
}
