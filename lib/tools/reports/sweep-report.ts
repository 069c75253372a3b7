// The exit-layer x draft-length sweep's reports: CSV and an SVG heat map.
import type { SweepResult } from '../sweep.js';
import { escapeXml } from '../../analysis/svg-chart.js';

export function sweepToCsv(r: SweepResult): string {
  const lines = ['exit_layer,draft_tokens,tokens_per_second,speedup_vs_plain,acceptance,tokens_per_round,tokens_per_second_min,tokens_per_second_max'];
  for (const c of r.cells) {
    const [lo, hi] = c.tokensPerSecondRange;
    lines.push(
      [
        c.exitLayer,
        c.draftTokens,
        c.tokensPerSecond.toFixed(2),
        c.speedup.toFixed(4),
        c.acceptance.toFixed(4),
        c.tokensPerRound.toFixed(3),
        lo.toFixed(2),
        hi.toFixed(2),
      ].join(','),
    );
  }
  const [plo, phi] = r.plainTokensPerSecondRange;
  lines.push(`plain,,${r.plainTokensPerSecond.toFixed(2)},1,,,${plo.toFixed(2)},${phi.toFixed(2)}`);
  return lines.join('\n') + '\n';
}

/** A heat map of tokens/s over exit layer (rows) x draft length (columns), with labelled axes and a colour scale. */
export function sweepToSvg(r: SweepResult, title = 'Self-speculative greedy decoding: tokens/s'): string {
  const layers = [...new Set(r.cells.map((c) => c.exitLayer))].sort((a, b) => a - b);
  const drafts = [...new Set(r.cells.map((c) => c.draftTokens))].sort((a, b) => a - b);
  const cw = 64,
    ch = 40,
    left = 90,
    top = 86,
    legendW = 18;
  const [plo, phi] = r.plainTokensPerSecondRange;
  const subtitle = `plain decoding: ${r.plainTokensPerSecond.toFixed(1)} tokens/s (runs ${plo.toFixed(0)}-${phi.toFixed(0)})`;
  const verdict = r.beatsPlain
    ? `best: E=${r.best.exitLayer}, d=${r.best.draftTokens}, ${r.best.tokensPerSecond.toFixed(1)} tokens/s (${r.best.speedup.toFixed(2)}x)`
    : `no cell beats plain decoding (fastest: E=${r.best.exitLayer}, d=${r.best.draftTokens}, ${r.best.speedup.toFixed(2)}x)`;
  // wide enough for the title and both subtitle lines (about 7 px per character at 12 px)
  const width = Math.max(left + drafts.length * cw + 120, 7 * Math.max(subtitle.length, verdict.length) + 40, 8.5 * title.length + 40);
  const height = top + 16 + layers.length * ch + 70;
  const vals = r.cells.map((c) => c.tokensPerSecond);
  const lo = Math.min(...vals, r.plainTokensPerSecond);
  const hi = Math.max(...vals, r.plainTokensPerSecond);
  // diverging colours around the plain decoding speed: red slower, blue faster
  const colour = (v: number) => {
    const t =
      v >= r.plainTokensPerSecond
        ? (v - r.plainTokensPerSecond) / (hi - r.plainTokensPerSecond || 1)
        : -(r.plainTokensPerSecond - v) / (r.plainTokensPerSecond - lo || 1);
    const a = Math.min(1, Math.abs(t));
    const [R, G, B] = t >= 0 ? [255 - 200 * a, 255 - 120 * a, 255] : [255, 255 - 170 * a, 255 - 170 * a];
    return `rgb(${R | 0},${G | 0},${B | 0})`;
  };
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`);
  out.push(`<text x="${width / 2}" y="42" text-anchor="middle">${escapeXml(subtitle)}</text>`);
  out.push(`<text x="${width / 2}" y="58" text-anchor="middle">${escapeXml(verdict)}</text>`);
  for (const [i, l] of layers.entries()) {
    for (const [j, d] of drafts.entries()) {
      const c = r.cells.find((x) => x.exitLayer === l && x.draftTokens === d);
      if (!c) continue;
      const x = left + j * cw,
        y = top + i * ch;
      const isBest = c === r.best && r.beatsPlain; // no mark when every cell is slower than plain
      const [lo, hi] = c.tokensPerSecondRange;
      out.push(
        `<rect x="${x}" y="${y}" width="${cw}" height="${ch}" fill="${colour(c.tokensPerSecond)}" stroke="${isBest ? 'black' : '#ccc'}" stroke-width="${isBest ? 3 : 1}"><title>E=${l} d=${d}: ${c.tokensPerSecond.toFixed(1)} tokens/s (repeats ${lo.toFixed(1)}-${hi.toFixed(1)}), ${c.speedup.toFixed(2)}x, acceptance ${c.acceptance.toFixed(2)}</title></rect>`,
      );
      out.push(
        `<text x="${x + cw / 2}" y="${y + ch / 2 - 2}" text-anchor="middle">${c.tokensPerSecond >= 100 ? c.tokensPerSecond.toFixed(0) : c.tokensPerSecond.toFixed(1)}</text>`,
      );
      out.push(`<text x="${x + cw / 2}" y="${y + ch / 2 + 12}" text-anchor="middle" font-size="10" fill="#333">${c.speedup.toFixed(2)}x</text>`);
    }
    out.push(`<text x="${left - 8}" y="${top + i * ch + ch / 2 + 4}" text-anchor="end">${l}</text>`);
  }
  for (const [j, d] of drafts.entries()) out.push(`<text x="${left + j * cw + cw / 2}" y="${top + layers.length * ch + 18}" text-anchor="middle">${d}</text>`);
  out.push(
    `<text x="${left + (drafts.length * cw) / 2}" y="${top + layers.length * ch + 42}" text-anchor="middle" font-weight="bold">draft length d (tokens per round)</text>`,
  );
  const midY = top + (layers.length * ch) / 2;
  out.push(`<text x="24" y="${midY}" text-anchor="middle" font-weight="bold" transform="rotate(-90 24 ${midY})">exit layer E (of ${r.layerCount})</text>`);
  // colour scale
  const lx = left + drafts.length * cw + 30,
    ly = top,
    lh = layers.length * ch;
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
