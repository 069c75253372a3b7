// Checks that a draft head belongs to a model (and exit layer), and turns it into what the addon
// installs: the adapter as is, the draft vocabulary with its LM-head rows read from the model file.
import type { GgufFileInfo } from '../gguf/reader.js';
import type { NativeDraftHead, NativeModelInfo } from '../native/binding.js';
import { readHeadRows } from './base-weights.js';
import { DraftHead } from './draft-head.js';

export interface HeadBase {
  info: NativeModelInfo;
  identity: string;
  fileInfo(): GgufFileInfo;
}

/** The head itself (loading it from a file when given a path), checked against the model and exit layer. */
export function resolveDraftHead(head: DraftHead | string, base: HeadBase, exitLayer?: number): DraftHead {
  const h = typeof head === 'string' ? DraftHead.load(head) : head;
  if (!(h instanceof DraftHead)) throw new TypeError('draftHead must be a DraftHead or the path of a draft head file');
  const { info } = base;
  if (h.embeddingSize !== info.embeddingSize || h.vocabularySize !== info.vocabularySize) {
    throw new Error(
      `draft head: fitted for a model with embedding size ${h.embeddingSize} and ${h.vocabularySize} tokens; ` +
        `this model has ${info.embeddingSize} and ${info.vocabularySize}`,
    );
  }
  if (h.baseModel !== base.identity) {
    throw new Error(`draft head: fitted for another model (base model ${h.baseModel}; this model is ${base.identity})`);
  }
  if (h.exitLayer >= info.layerCount) throw new Error(`draft head: exit layer ${h.exitLayer} is not below the model's ${info.layerCount} layers`);
  if (exitLayer !== undefined && h.exitLayer !== exitLayer) {
    throw new Error(`draft head: fitted for exit layer ${h.exitLayer}, not ${exitLayer}`);
  }
  if (h.tokenIds) checkDraftVocabularySupported(base.fileInfo());
  return h;
}

/**
 * A draft vocabulary computes only its tokens' LM-head rows; llama.cpp's early exit cannot add the
 * matching rows of an output bias, so a model with one takes only full-vocabulary heads.
 */
export function checkDraftVocabularySupported(info: GgufFileInfo): void {
  if (info.tensors.some((t) => t.name === 'output.bias')) {
    throw new Error('a draft vocabulary is not supported for models with an output bias (output.bias); fit the head with the full vocabulary');
  }
}

export function nativeDraftHead(head: DraftHead | null, base: HeadBase): NativeDraftHead {
  if (!head) return {};
  const parts: NativeDraftHead = {};
  if (head.adapter) parts.adapter = head.adapter;
  if (head.bias) parts.bias = head.bias;
  if (head.tokenIds) {
    checkDraftVocabularySupported(base.fileInfo());
    const { rows, type } = readHeadRows(base.fileInfo(), head.tokenIds);
    parts.tokenIds = head.tokenIds;
    parts.rows = rows;
    parts.rowType = type;
  }
  return parts;
}
