// The flags `generate` and `chat` share: the model, the sampling options, the context's threads and
// size, and the self-speculative settings.
import type { GenerateOptions } from '../context.js';
import { intFlag, numberFlag } from './args.js';

export const GENERATION_FLAGS = {
  model: { type: 'string', short: 'm' },
  'max-tokens': { type: 'string', short: 'n' },
  temp: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  seed: { type: 'string' },
  threads: { type: 'string', short: 't' },
  ctx: { type: 'string', short: 'c' },
  'exit-layer': { type: 'string' },
  draft: { type: 'string' },
  'draft-head': { type: 'string' },
} as const;

type FlagValues = { [K in keyof typeof GENERATION_FLAGS]?: string };

/** maxTokens and the sampling options from the shared flags. */
export function samplingFromFlags(values: FlagValues, defaultMaxTokens: number): GenerateOptions {
  return {
    maxTokens: intFlag('max-tokens', values['max-tokens'], 1) ?? defaultMaxTokens,
    temperature: numberFlag('temp', values.temp, { min: 0 }),
    topK: intFlag('top-k', values['top-k'], 0),
    topP: numberFlag('top-p', values['top-p'], { min: 0, max: 1 }),
    seed: intFlag('seed', values.seed, 0, 2 ** 32 - 1),
  };
}

/** The context options from the shared flags. */
export function contextFromFlags(values: FlagValues): { threads?: number; contextSize?: number } {
  return { threads: intFlag('threads', values.threads, 1), contextSize: intFlag('ctx', values.ctx, 1) };
}
