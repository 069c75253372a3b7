// One measurement of the trained-model benchmarks (train-speed, train-speed-focus): greedy
// generations of every prompt with one setting (plain without `spec`), their speed and statistics.
import type { Context, SelfSpeculativeOptions } from 'layerskip';

export interface PromptsRun {
  tokensPerSecond: number;
  /** Early-exit drafts accepted / drafted (NaN without drafts). */
  acceptance: number;
  /** Lookup drafts accepted / drafted (NaN without lookup drafts). */
  lookupAcceptance: number;
  tokensPerRound: number;
  texts: string[];
}

export async function runPrompts(ctx: Context, prompts: readonly string[], spec?: SelfSpeculativeOptions, maxTokens = 128): Promise<PromptsRun> {
  let tokens = 0,
    ms = 0,
    drafted = 0,
    accepted = 0,
    lookupDrafted = 0,
    lookupAccepted = 0,
    rounds = 0;
  const texts: string[] = [];
  for (const p of prompts) {
    ctx.clear();
    const r = await ctx.generate(p, { maxTokens, selfSpeculative: spec }).result;
    tokens += r.timings.generatedTokens;
    ms += r.timings.generateMs;
    drafted += r.speculative?.drafted ?? 0;
    accepted += r.speculative?.accepted ?? 0;
    lookupDrafted += r.speculative?.lookup?.drafted ?? 0;
    lookupAccepted += r.speculative?.lookup?.accepted ?? 0;
    rounds += r.speculative?.rounds ?? 0;
    texts.push(r.text);
  }
  return {
    tokensPerSecond: (tokens / ms) * 1000,
    acceptance: drafted ? accepted / drafted : NaN,
    lookupAcceptance: lookupDrafted ? lookupAccepted / lookupDrafted : NaN,
    tokensPerRound: rounds ? tokens / rounds : 1,
    texts,
  };
}
