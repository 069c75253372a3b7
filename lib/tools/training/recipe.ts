// The LayerSkip recipe's per-step constants (arXiv 2404.16710, section 4; torchtune's
// implementation): which exits a step trains and with what weight, which layers each sample
// skips, and the learning rate. Pure functions of the step, so a resumed run draws the same
// values; the native step takes them as inputs and its graph never changes (see
// patches/README.md, 0008).
import { Xoshiro128, hashSeed } from '../../util/random.js';

export type DropoutScale = 'exp' | 'linear';
export type Curriculum = 'rotational' | 'gradual' | 'none';
export type ExitWeighting = 'paper' | 'uniform' | 'linear';

export interface LayerDropoutOptions {
  /** Skip probability of the last layer (p_max; the paper uses 0.1-0.2). 0 turns dropout off. */
  pMax: number;
  /** How the rate rises with depth: D(l) = 2^(l/(L-1)) - 1 ('exp', default) or l/(L-1). */
  scale?: DropoutScale;
  /** Pretraining from scratch: the rate also rises with time, S(t) = 2^(t/T) - 1 (default false). */
  fromScratch?: boolean;
}

export interface EarlyExitLossOptions {
  /** e_scale: how much the early exits weigh against the final layer (paper: 0.1-0.2 pretraining, 1 fine-tuning). */
  scale: number;
  /** Which exits a step trains (default 'rotational'); 'none' trains the final layer only. */
  curriculum?: Curriculum;
  /** Rotational curriculum: every `rotation`-th exit is on in a step, shifting by one each step (default 2). */
  rotation?: number;
  /** Exit weights before normalisation (default 'paper': e(l) = scale * sum_{i<=l} i); or one value per layer. */
  weights?: ExitWeighting | readonly number[];
}

/** The unnormalised weight of each exit l = 0..L-1 (exit l follows layer l; l = L-1 is the final layer). */
export function exitScales(layers: number, scale: number, weighting: ExitWeighting | readonly number[] = 'paper'): number[] {
  const L = layers;
  if (Array.isArray(weighting)) return [...weighting];
  const early = (l: number): number => {
    switch (weighting) {
      case 'uniform':
        return scale;
      case 'linear':
        return scale * (l + 1);
      default:
        return scale * ((l * (l + 1)) / 2); // sum_{i<=l} i
    }
  };
  const out: number[] = [];
  for (let l = 0; l < L - 1; l++) out.push(early(l));
  // the final layer: L - 1 plus the early exits' share of the sum, as in the paper
  // (torchtune's linear and uniform scales weigh the final layer L and 1, not times e_scale)
  out.push(weighting === 'paper' ? L - 1 + scale * (((L - 2) * (L - 1)) / 2) : weighting === 'linear' ? L : 1);
  return out;
}

/** Which exits step `step` of `total` trains (the final layer always). */
export function curriculumMask(layers: number, step: number, total: number, curriculum: Curriculum, rotation = 2): boolean[] {
  const mask = new Array<boolean>(layers).fill(false);
  mask[layers - 1] = true;
  if (curriculum === 'rotational') {
    for (let l = 0; l < layers - 1; l++) if ((l + step) % rotation === 0) mask[l] = true;
  } else if (curriculum === 'gradual') {
    // exits switch on from the last layer down; all are on by half-way
    const on = Math.floor((layers - 1) * Math.min(1, (2 * step) / Math.max(1, total)));
    for (let l = layers - 1 - on; l < layers - 1; l++) mask[l] = true;
  }
  return mask;
}

/** The normalised exit weights of a step: the enabled exits' scales, summing to 1. */
export function exitWeights(layers: number, step: number, total: number, options: EarlyExitLossOptions | undefined): Float32Array {
  const w = new Float32Array(layers);
  if (!options || options.curriculum === 'none') {
    w[layers - 1] = 1;
    return w;
  }
  const scales = exitScales(layers, options.scale, options.weights ?? 'paper');
  const mask = curriculumMask(layers, step, total, options.curriculum ?? 'rotational', options.rotation ?? 2);
  let sum = 0;
  for (let l = 0; l < layers; l++) if (mask[l]) sum += scales[l];
  for (let l = 0; l < layers; l++) w[l] = mask[l] && sum > 0 ? scales[l] / sum : 0;
  if (sum <= 0) w[layers - 1] = 1;
  return w;
}

/** p(l, t) = S(t) * D(l) * p_max for each layer. */
export function dropoutRates(layers: number, step: number, total: number, options: LayerDropoutOptions | undefined): number[] {
  const rates = new Array<number>(layers).fill(0);
  if (!options || options.pMax === 0) return rates;
  const S = options.fromScratch ? 2 ** (step / Math.max(1, total)) - 1 : 1;
  for (let l = 0; l < layers; l++) {
    const x = layers > 1 ? l / (layers - 1) : 1;
    const D = options.scale === 'linear' ? x : 2 ** x - 1;
    rates[l] = S * D * options.pMax;
  }
  return rates;
}

/**
 * Keep factors [layer][sample] for one step: 0 where the sample skips the layer (Bernoulli with
 * p(l, t), per sample as in torchtune, no rescale), 1 elsewhere. Drawn from (seed, step) alone.
 */
export function keepFactors(
  layers: number,
  samples: number,
  step: number,
  total: number,
  options: LayerDropoutOptions | undefined,
  seed: number,
): Float32Array {
  const keep = new Float32Array(layers * samples).fill(1);
  const rates = dropoutRates(layers, step, total, options);
  if (rates.every((p) => p === 0)) return keep;
  const rng = new Xoshiro128(hashSeed(seed, `dropout:${step}`));
  for (let l = 0; l < layers; l++) {
    for (let s = 0; s < samples; s++) if (rng.nextFloat() < rates[l]) keep[l * samples + s] = 0;
  }
  return keep;
}

/** Linear warm-up to `peak`, then cosine decay to `floor` at the last step. */
export function learningRate(step: number, total: number, peak: number, warmup: number, floor: number): number {
  if (step < warmup) return (peak * (step + 1)) / warmup;
  const progress = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return floor + 0.5 * (peak - floor) * (1 + Math.cos(Math.PI * progress));
}
