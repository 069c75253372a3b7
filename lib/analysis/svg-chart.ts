/**
 * Minimal dependency-free SVG line charts (side-by-side panels sharing one
 * legend), enough to plot quality-versus-samples curves.
 *
 * @module
 */

/** One curve. Points with a non-finite `y` are skipped (the line breaks there). */
export interface ChartSeries {
  /** Legend label. */
  name: string;
  /** Any SVG colour. */
  color: string;
  /** Data points. */
  points: ReadonlyArray<{ x: number; y: number }>;
  /** Draw dashed. */
  dashed?: boolean;
}

/** One panel (a set of axes). */
export interface ChartPanel {
  /** Panel title. */
  title: string;
  /** x-axis label. */
  xLabel: string;
  /** y-axis label. */
  yLabel: string;
  /** The curves. */
  series: ReadonlyArray<ChartSeries>;
  /** Logarithmic x axis (default false). */
  xLog?: boolean;
  /** y range (default: from the data). */
  yRange?: [number, number];
  /** Horizontal reference lines (e.g. chance level), drawn dotted and labelled. */
  hLines?: ReadonlyArray<{ y: number; label: string }>;
  /** Vertical marks (e.g. a recommended value), drawn dashed and labelled at the top. */
  vLines?: ReadonlyArray<{ x: number; label: string }>;
}

/** Layout options for {@link renderLineCharts}. */
export interface ChartLayout {
  /** Overall title. */
  title?: string;
  /** Width of each panel in px (default 460). */
  panelWidth?: number;
  /** Height of each panel in px (default 340). */
  panelHeight?: number;
}

/** Escape text for inclusion in SVG. */
export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(3)));
}

function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(v);
    }
  }
  return out;
}

function linearTicks(lo: number, hi: number): number[] {
  const span = hi - lo || 1;
  const raw = span / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * Render panels side by side with a shared legend (built from the first panel's
 * series names) under the title.
 */
export function renderLineCharts(panels: ReadonlyArray<ChartPanel>, layout: ChartLayout = {}): string {
  const pw = layout.panelWidth ?? 460;
  const ph = layout.panelHeight ?? 340;
  const top = layout.title ? 64 : 36;
  const width = pw * panels.length;
  const height = top + ph;
  const margin = { left: 62, right: 16, top: 28, bottom: 48 };
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  );
  if (layout.title) {
    parts.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(layout.title)}</text>`);
  }
  // Shared legend.
  const legendSeries = panels[0]?.series ?? [];
  const legendY = layout.title ? 46 : 20;
  let lx = 20;
  for (const s of legendSeries) {
    parts.push(
      `<line x1="${lx}" y1="${legendY - 4}" x2="${lx + 24}" y2="${legendY - 4}" stroke="${s.color}" stroke-width="2.5"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
      `<circle cx="${lx + 12}" cy="${legendY - 4}" r="3" fill="${s.color}"/>`,
      `<text x="${lx + 30}" y="${legendY}">${escapeXml(s.name)}</text>`,
    );
    lx += 40 + 8 * s.name.length;
  }
  panels.forEach((panel, pi) => {
    const ox = pi * pw;
    const x0 = ox + margin.left;
    const x1 = ox + pw - margin.right;
    const y0 = top + ph - margin.bottom;
    const y1 = top + margin.top;
    const xs = panel.series.flatMap((s) => s.points.map((p) => p.x)).filter((v) => Number.isFinite(v) && (!panel.xLog || v > 0));
    const ys = panel.series.flatMap((s) => s.points.map((p) => p.y)).filter(Number.isFinite);
    let xlo = xs.length ? Math.min(...xs) : 1;
    let xhi = xs.length ? Math.max(...xs) : 10;
    if (xlo === xhi) {
      xlo = panel.xLog ? xlo / 2 : xlo - 1;
      xhi = panel.xLog ? xhi * 2 : xhi + 1;
    }
    const [ylo, yhi] = panel.yRange ?? [Math.min(0, ...ys), Math.max(1e-12, ...ys)];
    const fx = (v: number) =>
      panel.xLog ? x0 + ((Math.log(v) - Math.log(xlo)) / (Math.log(xhi) - Math.log(xlo))) * (x1 - x0) : x0 + ((v - xlo) / (xhi - xlo)) * (x1 - x0);
    const fy = (v: number) => y0 - ((v - ylo) / (yhi - ylo || 1)) * (y0 - y1);
    parts.push(`<g>`);
    parts.push(`<text x="${(x0 + x1) / 2}" y="${top + 16}" text-anchor="middle" font-weight="bold">${escapeXml(panel.title)}</text>`);
    for (const t of panel.xLog ? logTicks(xlo, xhi) : linearTicks(xlo, xhi)) {
      const px = fx(t).toFixed(1);
      parts.push(
        `<line x1="${px}" y1="${y1}" x2="${px}" y2="${y0}" stroke="#e5e5e5"/>`,
        `<text x="${px}" y="${y0 + 16}" text-anchor="middle">${fmt(t)}</text>`,
      );
    }
    for (const t of linearTicks(ylo, yhi)) {
      const py = fy(t).toFixed(1);
      parts.push(
        `<line x1="${x0}" y1="${py}" x2="${x1}" y2="${py}" stroke="#e5e5e5"/>`,
        `<text x="${x0 - 6}" y="${py}" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`,
      );
    }
    parts.push(`<rect x="${x0}" y="${y1}" width="${x1 - x0}" height="${y0 - y1}" fill="none" stroke="#333"/>`);
    parts.push(`<text x="${(x0 + x1) / 2}" y="${y0 + 36}" text-anchor="middle">${escapeXml(panel.xLabel)}</text>`);
    const cy = (y0 + y1) / 2;
    parts.push(`<text x="${ox + 16}" y="${cy}" text-anchor="middle" transform="rotate(-90 ${ox + 16} ${cy})">${escapeXml(panel.yLabel)}</text>`);
    for (const h of panel.hLines ?? []) {
      if (!(h.y >= ylo && h.y <= yhi)) continue;
      const py = fy(h.y).toFixed(1);
      parts.push(
        `<line x1="${x0}" y1="${py}" x2="${x1}" y2="${py}" stroke="#666" stroke-dasharray="2 3"/>`,
        `<text x="${x1 - 4}" y="${Number(py) - 4}" text-anchor="end" fill="#666">${escapeXml(h.label)}</text>`,
      );
    }
    for (const v of panel.vLines ?? []) {
      if (!(v.x >= xlo && v.x <= xhi) || (panel.xLog && v.x <= 0)) continue;
      const px = fx(v.x).toFixed(1);
      parts.push(
        `<line x1="${px}" y1="${y1}" x2="${px}" y2="${y0}" stroke="#444" stroke-dasharray="5 3"/>`,
        `<text x="${Number(px) + 4}" y="${y1 + 12}" fill="#444" font-size="11">${escapeXml(v.label)}</text>`,
      );
    }
    for (const s of panel.series) {
      let d = '';
      let pen = false;
      const dots: string[] = [];
      for (const p of s.points) {
        if (!Number.isFinite(p.y) || !Number.isFinite(p.x) || (panel.xLog && p.x <= 0)) {
          pen = false;
          continue;
        }
        const px = fx(p.x).toFixed(1);
        const py = fy(p.y).toFixed(1);
        d += `${pen ? 'L' : 'M'}${px} ${py} `;
        pen = true;
        dots.push(`<circle cx="${px}" cy="${py}" r="3" fill="${s.color}"/>`);
      }
      if (d) {
        parts.push(
          `<path d="${d.trim()}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}><title>${escapeXml(s.name)}</title></path>`,
        );
      }
      parts.push(...dots);
    }
    parts.push(`</g>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
