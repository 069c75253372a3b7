// What each model architecture (GGUF general.architecture) supports. Plain decoding is llama.cpp's
// own and works for every architecture it loads. Layer ranges (early exit, self-speculative
// decoding, draft heads) need a graph builder that calls the patch's shared exit
// (llm_graph_context::build_layer_exit, patch 0012); llm_arch_supports_layer_range in
// llama-arch.cpp is the native side of the same list, and refuses whatever is missing here.
import { TAIL_ARCHITECTURES } from '../draft-head/base-weights.js';
import { UnsupportedArchitectureError } from '../native/errors.js';

/** Architectures whose graph builders honour layer ranges (the patch converted them). */
export const LAYER_RANGE_ARCHITECTURES: readonly string[] = Object.freeze([
  'llama',
  'mistral3',
  'qwen2',
  'qwen3',
  'qwen3moe',
  'gemma2',
  'gemma3',
  'phi3',
  'granite',
  'smollm3',
  'olmo2',
  'gpt-oss',
]);

/** Architectures the LayerSkip trainer (lib/training) builds a training graph for. */
export const TRAINING_ARCHITECTURES: readonly string[] = Object.freeze(['llama']);

// Why the others are refused. A family not named here is refused as "not converted yet".
const RECURRENT_OR_HYBRID = [
  'qwen35',
  'qwen35moe',
  'qwen3next',
  'lfm2',
  'lfm2moe',
  'granitehybrid',
  'mamba',
  'mamba2',
  'jamba',
  'falcon-h1',
  'plamo2',
  'nemotron_h',
  'nemotron_h_moe',
  'rwkv6',
  'rwkv6qwen2',
  'rwkv7',
  'arwkv7',
  'kimi-linear',
];
const MULTI_POSITION = ['qwen2vl', 'qwen3vl', 'qwen3vlmoe'];
const PER_LAYER_INPUTS = ['gemma3n', 'gemma4'];

/** Recurrent and hybrid architectures: their layers without attention have head_count_kv 0. */
export function isRecurrentOrHybrid(arch: string): boolean {
  return RECURRENT_OR_HYBRID.includes(arch);
}

/** Why layer ranges are refused for `arch`, or null when they are supported. */
export function layerRangeRefusal(arch: string): string | null {
  if (LAYER_RANGE_ARCHITECTURES.includes(arch)) return null;
  if (RECURRENT_OR_HYBRID.includes(arch)) {
    return `${arch} is a recurrent or hybrid model: its recurrent state is one per sequence, not per layer, so drafts with some layers cannot be verified with the others`;
  }
  if (MULTI_POSITION.includes(arch)) {
    return `${arch} takes several positions per token (M-RoPE), which hidden-state verification does not carry`;
  }
  if (PER_LAYER_INPUTS.includes(arch)) {
    return `${arch} feeds per-layer inputs built from token ids to every layer, which hidden-state verification does not carry`;
  }
  return `the ${arch} graph builder has not been converted to layer ranges (supported: ${LAYER_RANGE_ARCHITECTURES.join(', ')})`;
}

/** Throws the refusal for `arch` as an UnsupportedArchitectureError prefixed with `what` (the API or option that needs layer ranges). */
export function assertLayerRanges(arch: string, what: string): void {
  const why = layerRangeRefusal(arch);
  if (why !== null) {
    throw new UnsupportedArchitectureError(`${what}: layer-range decoding is not available for this model: ${why}. Plain decoding works.`, arch);
  }
}

/** What works for an architecture, for the README table and `layerskip info`. */
export interface ArchitectureSupport {
  plain: boolean;
  earlyExit: boolean;
  selfSpeculative: boolean;
  draftHead: boolean;
  training: boolean;
}

export function architectureSupport(arch: string): ArchitectureSupport {
  const ranges = layerRangeRefusal(arch) === null;
  // a draft head also needs the fitter to know the architecture's tail (norm, softcap, logit scale, bias)
  return {
    plain: true,
    earlyExit: ranges,
    selfSpeculative: ranges,
    draftHead: ranges && TAIL_ARCHITECTURES.includes(arch),
    training: TRAINING_ARCHITECTURES.includes(arch),
  };
}
