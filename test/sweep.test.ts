// tools/sweep and its reports: the sweep's cells against generations run directly with the same
// settings (greedy runs are deterministic, so acceptance and tokens per round must agree), the CSV
// read back, the heat map's cells and marks, and the line-chart renderer's coordinates.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Context, loadModel, type Model, renderLineCharts, type SweepResult, sweep, sweepToCsv, sweepToSvg } from '../lib/index.js';

import { STORIES } from './helpers.js';

const PROMPT = 'Once upon a time';
const MAX_TOKENS = 24;

describe('sweep', () => {
  let model: Model;
  let ctx: Context;
  let result: SweepResult;
  const progress: [number, number, string][] = [];

  beforeAll(async () => {
    model = await loadModel(STORIES);
    ctx = await model.createContext({ contextSize: 256, threads: 1 });
    result = await sweep(ctx, {
      exitLayers: [2, 3],
      draftLengths: [1, 3],
      prompts: [PROMPT],
      maxTokens: MAX_TOKENS,
      repeats: 2,
      onProgress: (done, total, label) => progress.push([done, total, label]),
    });
  });
  afterAll(() => model?.dispose());

  it('measures every (exit layer, draft length) cell once, with plain decoding between rows', () => {
    expect(result.cells.map((c) => [c.exitLayer, c.draftTokens])).toEqual([
      [2, 1],
      [2, 3],
      [3, 1],
      [3, 3],
    ]);
    expect(result.layerCount).toBe(model.layerCount);
    // 4 cells + one plain run per row + a final plain run, reported in order
    expect(progress.map(([done]) => done)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(new Set(progress.map(([, total]) => total))).toEqual(new Set([7]));
    expect(progress.filter(([, , label]) => label === 'plain')).toHaveLength(3);
  });

  it('cells agree with direct generations of the same settings; speedups are against the plain figure', async () => {
    for (const c of result.cells) {
      ctx.clear();
      const direct = await ctx.generate(PROMPT, { maxTokens: MAX_TOKENS, selfSpeculative: { exitLayer: c.exitLayer, draftTokens: c.draftTokens } }).result;
      const s = direct.speculative!;
      expect(c.acceptance).toBeCloseTo(s.drafted ? s.accepted / s.drafted : 0, 10);
      expect(c.tokensPerRound).toBeCloseTo(direct.timings.generatedTokens / s.rounds, 10);
      expect(c.speedup).toBeCloseTo(c.tokensPerSecond / result.plainTokensPerSecond, 10);
      expect(c.tokensPerSecond).toBeGreaterThan(0);
    }
    const fastest = Math.max(...result.cells.map((c) => c.tokensPerSecond));
    expect(result.best.tokensPerSecond).toBe(fastest);
    expect(result.beatsPlain).toBe(result.best.speedup > 1);
    // the kept figure is the fastest repeat; the range spans both repeats
    for (const c of result.cells) {
      const [lo, hi] = c.tokensPerSecondRange;
      expect(lo).toBeLessThanOrEqual(hi);
      expect(hi).toBe(c.tokensPerSecond);
    }
    const [plo, phi] = result.plainTokensPerSecondRange;
    expect(plo).toBeLessThanOrEqual(result.plainTokensPerSecond);
    expect(phi).toBeGreaterThanOrEqual(result.plainTokensPerSecond);
  });

  it('refuses exit layers and draft lengths out of range, and unknown options', async () => {
    await expect(sweep(ctx, { exitLayers: [model.layerCount] })).rejects.toThrow(/outside 1\.\.4/);
    await expect(sweep(ctx, { exitLayers: [2], draftLengths: [0] })).rejects.toThrow(/draft length 0/);
    await expect(sweep(ctx, { exitLayer: [2] } as never)).rejects.toThrow(/exitLayer.*exitLayers/);
  });
});

const CELLS = [
  {
    exitLayer: 1,
    draftTokens: 2,
    tokensPerSecond: 80,
    tokensPerSecondRange: [70, 80] as [number, number],
    speedup: 0.8,
    acceptance: 0.25,
    tokensPerRound: 1.5,
  },
  {
    exitLayer: 2,
    draftTokens: 2,
    tokensPerSecond: 130.5,
    tokensPerSecondRange: [120, 130.5] as [number, number],
    speedup: 1.305,
    acceptance: 0.75,
    tokensPerRound: 2.25,
  },
];
const SAMPLE: SweepResult = {
  plainTokensPerSecond: 100,
  plainTokensPerSecondRange: [95, 104],
  layerCount: 4,
  cells: CELLS,
  best: CELLS[1],
  beatsPlain: true,
};
/** Every cell slower than plain decoding. */
const SLOW: SweepResult = {
  ...SAMPLE,
  plainTokensPerSecond: 200,
  cells: CELLS.map((c) => ({ ...c, speedup: c.tokensPerSecond / 200 })),
  beatsPlain: false,
};
SLOW.best = SLOW.cells[1];

describe('sweep reports', () => {
  it('sweepToCsv writes one row per cell and a plain row, readable back to the same numbers', () => {
    const [header, ...rows] = sweepToCsv(SAMPLE).trimEnd().split('\n');
    expect(header.split(',')).toEqual([
      'exit_layer',
      'draft_tokens',
      'tokens_per_second',
      'speedup_vs_plain',
      'acceptance',
      'tokens_per_round',
      'tokens_per_second_min',
      'tokens_per_second_max',
    ]);
    const parsed = rows.slice(0, -1).map((r) => r.split(',').map(Number));
    expect(parsed).toEqual(
      SAMPLE.cells.map((c) => [c.exitLayer, c.draftTokens, c.tokensPerSecond, c.speedup, c.acceptance, c.tokensPerRound, ...c.tokensPerSecondRange]),
    );
    expect(rows.at(-1)).toBe('plain,,100.00,1,,,95.00,104.00');
  });

  it('sweepToSvg draws one cell per result, marks the best, and escapes the title', () => {
    const svg = sweepToSvg(SAMPLE, 'a <b> & c');
    const cells = [...svg.matchAll(/<rect [^>]*stroke-width="(\d)"><title>E=(\d) d=(\d)/g)];
    expect(cells.map((m) => [Number(m[2]), Number(m[3]), m[1]])).toEqual([
      [1, 2, '1'],
      [2, 2, '3'], // the best cell has the thick border
    ]);
    expect(svg).toContain('a &lt;b&gt; &amp; c');
    expect(svg).not.toContain('<b>');
    expect(svg).toContain('1.30x'); // the best cell's speedup label
    // slower than plain is red-ish (more red than blue), faster blue-ish
    const fill = (e: number) =>
      svg
        .match(new RegExp(`fill="rgb\\((\\d+),(\\d+),(\\d+)\\)"[^>]*><title>E=${e} `))!
        .slice(1)
        .map(Number);
    expect(fill(1)[0]).toBeGreaterThan(fill(1)[2]);
    expect(fill(2)[2]).toBeGreaterThan(fill(2)[0]);
    expect(svg).toContain('plain decoding: 100.0 tokens/s (runs 95-104)');
    expect(svg).toContain('best: E=2, d=2');
  });

  it('sweepToSvg names no best cell when every cell is slower than plain, and is wide enough for its subtitles', () => {
    const svg = sweepToSvg(SLOW);
    expect(svg).toContain('no cell beats plain decoding (fastest: E=2, d=2, 0.65x)');
    expect(svg).not.toContain('best:');
    expect(svg).not.toMatch(/stroke-width="3"/);
    const width = Number(svg.match(/width="(\d+(?:\.\d+)?)"/)![1]);
    const longest = Math.max(...[...svg.matchAll(/y="(?:42|58)" text-anchor="middle">([^<]+)</g)].map((m) => m[1].length));
    expect(width).toBeGreaterThanOrEqual(6.5 * longest); // 12 px sans-serif: under 6.5 px a character
  });
});

describe('renderLineCharts', () => {
  it('maps data to the plot box: (xlo, ylo) to the bottom left, (xhi, yhi) to the top right', () => {
    const svg = renderLineCharts(
      [
        {
          title: 'p',
          xLabel: 'x',
          yLabel: 'y',
          yRange: [0, 1],
          series: [
            {
              name: 's',
              color: 'red',
              points: [
                { x: 0, y: 0 },
                { x: 10, y: 1 },
              ],
            },
          ],
        },
      ],
      { panelWidth: 400, panelHeight: 300 },
    );
    // margins: left 62, right 16, top 28, bottom 48; no title: top offset 36
    const [x0, x1, y0, y1] = [62, 400 - 16, 36 + 300 - 48, 36 + 28];
    expect(svg).toContain(`<path d="M${x0.toFixed(1)} ${y0.toFixed(1)} L${x1.toFixed(1)} ${y1.toFixed(1)}"`);
    expect(svg).toContain(`<rect x="${x0}" y="${y1}" width="${x1 - x0}" height="${y0 - y1}"`);
  });

  it('breaks a line at a non-finite point, skips reference lines out of range, puts log ticks at 1-2-5', () => {
    const svg = renderLineCharts([
      {
        title: 'p',
        xLabel: 'n',
        yLabel: 'q',
        xLog: true,
        yRange: [0, 1],
        hLines: [
          { y: 0.5, label: 'chance' },
          { y: 2, label: 'outside' },
        ],
        series: [
          {
            name: 's',
            color: 'blue',
            points: [
              { x: 1, y: 0.1 },
              { x: 10, y: 0.2 },
              { x: 20, y: Number.NaN },
              { x: 50, y: 0.4 },
              { x: 100, y: 0.9 },
            ],
          },
        ],
      },
    ]);
    const path = svg.match(/<path d="([^"]+)"/)![1];
    expect(path.match(/M/g)).toHaveLength(2); // two segments
    expect(path.match(/L/g)).toHaveLength(2);
    expect(svg).toContain('>chance<');
    expect(svg).not.toContain('>outside<');
    const ticks = [...svg.matchAll(/text-anchor="middle">(\d+)<\/text>/g)].map((m) => Number(m[1]));
    expect(ticks).toEqual([1, 2, 5, 10, 20, 50, 100]);
  });

  it('builds the legend from the first panel and escapes its names', () => {
    const svg = renderLineCharts(
      [
        { title: 'a', xLabel: 'x', yLabel: 'y', series: [{ name: 'PCA <k>', color: 'red', points: [{ x: 1, y: 1 }] }] },
        { title: 'b', xLabel: 'x', yLabel: 'y', series: [{ name: 'other', color: 'green', points: [{ x: 1, y: 1 }] }] },
      ],
      { title: 'T' },
    );
    // the legend's labels sit on the line under the title (y 46)
    expect([...svg.matchAll(/<text x="\d+" y="46">([^<]+)<\/text>/g)].map((m) => m[1])).toEqual(['PCA &lt;k&gt;']);
    expect(svg).toMatch(/width="920"/); // two panels of 460
  });
});
