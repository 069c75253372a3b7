// Model quantization through llama.cpp (llama_model_quantize), off the main thread.
import { existsSync } from 'node:fs';
import { loadNative } from './native.js';

export const QUANTIZATION_TYPES = [
  'F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q2_K', 'Q3_K_M', 'Q4_K_S', 'Q4_K_M', 'Q5_K_S', 'Q5_K_M', 'Q6_K',
] as const;
export type QuantizationType = (typeof QUANTIZATION_TYPES)[number];

/** Writes `destination`, a copy of the GGUF model `source` with its weights quantized to `type`. */
export async function quantizeModel(source: string, destination: string, type: QuantizationType, options: { threads?: number } = {}): Promise<void> {
  if (!existsSync(source)) throw new Error(`quantizeModel: model file not found: ${source}`);
  if (!(QUANTIZATION_TYPES as readonly string[]).includes(type)) {
    throw new RangeError(`quantizeModel: unknown type ${type}; one of ${QUANTIZATION_TYPES.join(', ')}`);
  }
  await (await loadNative()).quantizeModel(source, destination, type, options.threads ?? 0);
}
