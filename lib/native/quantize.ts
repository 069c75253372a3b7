// Model quantization through llama.cpp (llama_model_quantize), off the main thread.
import { existsSync, realpathSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { loadNative } from './binding.js';
import { checkInteger } from './errors.js';
import { checkOptionKeys } from '../util/option-keys.js';

export const QUANTIZATION_TYPES = [
  'F32',
  'F16',
  'BF16',
  'Q8_0',
  'Q4_0',
  'Q4_1',
  'Q5_0',
  'Q5_1',
  'Q2_K',
  'Q3_K_M',
  'Q4_K_S',
  'Q4_K_M',
  'Q5_K_S',
  'Q5_K_M',
  'Q6_K',
] as const;
export type QuantizationType = (typeof QUANTIZATION_TYPES)[number];

/** Writes `destination`, a copy of the GGUF model `source` with its weights quantized to `type`. */
export async function quantizeModel(source: string, destination: string, type: QuantizationType, options: { threads?: number } = {}): Promise<void> {
  if (typeof source !== 'string' || typeof destination !== 'string' || destination.length === 0)
    throw new TypeError('quantizeModel: source and destination must be paths');
  checkOptionKeys('quantizeModel options', options, { threads: true });
  if (!existsSync(source)) throw new Error(`quantizeModel: model file not found: ${source}`);
  // llama.cpp maps the source while it writes: a FIFO never ends, and writing onto the source
  // itself truncates the mapping under it (SIGBUS)
  if (!statSync(source).isFile()) throw new Error(`quantizeModel: not a regular file: ${source}`);
  const dir = dirname(resolve(destination));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`quantizeModel: the destination's folder does not exist: ${dir}`);
  if (existsSync(destination) && realpathSync(destination) === realpathSync(source)) {
    throw new Error(`quantizeModel: the destination is the source (${source}); write to another file`);
  }
  if (options.threads !== undefined) checkInteger('quantizeModel: threads', options.threads, 0, 512);
  if (!(QUANTIZATION_TYPES as readonly string[]).includes(type)) {
    throw new RangeError(`quantizeModel: unknown type ${type}; one of ${QUANTIZATION_TYPES.join(', ')}`);
  }
  await (await loadNative()).quantizeModel(source, destination, type, options.threads ?? 0);
}
