import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runLoadtestCli } from '../../loadtest/cli.ts';
import { renderSvgReport } from '../../loadtest/report.ts';
import type { RunReport, StepResult } from '../../loadtest/types.ts';
import { startFakeServer } from './fake-server.ts';
import { xmlProblem } from './xml.ts';

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-loadtest-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function svgBlocks(html: string): string[] {
  return [...html.matchAll(/<svg[\s\S]*?<\/svg>/g)].map((m) => m[0]);
}

test('the XML checker rejects what is not well-formed (so that passing it means something)', () => {
  assert.equal(xmlProblem('<svg xmlns="http://www.w3.org/2000/svg"><g><rect x="1"/></g></svg>'), undefined);
  assert.match(xmlProblem('<svg><g></svg>') ?? '', /does not match/);
  assert.match(xmlProblem('<svg><text>a & b</text></svg>') ?? '', /stray '&'/);
  assert.match(xmlProblem('<svg><rect x=1/></svg>') ?? '', /malformed tag/);
  assert.match(xmlProblem('<svg></svg><svg></svg>') ?? '', /second root/);
  assert.match(xmlProblem('<svg><rect x="1" x="2"/></svg>') ?? '', /duplicate attribute/);
});

test('--report FILE.svg and --json FILE: a well-formed standalone SVG with both plots, and the JSON of every step', async (t) => {
  const server = await startFakeServer(t);
  const dir = await tempDir(t);
  const svg = join(dir, 'report.svg');
  const json = join(dir, 'report.json');
  const code = await runLoadtestCli(['--url', server.url, '--model', 'simple', '--no-metrics', '--quiet', '--concurrency', '1,4', '--rate', '100', '--duration', '400ms', '--warmup', '100ms', '--report', svg, '--json', json]);
  assert.equal(code, 0);
  const doc = JSON.parse(await readFile(json, 'utf8')) as RunReport;
  assert.deepEqual(doc.steps.map((s) => s.label), ['c=1', 'c=4', 'r=100/s']);
  assert.ok(doc.steps.every((s) => s.ok > 0 && s.percentiles.length > 3));
  const text = await readFile(svg, 'utf8');
  assert.equal(xmlProblem(text), undefined);
  assert.match(text, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(text, /Latency vs throughput/);
  assert.match(text, /Latency by percentile/);
  // The curve: P50/P99/P99.9 lines through the two closed-loop steps (the single open-loop step is a
  // point without a line); then one line per step on the percentile plot.
  assert.equal((text.match(/<polyline /g) ?? []).length, 3 + 3);
  assert.equal((text.match(/<title>P99 open loop: /g) ?? []).length, 1);
  assert.equal((text.match(/<title>P99 closed loop: /g) ?? []).length, 2);
  assert.doesNotMatch(text, /<script|href=|@import|url\(/);
});

test('--report FILE.html: a self-contained page with the step table and both charts inline', async (t) => {
  const server = await startFakeServer(t);
  const dir = await tempDir(t);
  const html = join(dir, 'report.html');
  const code = await runLoadtestCli(['--url', server.url, '--model', 'simple', '--no-metrics', '--quiet', '--slo-p99', '500', '--search-steps', '3', '--duration', '300ms', '--warmup', '100ms', '--report', html]);
  assert.equal(code, 0);
  const text = await readFile(html, 'utf8');
  assert.match(text, /^<!DOCTYPE html>\n<html lang="en">/);
  assert.match(text, /<\/html>\n$/);
  const blocks = svgBlocks(text);
  assert.equal(blocks.length, 2);
  for (const b of blocks) assert.equal(xmlProblem(b), undefined);
  // Probe step plus three search steps, one table row each.
  const tbody = /<tbody>([\s\S]*)<\/tbody>/.exec(text)?.[1] ?? '';
  assert.equal((tbody.match(/<tr>/g) ?? []).length, 4);
  assert.match(text, /SLO search \(P99 &lt;= 500 ms\)/);
  assert.doesNotMatch(text, /<script|<link|src=|@import|url\(/);
});

test('report text is escaped: odd model names and error kinds keep the SVG well-formed', () => {
  const step: StepResult = {
    label: 'c=1', spec: { mode: 'closed', concurrency: 1 }, protocol: 'json', seconds: 1, qps: 10, responses: 11, ok: 10,
    errors: { 'http 500 <&>': 1 }, errorCount: 1, sent: 11, aborted: 0, late: 0, maxSendLagMs: 0, checked: 1, wrong: 0,
    latencyMs: { min: 1, mean: 2, p50: 2, p90: 3, p95: 3, p99: 4, p999: 5, max: 5 },
    percentiles: [[0, 1], [50, 2], [90, 3], [99, 4], [100, 5]], server: undefined,
  };
  const report: RunReport = {
    tool: 't', startedAt: 'now', finishedAt: 'now', target: { url: 'http://x/?a=1&b=<2>', grpcUrl: undefined, model: 'm<&>"\'', protocol: 'json' },
    settings: {}, steps: [step], search: { sloP99Ms: 5, bestRate: 10, failRate: 20, converged: false, steps: [{ rate: 10, pass: true, reason: 'p99 <&>', label: 'r=10/s' }] },
  };
  const svg = renderSvgReport(report);
  assert.equal(xmlProblem(svg), undefined);
  assert.match(svg, /m&lt;&amp;&gt;&quot;&apos;/);
});
