/** One line of a chart. */
export interface Series {
  readonly name: string;
  readonly points: readonly (readonly [number, number])[];
  readonly dashed?: boolean;
  /** Index into the palette (default: the series' position). */
  readonly color?: number;
}

/** A line chart; x 'percentile' spaces 90, 99, 99.9 ... evenly, as latency percentile plots do. */
export interface ChartSpec {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  readonly xScale: 'linear' | 'percentile';
  readonly yScale: 'linear' | 'log';
  readonly width?: number;
  readonly height?: number;
}

export const PALETTE: readonly string[] = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22', '#393b79', '#637939'];

export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** 0 -> 0, 90 -> 1, 99 -> 2, 99.9 -> 3 ...; 100 sits just past 99.999. */
export function percentileX(p: number): number {
  if (p >= 100) return 5.3;
  return Math.min(5.3, -Math.log10(1 - p / 100));
}

function niceStep(range: number, target: number): number {
  const raw = range / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const m = raw / mag;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * mag;
}

function linearTicks(lo: number, hi: number): number[] {
  if (!(hi > lo)) return [lo];
  const step = niceStep(hi - lo, 5);
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function label(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (a >= 1e4) return `${Number((v / 1e3).toPrecision(3))}k`;
  return String(Number(v.toPrecision(3)));
}

const r2 = (n: number): string => n.toFixed(2);

/** Renders a self-contained <svg> element (no scripts, fonts or external references). */
export function lineChart(c: ChartSpec): string {
  const width = c.width ?? 760;
  const height = c.height ?? 380;
  const m = { left: 64, right: 160, top: 36, bottom: 48 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const tx = c.xScale === 'percentile' ? percentileX : (x: number): number => x;
  const all = c.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const xs = all.map(([x]) => tx(x));
  const ys = all.map(([, y]) => y);
  const xlo = c.xScale === 'percentile' ? 0 : Math.min(0, ...xs);
  const xhi = c.xScale === 'percentile' ? 5.3 : Math.max(1, ...xs) * 1.05;
  const logY = c.yScale === 'log' && ys.some((y) => y > 0);
  const positive = ys.filter((y) => y > 0);
  const ylo = logY ? 10 ** Math.floor(Math.log10(Math.min(...positive))) : 0;
  const yhi = logY ? 10 ** Math.ceil(Math.log10(Math.max(...positive) * 1.01)) : Math.max(1e-3, ...ys) * 1.1;
  const px = (x: number): number => m.left + ((tx(x) - xlo) / Math.max(1e-12, xhi - xlo)) * pw;
  const pyRaw = (y: number): number => (logY ? (Math.log10(Math.max(y, ylo)) - Math.log10(ylo)) / Math.max(1e-12, Math.log10(yhi) - Math.log10(ylo)) : (y - ylo) / Math.max(1e-12, yhi - ylo));
  const py = (y: number): number => m.top + ph - pyRaw(y) * ph;

  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`);
  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  parts.push(`<text x="${m.left}" y="20" font-size="14" font-weight="bold">${escapeXml(c.title)}</text>`);
  // Grid and ticks.
  const yTicks = logY ? Array.from({ length: Math.round(Math.log10(yhi / ylo)) + 1 }, (_, i) => ylo * 10 ** i) : linearTicks(ylo, yhi);
  for (const t of yTicks) {
    const y = py(t);
    parts.push(`<line x1="${m.left}" y1="${r2(y)}" x2="${m.left + pw}" y2="${r2(y)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${m.left - 6}" y="${r2(y + 4)}" text-anchor="end">${escapeXml(label(t))}</text>`);
  }
  const xTicks: [number, string][] = c.xScale === 'percentile'
    ? [[0, '0%'], [90, '90%'], [99, '99%'], [99.9, '99.9%'], [99.99, '99.99%'], [99.999, '99.999%']]
    : linearTicks(xlo, xhi).map((t) => [t, label(t)]);
  for (const [t, text] of xTicks) {
    const x = px(t);
    parts.push(`<line x1="${r2(x)}" y1="${m.top}" x2="${r2(x)}" y2="${m.top + ph}" stroke="#eeeeee"/>`);
    parts.push(`<text x="${r2(x)}" y="${m.top + ph + 16}" text-anchor="middle">${escapeXml(text)}</text>`);
  }
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#999999"/>`);
  parts.push(`<text x="${m.left + pw / 2}" y="${height - 8}" text-anchor="middle">${escapeXml(c.xLabel)}</text>`);
  parts.push(`<text transform="translate(14 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${escapeXml(c.yLabel)}</text>`);
  // Series and legend.
  c.series.forEach((s, i) => {
    const color = PALETTE[(s.color ?? i) % PALETTE.length]!;
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    const dash = s.dashed ? ' stroke-dasharray="5 3"' : '';
    if (pts.length > 1) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.8"${dash} points="${pts.map(([x, y]) => `${r2(px(x))},${r2(py(y))}`).join(' ')}"/>`);
    for (const [x, y] of pts) parts.push(`<circle cx="${r2(px(x))}" cy="${r2(py(y))}" r="2.6" fill="${color}"><title>${escapeXml(`${s.name}: ${label(x)}, ${y.toFixed(3)}`)}</title></circle>`);
    const ly = m.top + 8 + i * 16;
    parts.push(`<line x1="${m.left + pw + 12}" y1="${ly}" x2="${m.left + pw + 32}" y2="${ly}" stroke="${color}" stroke-width="2"${dash}/>`);
    parts.push(`<text x="${m.left + pw + 38}" y="${ly + 4}">${escapeXml(s.name)}</text>`);
  });
  if (all.length === 0) parts.push(`<text x="${m.left + pw / 2}" y="${m.top + ph / 2}" text-anchor="middle" fill="#999999">no data</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}
