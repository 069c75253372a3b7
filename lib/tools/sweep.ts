// The exit-layer x draft-length sweep: greedy self-speculative tokens/s for every (E, d) on one
// prompt set, next to plain decoding measured in the same run (reports/sweep-report.ts writes it as
// CSV and an SVG heat map).
import type { Context } from '../runtime/context.js';
import { checkOptionKeys, type KeysOf } from '../util/option-keys.js';

export interface SweepOptions {
  /** Exit layers to try (default 1..N-1). */
  exitLayers?: number[];
  /** Draft lengths to try (default 1..8). */
  draftLengths?: number[];
  prompts?: string[];
  /** Tokens generated per prompt (default 64). */
  maxTokens?: number;
  /** Repetitions of each cell (the fastest is kept; default 1). */
  repeats?: number;
  onProgress?: (done: number, total: number, label: string) => void;
}

export interface SweepCell {
  exitLayer: number;
  draftTokens: number;
  /** The fastest of the cell's repeats. */
  tokensPerSecond: number;
  /** The slowest and fastest repeat: how far to trust a difference between cells (one repeat: equal). */
  tokensPerSecondRange: [number, number];
  speedup: number;
  acceptance: number;
  tokensPerRound: number;
}

export interface SweepResult {
  /** The median of the plain runs (one before each row and one after the last). */
  plainTokensPerSecond: number;
  /** The slowest and fastest plain run: the drift over the sweep. */
  plainTokensPerSecondRange: [number, number];
  cells: SweepCell[];
  /** The fastest cell; with `speedup` below 1 no cell beats plain decoding. */
  best: SweepCell;
  /** Whether the fastest cell is faster than plain decoding. */
  beatsPlain: boolean;
  layerCount: number;
}

const DEFAULT_PROMPTS = ['Once upon a time', 'The little dog ran to the park and'];

/** Measures every (exit layer, draft length) cell; plain decoding is measured between rows to follow drift. */
const SWEEP_KEYS = {
  exitLayers: true,
  draftLengths: true,
  prompts: true,
  maxTokens: true,
  repeats: true,
  onProgress: true,
} as const satisfies KeysOf<SweepOptions>;

export async function sweep(ctx: Context, options: SweepOptions = {}): Promise<SweepResult> {
  checkOptionKeys('sweep options', options, SWEEP_KEYS);
  const N = ctx.model.layerCount;
  const layers = options.exitLayers ?? Array.from({ length: N - 1 }, (_, i) => i + 1);
  const drafts = options.draftLengths ?? [1, 2, 3, 4, 5, 6, 7, 8];
  for (const l of layers) if (!Number.isInteger(l) || l < 1 || l >= N) throw new RangeError(`exit layer ${l} is outside 1..${N - 1}`);
  for (const d of drafts) if (!Number.isInteger(d) || d < 1 || d > 64) throw new RangeError(`draft length ${d} is outside 1..64`);
  const prompts = options.prompts ?? DEFAULT_PROMPTS;
  const maxTokens = options.maxTokens ?? 64;
  const repeats = options.repeats ?? 1;

  const run = async (spec?: { exitLayer: number; draftTokens: number }) => {
    let best = { tps: 0, acceptance: 0, perRound: 0 };
    const all: number[] = [];
    for (let r = 0; r < repeats; r++) {
      let tokens = 0;
      let ms = 0;
      let drafted = 0;
      let accepted = 0;
      let rounds = 0;
      for (const p of prompts) {
        ctx.clear();
        const res = await ctx.generate(p, { maxTokens, selfSpeculative: spec }).result;
        tokens += res.timings.generatedTokens;
        ms += res.timings.generateMs;
        drafted += res.speculative?.drafted ?? 0;
        accepted += res.speculative?.accepted ?? 0;
        rounds += res.speculative?.rounds ?? 0;
      }
      const tps = (tokens / ms) * 1000;
      all.push(tps);
      if (tps > best.tps) best = { tps, acceptance: drafted ? accepted / drafted : 0, perRound: rounds ? tokens / rounds : 0 };
    }
    return { ...best, range: [Math.min(...all), Math.max(...all)] as [number, number] };
  };

  const total = layers.length * drafts.length + layers.length + 1;
  let done = 0;
  const plainRuns: number[] = [];
  const cells: SweepCell[] = [];
  await run(); // warm-up
  for (const exitLayer of layers) {
    plainRuns.push((await run()).tps);
    options.onProgress?.(++done, total, 'plain');
    for (const draftTokens of drafts) {
      const r = await run({ exitLayer, draftTokens });
      cells.push({
        exitLayer,
        draftTokens,
        tokensPerSecond: r.tps,
        tokensPerSecondRange: r.range,
        speedup: 0,
        acceptance: r.acceptance,
        tokensPerRound: r.perRound,
      });
      options.onProgress?.(++done, total, `E=${exitLayer} d=${draftTokens}`);
    }
  }
  plainRuns.push((await run()).tps);
  options.onProgress?.(++done, total, 'plain');
  const plainTokensPerSecond = plainRuns.sort((a, b) => a - b)[plainRuns.length >> 1];
  for (const c of cells) c.speedup = c.tokensPerSecond / plainTokensPerSecond;
  const best = cells.reduce((a, b) => (b.tokensPerSecond > a.tokensPerSecond ? b : a));
  const plainTokensPerSecondRange: [number, number] = [plainRuns[0], plainRuns[plainRuns.length - 1]]; // sorted above
  return { plainTokensPerSecond, plainTokensPerSecondRange, cells, best, beatsPlain: best.speedup > 1, layerCount: N };
}
