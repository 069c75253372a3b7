// The exit-layer x draft-length sweep: greedy self-speculative tokens/s for every (E, d) on one
// prompt set, next to plain decoding measured in the same run, written as CSV and an SVG heat map.
import { escapeXml } from './analysis/svg-chart.js';
import type { Context } from './context.js';

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
  tokensPerSecond: number;
  speedup: number;
  acceptance: number;
  tokensPerRound: number;
}

export interface SweepResult {
  plainTokensPerSecond: number;
  cells: SweepCell[];
  best: SweepCell;
  layerCount: number;
}

const DEFAULT_PROMPTS = ['Once upon a time', 'The little dog ran to the park and'];

/** Measures every (exit layer, draft length) cell; plain decoding is measured between rows to follow drift. */
export async function sweep(ctx: Context, options: SweepOptions = {}): Promise<SweepResult> {
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
      if (tps > best.tps) best = { tps, acceptance: drafted ? accepted / drafted : 0, perRound: rounds ? tokens / rounds : 0 };
    }
    return best;
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
      cells.push({ exitLayer, draftTokens, tokensPerSecond: r.tps, speedup: 0, acceptance: r.acceptance, tokensPerRound: r.perRound });
      options.onProgress?.(++done, total, `E=${exitLayer} d=${draftTokens}`);
    }
  }
  plainRuns.push((await run()).tps);
  options.onProgress?.(++done, total, 'plain');
  const plainTokensPerSecond = plainRuns.sort((a, b) => a - b)[plainRuns.length >> 1];
  for (const c of cells) c.speedup = c.tokensPerSecond / plainTokensPerSecond;
  const best = cells.reduce((a, b) => (b.tokensPerSecond > a.tokensPerSecond ? b : a));
  return { plainTokensPerSecond, cells, best, layerCount: N };
}

export function sweepToCsv(r: SweepResult): string {
  const lines = ['exit_layer,draft_tokens,tokens_per_second,speedup_vs_plain,acceptance,tokens_per_round'];
  for (const c of r.cells) {
    lines.push([c.exitLayer, c.draftTokens, c.tokensPerSecond.toFixed(2), c.speedup.toFixed(4), c.acceptance.toFixed(4), c.tokensPerRound.toFixed(3)].join(','));
  }
  lines.push(`plain,,${r.plainTokensPerSecond.toFixed(2)},1,,`);
  return lines.join('\n') + '\n';
}

/** A heat map of tokens/s over exit layer (rows) x draft length (columns), with labelled axes and a colour scale. */
export function sweepToSvg(r: SweepResult, title = 'Self-speculative greedy decoding: tokens/s'): string {
  const layers = [...new Set(r.cells.map((c) => c.exitLayer))].sort((a, b) => a - b);
  const drafts = [...new Set(r.cells.map((c) => c.draftTokens))].sort((a, b) => a - b);
  const cw = 64, ch = 40, left = 90, top = 70, legendW = 18;
  const width = left + drafts.length * cw + 120;
  const height = top + layers.length * ch + 70;
  const vals = r.cells.map((c) => c.tokensPerSecond);
  const lo = Math.min(...vals, r.plainTokensPerSecond);
  const hi = Math.max(...vals, r.plainTokensPerSecond);
  // diverging colours around the plain decoding speed: red slower, blue faster
  const colour = (v: number) => {
    const t = v >= r.plainTokensPerSecond ? (v - r.plainTokensPerSecond) / (hi - r.plainTokensPerSecond || 1) : -(r.plainTokensPerSecond - v) / (r.plainTokensPerSecond - lo || 1);
    const a = Math.min(1, Math.abs(t));
    const [R, G, B] = t >= 0 ? [255 - 200 * a, 255 - 120 * a, 255] : [255, 255 - 170 * a, 255 - 170 * a];
    return `rgb(${R | 0},${G | 0},${B | 0})`;
  };
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`);
  out.push(`<text x="${width / 2}" y="42" text-anchor="middle">plain decoding: ${r.plainTokensPerSecond.toFixed(1)} tokens/s; best: E=${r.best.exitLayer}, d=${r.best.draftTokens}, ${r.best.tokensPerSecond.toFixed(1)} tokens/s (${r.best.speedup.toFixed(2)}x)</text>`);
  for (const [i, l] of layers.entries()) {
    for (const [j, d] of drafts.entries()) {
      const c = r.cells.find((x) => x.exitLayer === l && x.draftTokens === d);
      if (!c) continue;
      const x = left + j * cw, y = top + i * ch;
      const isBest = c === r.best;
      out.push(`<rect x="${x}" y="${y}" width="${cw}" height="${ch}" fill="${colour(c.tokensPerSecond)}" stroke="${isBest ? 'black' : '#ccc'}" stroke-width="${isBest ? 3 : 1}"><title>E=${l} d=${d}: ${c.tokensPerSecond.toFixed(1)} tokens/s, ${c.speedup.toFixed(2)}x, acceptance ${c.acceptance.toFixed(2)}</title></rect>`);
      out.push(`<text x="${x + cw / 2}" y="${y + ch / 2 - 2}" text-anchor="middle">${c.tokensPerSecond >= 100 ? c.tokensPerSecond.toFixed(0) : c.tokensPerSecond.toFixed(1)}</text>`);
      out.push(`<text x="${x + cw / 2}" y="${y + ch / 2 + 12}" text-anchor="middle" font-size="10" fill="#333">${c.speedup.toFixed(2)}x</text>`);
    }
    out.push(`<text x="${left - 8}" y="${top + i * ch + ch / 2 + 4}" text-anchor="end">${l}</text>`);
  }
  for (const [j, d] of drafts.entries()) out.push(`<text x="${left + j * cw + cw / 2}" y="${top + layers.length * ch + 18}" text-anchor="middle">${d}</text>`);
  out.push(`<text x="${left + (drafts.length * cw) / 2}" y="${top + layers.length * ch + 42}" text-anchor="middle" font-weight="bold">draft length d (tokens per round)</text>`);
  const midY = top + (layers.length * ch) / 2;
  out.push(`<text x="24" y="${midY}" text-anchor="middle" font-weight="bold" transform="rotate(-90 24 ${midY})">exit layer E (of ${r.layerCount})</text>`);
  // colour scale
  const lx = left + drafts.length * cw + 30, ly = top, lh = layers.length * ch;
  for (let k = 0; k < 20; k++) {
    const v = hi - ((hi - lo) * k) / 19;
    out.push(`<rect x="${lx}" y="${ly + (lh * k) / 20}" width="${legendW}" height="${lh / 20 + 1}" fill="${colour(v)}"/>`);
  }
  out.push(`<text x="${lx + legendW + 4}" y="${ly + 10}">${hi.toFixed(0)}</text>`);
  out.push(`<text x="${lx + legendW + 4}" y="${ly + lh}">${lo.toFixed(0)}</text>`);
  out.push(`<text x="${lx + legendW / 2}" y="${ly - 8}" text-anchor="middle" font-size="11">tokens/s</text>`);
  out.push(`</svg>`);
  return out.join('\n') + '\n';
}
