// The flags `generate` and `chat` share: the model, the sampling options, the context's threads and
// size, and the self-speculative settings.
import { availableParallelism } from 'node:os';
import type { GenerateOptions } from '../runtime/context.js';
import { DraftHead } from '../draft-head/draft-head.js';
import type { SourceStats, SpeculativeStats } from '../runtime/generation.js';
import { intFlag, numberFlag, readFlagFile, UsageError } from './args.js';

export const GENERATION_FLAGS = {
  model: { type: 'string', short: 'm' },
  'max-tokens': { type: 'string', short: 'n' },
  temp: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  'min-p': { type: 'string' },
  'repeat-penalty': { type: 'string' },
  seed: { type: 'string' },
  threads: { type: 'string', short: 't' },
  ctx: { type: 'string', short: 'c' },
  'exit-layer': { type: 'string' },
  draft: { type: 'string' },
  'draft-head': { type: 'string' },
  lookup: { type: 'string' },
  prediction: { type: 'string' },
  grammar: { type: 'string' },
  'json-schema': { type: 'string' },
} as const;

type FlagValues = { [K in keyof typeof GENERATION_FLAGS]?: string };

/** maxTokens and the sampling options from the shared flags. */
export function samplingFromFlags(values: FlagValues, defaultMaxTokens: number): GenerateOptions {
  return {
    maxTokens: intFlag('max-tokens', values['max-tokens'], 1) ?? defaultMaxTokens,
    temperature: numberFlag('temp', values.temp, { min: 0 }),
    topK: intFlag('top-k', values['top-k'], 0),
    topP: numberFlag('top-p', values['top-p'], { min: 0, max: 1 }),
    minP: numberFlag('min-p', values['min-p'], { min: 0, max: 1 }),
    repeatPenalty: numberFlag('repeat-penalty', values['repeat-penalty'], { min: 0.001, max: 1000 }),
    seed: intFlag('seed', values.seed, 0, 2 ** 32 - 1),
  };
}

/** The context options from the shared flags. */
export function contextFromFlags(values: FlagValues): { threads?: number; contextSize?: number } {
  const threads = intFlag('threads', values.threads, 1);
  const cores = availableParallelism();
  // the API's error names an option the CLI has no flag for (allowMoreThreadsThanCores)
  if (threads !== undefined && threads > cores) {
    throw new UsageError(
      `--threads ${threads} is more than this machine's ${cores} cores: oversubscribed threads wait on each other and run slower; use --threads ${cores} or fewer`,
    );
  }
  return { threads, contextSize: intFlag('ctx', values.ctx, 1) };
}

/**
 * The exit layer and draft head of the flags: --exit-layer, else the layer the --draft-head file was
 * fitted for (the file stores it). The head is the loaded file when it had to be read for its layer
 * (so that it is read once), else the path (read when the generation resolves it).
 */
export function speculationFromFlags(command: string, values: FlagValues): { exitLayer: number | undefined; draftHead: DraftHead | string | undefined } {
  const exitLayer = intFlag('exit-layer', values['exit-layer'], 1);
  const path = values['draft-head'];
  if (exitLayer !== undefined || path === undefined) return { exitLayer, draftHead: path };
  let head: DraftHead;
  try {
    head = DraftHead.load(path);
  } catch (e) {
    throw new UsageError(`${command}: --draft-head: ${(e as Error).message}`);
  }
  return { exitLayer: head.exitLayer, draftHead: head };
}

/** The exit layer against the loaded model, as a usage error worded for the CLI (exit 2), not the API's. */
export function checkExitLayerFlag(command: string, exitLayer: number | undefined, layerCount: number): void {
  if (exitLayer !== undefined && exitLayer >= layerCount) {
    throw new UsageError(`${command}: --exit-layer must be in [1, ${layerCount - 1}] for this model (${layerCount} layers), got ${exitLayer}`);
  }
}

/**
 * Free drafts from the shared flags: --lookup on|off (default on: each round verifies a lookup draft
 * only when its measured acceptance says that beats the alternative) and --prediction FILE.
 */
export function freeDraftsFromFlags(command: string, values: FlagValues): Pick<GenerateOptions, 'lookup' | 'prediction'> {
  const v = values.lookup;
  if (v !== undefined && v !== 'on' && v !== 'off') throw new UsageError(`${command}: --lookup must be on or off, got ${v}`);
  let prediction: string | undefined;
  if (values.prediction !== undefined) prediction = readFlagFile(command, 'prediction', values.prediction);
  return { lookup: v !== 'off', prediction };
}

/** --grammar FILE (GBNF) or --json-schema FILE (a JSON schema): the output must follow it. */
export function constraintFromFlags(command: string, values: FlagValues): Pick<GenerateOptions, 'grammar' | 'jsonSchema'> {
  if (values.grammar !== undefined && values['json-schema'] !== undefined) throw new UsageError(`${command}: give --grammar or --json-schema, not both`);
  if (values.grammar !== undefined) return { grammar: readFlagFile(command, 'grammar', values.grammar) };
  if (values['json-schema'] === undefined) return {};
  const text = readFlagFile(command, 'json-schema', values['json-schema']);
  try {
    return { jsonSchema: JSON.parse(text) as object };
  } catch (e) {
    throw new UsageError(`${command}: --json-schema: ${values['json-schema']} is not JSON (${(e as Error).message})`);
  }
}

/** One line per draft source: drafted, accepted, and the acceptance at the first draft positions. */
export function describeSources(s: SpeculativeStats): string {
  const names: [keyof SpeculativeStats['sources'], string][] = [
    ['earlyExit', 'early exit'],
    ['lookup', 'lookup'],
    ['prediction', 'prediction'],
  ];
  return names
    .filter(([k]) => s.sources[k] !== undefined)
    .map(([k, label]) => {
      const x = s.sources[k] as SourceStats;
      const rate = x.drafted > 0 ? ` (${((100 * x.accepted) / x.drafted).toFixed(0)}%)` : '';
      const byPos = x.draftedByPosition
        .slice(0, 6)
        .map((d, j) => (d > 0 ? (x.acceptedByPosition[j] / d).toFixed(2) : '-'))
        .join(' ');
      return (
        `  ${label}: ${x.rounds} rounds, drafted ${x.drafted}, accepted ${x.accepted}${rate}` +
        (x.drafted > 0 ? `; acceptance by draft position ${byPos}` : '') +
        `; draft ${x.draftMs.toFixed(1)} ms, verify ${x.verifyMs.toFixed(1)} ms\n`
      );
    })
    .join('');
}
