import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { status as grpcStatus } from '@grpc/grpc-js';
import { errorCatalog, SluiceError } from '../../src/core/errors.ts';
import { grpcStatusOf } from '../../src/frontdoor/grpc/status.ts';
import { httpStatusOfError } from '../../src/frontdoor/http/status.ts';
import { Metrics, statusOfKind } from '../../src/telemetry/metrics.ts';
import { familiesOf, markdownRows, type Family } from './exposition.ts';

const metricsDoc = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');
const errorsDoc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

/** name -> documented type, from every metrics table of docs/metrics.md. */
function documentedMetrics(): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, type] of markdownRows(metricsDoc, 'metric')) {
    const m = /^`(sluice_[a-z0-9_]+)`$/.exec(name ?? '');
    assert.ok(m, `docs/metrics.md: metric cell ${name} is not a backticked sluice_ name`);
    assert.ok(!out.has(m[1]!), `docs/metrics.md documents ${m[1]} twice`);
    out.set(m[1]!, type ?? '');
  }
  return out;
}

function assertDocumented(families: Map<string, Family>, where: string): void {
  const documented = documentedMetrics();
  const exported = [...families.values()].filter((f) => f.name.startsWith('sluice_'));
  const undocumented = exported.filter((f) => !documented.has(f.name)).map((f) => f.name);
  assert.deepEqual(undocumented, [], `${where} exports families docs/metrics.md does not document`);
  const stale = [...documented.keys()].filter((n) => !families.has(n));
  assert.deepEqual(stale, [], `docs/metrics.md documents families ${where} does not export`);
  for (const f of exported) assert.equal(documented.get(f.name), f.type, `docs/metrics.md: type of ${f.name}`);
}

void test('docs/metrics.md documents every metric family of the Registry, with its type, and nothing else', async () => {
  const metrics = new Metrics();
  const families = familiesOf(await metrics.registry.metrics());
  assert.ok(families.size > 40, 'the registry exposes sluice metrics and the process metrics');
  assertDocumented(families, 'new Metrics()');
});

void test('docs/metrics.md lists the status label values the code can produce', () => {
  const row = markdownRows(metricsDoc, 'label').find((r) => r[0] === '`status`');
  assert.ok(row, 'status label row');
  const kinds = new Set(errorCatalog().values());
  const statuses = new Set(['success']);
  for (const [code, kind] of errorCatalog()) statuses.add(statusOfKind(kind, code));
  for (const kind of kinds) statuses.add(statusOfKind(kind));
  for (const s of statuses) assert.match(row[1]!, new RegExp(`\`${s}\``), `status value ${s}`);
});

void test('the live /metrics of a running sluice exports exactly the documented families', async (t) => {
  // Imported here so that the documentation checks above run even while the pipeline cannot start.
  const { startTestSluice } = await import('../helpers/sluice.ts');
  const sluice = await startTestSluice(t);
  const res = await fetch(`http://127.0.0.1:${sluice.ports.metrics}/metrics`);
  assert.equal(res.status, 200);
  assertDocumented(familiesOf(await res.text()), 'the live /metrics');
});

void test('docs/errors.md documents every code of the error catalog with its kind, HTTP status, gRPC code and metric label', () => {
  const rows = markdownRows(errorsDoc, 'code');
  const documented = new Map<string, string[]>();
  for (const row of rows) {
    const m = /^`(SLUICE_[A-Z0-9_]+)`$/.exec(row[0] ?? '');
    assert.ok(m, `docs/errors.md: code cell ${row[0]} is not a backticked code`);
    documented.set(m[1]!, row);
  }
  const catalog = errorCatalog();
  assert.ok(catalog.size >= 30);
  for (const [code, kind] of catalog) {
    const row = documented.get(code);
    assert.ok(row, `docs/errors.md does not document ${code}`);
    const [, docKind, http, grpc, metric, when] = row;
    assert.equal(docKind, kind, `${code}: kind`);
    assert.equal(Number(http), httpStatusOfError(new SluiceError(code, kind, '')), `${code}: HTTP status`);
    assert.equal(grpc, grpcStatus[grpcStatusOf(kind)], `${code}: gRPC code`);
    assert.equal(metric, statusOfKind(kind, code), `${code}: metric status label`);
    assert.ok((when ?? '').length > 10, `${code}: says when it happens`);
  }
  const stale = [...documented.keys()].filter((c) => !catalog.has(c));
  assert.deepEqual(stale, [], 'docs/errors.md documents codes the catalog does not have');
});

void test('docs/errors.md maps every kind to the status the front doors use', () => {
  const rows = markdownRows(errorsDoc, 'kind');
  const kinds = new Set(errorCatalog().values());
  for (const row of rows) {
    const [kind, http, grpc] = row;
    assert.equal(Number(http), httpStatusOfError(new SluiceError('SLUICE_X', kind as SluiceError['kind'], '')), `kind ${kind}: HTTP status`);
    assert.equal(grpc, grpcStatus[grpcStatusOf(kind as SluiceError['kind'])], `kind ${kind}: gRPC code`);
    kinds.delete(kind as SluiceError['kind']);
  }
  assert.deepEqual([...kinds], [], 'every kind in use has a row');
  // Each code's gRPC column agrees with its kind's row.
  const grpcOfKind = new Map(rows.map((r) => [r[0], r[2]]));
  for (const row of markdownRows(errorsDoc, 'code')) assert.equal(row[3], grpcOfKind.get(row[1]), `${row[0]}: gRPC code`);
});
