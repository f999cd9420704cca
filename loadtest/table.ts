import type { SearchResult, StepResult } from './types.ts';

const fmt = (n: number | undefined, digits = 2): string => (n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits));

/** Right-aligned text columns (first column left-aligned). */
export function renderColumns(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function errorsCell(s: StepResult): string {
  if (s.errorCount === 0) return '0';
  const top = Object.entries(s.errors).sort((a, b) => b[1] - a[1]).slice(0, 2).map(([k, v]) => `${k}:${v}`);
  return `${s.errorCount} (${top.join(', ')})`;
}

/** The console table: client-side latency and errors, then the server's own view. */
export function renderTable(steps: readonly StepResult[]): string {
  const header = ['step', 'proto', 'req/s', 'p50', 'p90', 'p95', 'p99', 'p99.9', 'max', 'errors', 'checked', 'late', 'srv queue', 'srv compute', 'batch', 'depth', 'busy', 'srv cpu'];
  const rows = steps.map((s) => [
    s.interrupted === true ? `${s.label}*` : s.label,
    s.protocol,
    fmt(s.qps, 1),
    fmt(s.latencyMs.p50),
    fmt(s.latencyMs.p90),
    fmt(s.latencyMs.p95),
    fmt(s.latencyMs.p99),
    fmt(s.latencyMs.p999),
    fmt(s.latencyMs.max),
    errorsCell(s),
    `${s.checked - s.wrong}/${s.checked}`,
    s.spec.mode === 'open' ? String(s.late) : '-',
    fmt(s.server?.meanQueueMs),
    fmt(s.server?.meanComputeMs),
    fmt(s.server?.meanBatchSize, 1),
    s.server?.queueDepthMax === undefined ? '-' : `${fmt(s.server.queueDepthMean, 1)}/${s.server.queueDepthMax}`,
    fmt(s.server?.busyFraction),
    fmt(s.serverCpu?.usPerRequest, 0),
  ]);
  const stopped = steps.some((s) => s.interrupted === true) ? '\n* stopped by Ctrl-C before its end: measured up to that moment' : '';
  return `${renderColumns(header, rows)}\nlatencies in ms (client side, from the intended send time in open-loop steps); srv = the server's metrics; depth = mean/max queue depth; srv cpu = the server's CPU microseconds per answered request (--server-pid)${stopped}`;
}

export function renderSearch(search: SearchResult): string {
  const lines = search.steps.map((s) => `  ${s.label.padEnd(14)} ${s.pass ? 'pass' : 'FAIL'}  ${s.reason}`);
  const result = search.bestRate === undefined
    ? `no rate met P99 <= ${search.sloP99Ms} ms`
    : `highest rate with P99 <= ${search.sloP99Ms} ms: ${search.bestRate.toFixed(1)} req/s${search.failRate !== undefined ? ` (fails at ${search.failRate.toFixed(1)})` : ' (no failing rate reached)'}${search.converged ? '' : ' — not converged within the step budget'}`;
  return `SLO search:\n${lines.join('\n')}\n${result}`;
}
