import { writeFile } from 'node:fs/promises';
import { escapeXml, lineChart, type Series } from './svg-chart.ts';
import type { RunReport, StepResult } from './types.ts';

/** A log axis once latencies span more than 50x, so that a saturated step does not flatten the rest. */
function logScale(ys: readonly number[]): 'log' | 'linear' {
  const positive = ys.filter((y) => y > 0);
  return positive.length > 0 && Math.max(...positive) / Math.min(...positive) > 50 ? 'log' : 'linear';
}

/** The latency-vs-throughput curve: each step is a point at its achieved rate, one line per percentile. */
export function throughputChart(steps: readonly StepResult[], width?: number): string {
  const series: Series[] = [];
  for (const mode of ['closed', 'open'] as const) {
    const own = steps.filter((s) => s.spec.mode === mode && s.ok > 0).sort((a, b) => a.qps - b.qps);
    if (own.length === 0) continue;
    const tag = mode === 'open' ? 'open loop' : 'closed loop';
    // One colour per percentile; closed loop dashed, so both loops of one percentile read as a pair.
    ([['p50', 'P50'], ['p99', 'P99'], ['p999', 'P99.9']] as const).forEach(([key, name], color) => {
      series.push({ name: `${name} ${tag}`, points: own.map((s) => [s.qps, s.latencyMs[key]] as const), dashed: mode === 'closed', color });
    });
  }
  return lineChart({ title: 'Latency vs throughput', xLabel: 'achieved requests/s', yLabel: 'latency (ms)', series, xScale: 'linear', yScale: logScale(series.flatMap((s) => s.points.map(([, y]) => y))), ...(width ? { width } : {}) });
}

/** Latency by percentile, one line per step (at most 12, spread over the run). */
export function percentileChart(steps: readonly StepResult[], width?: number): string {
  const withData = steps.filter((s) => s.percentiles.length > 0);
  const pick = withData.length <= 12 ? withData : Array.from({ length: 12 }, (_, i) => withData[Math.round((i * (withData.length - 1)) / 11)]!);
  const series = pick.map((s) => ({ name: `${s.label} ${s.protocol}`, points: s.percentiles }));
  return lineChart({ title: 'Latency by percentile', xLabel: 'percentile', yLabel: 'latency (ms)', series, xScale: 'percentile', yScale: logScale(pick.flatMap((s) => s.percentiles.map(([, y]) => y))), ...(width ? { width } : {}) });
}

function summaryLine(r: RunReport): string {
  const t = r.target;
  return `${t.model} over ${t.protocol} at ${t.protocol === 'grpc' ? t.grpcUrl ?? '' : t.url ?? ''}, ${r.startedAt}`;
}

/** A standalone SVG document: a caption and both charts stacked. */
export function renderSvgReport(r: RunReport): string {
  const w = 760;
  const h = 380;
  const caption = r.search?.bestRate !== undefined ? ` — highest rate with P99 <= ${r.search.sloP99Ms} ms: ${r.search.bestRate.toFixed(1)} req/s` : '';
  const nest = (svg: string, y: number): string => svg.replace('<svg xmlns="http://www.w3.org/2000/svg"', `<svg x="0" y="${y}"`);
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${2 * h + 40}" viewBox="0 0 ${w} ${2 * h + 40}" font-family="sans-serif">`,
    `<rect x="0" y="0" width="${w}" height="${2 * h + 40}" fill="#ffffff"/>`,
    `<text x="12" y="24" font-size="13">${escapeXml(`sluice loadtest: ${summaryLine(r)}${caption}`)}</text>`,
    nest(throughputChart(r.steps, w), 40),
    nest(percentileChart(r.steps, w), 40 + h),
    '</svg>',
    '',
  ].join('\n');
}

const cell = (v: number | undefined, d = 2): string => (v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(d));

/** A self-contained HTML page: summary, step table, both charts inline, the search when one ran. */
export function renderHtmlReport(r: RunReport): string {
  const head = ['step', 'protocol', 'req/s', 'P50', 'P90', 'P95', 'P99', 'P99.9', 'max', 'errors', 'checked', 'server queue ms', 'server compute ms', 'mean batch', 'queue depth max', 'busy', 'server CPU us/request'];
  const rows = r.steps.map((s) => [
    s.label, s.protocol, cell(s.qps, 1), cell(s.latencyMs.p50), cell(s.latencyMs.p90), cell(s.latencyMs.p95), cell(s.latencyMs.p99), cell(s.latencyMs.p999), cell(s.latencyMs.max),
    s.errorCount === 0 ? '0' : `${s.errorCount}: ${Object.entries(s.errors).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    `${s.checked - s.wrong}/${s.checked}`,
    cell(s.server?.meanQueueMs), cell(s.server?.meanComputeMs), cell(s.server?.meanBatchSize, 1), cell(s.server?.queueDepthMax, 0), cell(s.server?.busyFraction), cell(s.serverCpu?.usPerRequest, 0),
  ]);
  const table = `<table>\n<thead><tr>${head.map((h) => `<th>${escapeXml(h)}</th>`).join('')}</tr></thead>\n<tbody>\n${rows.map((row) => `<tr>${row.map((c) => `<td>${escapeXml(c)}</td>`).join('')}</tr>`).join('\n')}\n</tbody>\n</table>`;
  const search = r.search
    ? `<h2>SLO search (P99 &lt;= ${escapeXml(String(r.search.sloP99Ms))} ms)</h2>\n<p>${r.search.bestRate === undefined ? 'No rate met the SLO.' : `Highest passing rate: <strong>${r.search.bestRate.toFixed(1)} req/s</strong>${r.search.failRate !== undefined ? `, fails at ${r.search.failRate.toFixed(1)} req/s` : ''}${r.search.converged ? '' : ' (not converged within the step budget)'}.`}</p>\n<ul>\n${r.search.steps.map((s) => `<li>${escapeXml(`${s.label}: ${s.pass ? 'pass' : 'fail'} — ${s.reason}`)}</li>`).join('\n')}\n</ul>`
    : '';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeXml(`sluice loadtest: ${r.target.model}`)}</title>
<style>
body { font-family: sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 16px 0; }
</style>
</head>
<body>
<h1>sluice loadtest</h1>
<p>${escapeXml(summaryLine(r))}. Latencies in milliseconds on the client, counted from each request's intended send time in open-loop steps (coordinated omission corrected); server columns from its Prometheus metrics.</p>
${table}
${search}
<figure>
${throughputChart(r.steps)}
</figure>
<figure>
${percentileChart(r.steps)}
</figure>
</body>
</html>
`;
}

/** Writes the report as HTML or SVG by the file's extension. */
export async function writeReport(file: string, r: RunReport): Promise<void> {
  const lower = file.toLowerCase();
  if (lower.endsWith('.svg')) await writeFile(file, renderSvgReport(r));
  else if (lower.endsWith('.html') || lower.endsWith('.htm')) await writeFile(file, renderHtmlReport(r));
  else throw new Error(`--report ${file}: the file name must end in .html or .svg`);
}
