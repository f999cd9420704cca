import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { DEFAULTS } from '../../src/config/options.ts';
import { markdownRows } from './exposition.ts';
import { DASHBOARD, DEPLOY_DIR, dashboardQueries, prometheusMissing, promtool, readDeployYaml, recordingRules, substituteVariables } from './prometheus.ts';

type Obj = Record<string, unknown>;
const missing = prometheusMissing();
const skipPromtool = missing === undefined ? false : missing;

void test('promtool check config passes on deploy/prometheus/prometheus.yml', { skip: skipPromtool }, () => {
  const r = promtool(['check', 'config', 'prometheus/prometheus.yml']);
  assert.equal(r.status, 0, r.output);
  assert.match(r.output, /SUCCESS: 2 rule files found/);
});

void test('promtool check rules passes on the recording and alert rules', { skip: skipPromtool }, () => {
  const r = promtool(['check', 'rules', 'prometheus/rules/recording.yml', 'prometheus/rules/alerts.yml']);
  assert.equal(r.status, 0, r.output);
  assert.match(r.output, /SUCCESS: \d+ rules found/);
});

void test('promtool test rules passes deploy/prometheus/tests.yml', { skip: skipPromtool }, () => {
  const r = promtool(['test', 'rules', 'prometheus/tests.yml']);
  assert.equal(r.status, 0, r.output);
  assert.match(r.output, /SUCCESS/);
});

void test('the unit tests exercise every alert, firing', () => {
  const alerts = (readDeployYaml('prometheus/rules/alerts.yml') as { groups: { rules: { alert: string }[] }[] }).groups.flatMap((g) => g.rules.map((r) => r.alert));
  assert.deepEqual(alerts.sort(), ['SluiceErrorRateHigh', 'SluiceLatencyP99AboveSLO', 'SluiceQueueNearlyFull', 'SluiceRequestMemoryNearlyFull', 'SluiceShedding', 'SluiceTargetDown', 'SluiceWorkerDown']);
  const tests = (readDeployYaml('prometheus/tests.yml') as { tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[] }).tests;
  const fired = new Set(tests.flatMap((t) => t.alert_rule_test ?? []).filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname));
  for (const a of alerts) assert.ok(fired.has(a), `tests.yml has no case where ${a} fires`);
});

/** Metric names a PromQL expression reads (sluice_* and the recording rules' level:metric:op names). */
function metricsRead(expr: string): string[] {
  return [...expr.matchAll(/\b([a-z_]+:[a-z0-9_]+:[a-z0-9_]+|sluice_[a-z0-9_]+)\b/g)].map((m) => m[1]!);
}

void test('every metric the rules and the dashboard read is documented in docs/metrics.md or recorded by a rule', () => {
  const documented = new Set(markdownRows(readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8'), 'metric').map((r) => r[0]!.replaceAll('`', '')));
  const recorded = new Set(recordingRules().map((r) => r.record));
  const alerts = (readDeployYaml('prometheus/rules/alerts.yml') as { groups: { rules: { expr: string }[] }[] }).groups.flatMap((g) => g.rules.map((r) => r.expr));
  const exprs = [...recordingRules().map((r) => r.expr), ...alerts, ...dashboardQueries().map((q) => q.expr)];
  assert.ok(exprs.length > 40);
  for (const expr of exprs) {
    for (const name of metricsRead(expr)) {
      const family = name.replace(/_(bucket|sum|count)$/, '');
      assert.ok(documented.has(name) || documented.has(family) || recorded.has(name), `${name} (in ${expr}) is neither documented nor recorded`);
    }
  }
});

void test('the dashboard has every panel the issue asks for, each with a described query on the provisioned data source', () => {
  const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { uid: string; panels: Obj[]; templating: { list: Obj[] } };
  assert.equal(dash.uid, 'sluice-overview');
  const vars = dash.templating.list.map((v) => v['name']);
  assert.deepEqual(vars, ['datasource', 'model']);
  const panels = dash.panels.filter((p) => p['type'] !== 'row');
  for (const p of panels) {
    assert.deepEqual(p['datasource'], { type: 'prometheus', uid: '${datasource}' }, `panel ${String(p['title'])}`);
    assert.ok(String(p['description']).length > 10, `panel ${String(p['title'])} has a description`);
    assert.ok(Array.isArray(p['targets']) && p['targets'].length > 0, `panel ${String(p['title'])} has queries`);
  }
  const ids = dash.panels.map((p) => p['id']);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  const queries = dashboardQueries();
  const has = (re: RegExp): boolean => queries.some((q) => re.test(q.expr));
  assert.ok(has(/rate\(sluice_requests_total\{/), 'QPS per model');
  for (const q of ['0.5', '0.95', '0.99']) assert.ok(has(new RegExp(`histogram_quantile\\(${q}, sum by \\(model, le\\) \\(rate\\(sluice_request_duration_seconds_bucket`)), `P${Number(q) * 100} over time`);
  assert.ok(panels.some((p) => p['type'] === 'heatmap' && JSON.stringify(p['targets']).includes('sluice_request_duration_seconds_bucket')), 'latency heatmap');
  assert.ok(has(/sluice_queue_depth/) && has(/sluice_queue_duration_seconds_bucket/), 'queue depth and queue time');
  assert.ok(has(/sluice_batch_size_rows_bucket/), 'batch size distribution');
  assert.ok(has(/sluice_worker_inflight_batches/) && has(/sluice_worker_up/), 'worker in-flight and health');
  assert.ok(has(/sluice_model_cache_lookups_total/) && has(/sluice_model_loads_total/), 'cache hits and loads');
  assert.ok(has(/sum by \(status\) \(rate\(sluice_requests_total\{[^}]*status!="success"/), 'error rate by reason');
  assert.ok(has(/sluice_gpu_memory_used_bytes/), 'GPU memory');
  for (const q of queries) assert.doesNotThrow(() => substituteVariables(q.expr), q.expr);
});

void test('docker-compose.yml wires sluice, Prometheus and Grafana to files that exist, on matching ports', () => {
  const compose = readDeployYaml('docker-compose.yml') as { services: Record<string, Obj> };
  assert.deepEqual(Object.keys(compose.services).sort(), ['grafana', 'prometheus', 'sluice']);
  const sluice = compose.services['sluice']!;
  const build = sluice['build'] as Obj;
  const context = join(DEPLOY_DIR, String(build['context']));
  assert.ok(existsSync(join(context, String(build['dockerfile']))), 'the Dockerfile is where build points');
  assert.ok(existsSync(join(context, 'package.json')), 'the build context is the repository root');
  assert.deepEqual(sluice['ports'], ['8000:8000', '8001:8001', '8002:8002']);
  // The serve flags are real sluice flags: the config loader accepts them.
  const command = sluice['command'] as string[];
  assert.equal(command[0], 'serve');
  const config = loadConfig({ argv: command.slice(1), env: {} });
  assert.equal(config.host, '0.0.0.0');
  assert.equal(config.metrics.port, DEFAULTS.metrics.port);

  const mounts = new Map<string, string>();
  for (const name of ['prometheus', 'grafana']) {
    for (const v of compose.services[name]!['volumes'] as string[]) {
      const [source, target] = v.split(':') as [string, string];
      if (!source.startsWith('./')) continue;
      assert.ok(existsSync(join(DEPLOY_DIR, source)), `${name} mounts ${source}, which exists`);
      mounts.set(target, source);
    }
  }
  // Prometheus reads its config from the mount and resolves rule files beside it.
  const promCommand = compose.services['prometheus']!['command'] as string[];
  const configFile = promCommand.find((c) => c.startsWith('--config.file='))!.split('=')[1]!;
  assert.equal(mounts.get(configFile), './prometheus/prometheus.yml');
  const prom = readDeployYaml('prometheus/prometheus.yml') as { rule_files: string[]; scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[] };
  for (const f of prom.rule_files) {
    const inContainer = posix.join(posix.dirname(configFile), f);
    const source = [...mounts].find(([target]) => inContainer.startsWith(`${target}/`));
    assert.ok(source, `rule file ${f} is mounted into the container`);
    assert.ok(existsSync(join(DEPLOY_DIR, source[1], inContainer.slice(source[0].length))), `rule file ${f} exists`);
  }
  const job = prom.scrape_configs.find((s) => s.job_name === 'sluice')!;
  assert.deepEqual(job.static_configs[0]!.targets, [`sluice:${DEFAULTS.metrics.port}`]);

  const datasource = (readDeployYaml('grafana/provisioning/datasources/prometheus.yml') as { datasources: Obj[] }).datasources[0]!;
  assert.equal(datasource['url'], 'http://prometheus:9090');
  assert.ok((compose.services['prometheus']!['ports'] as string[]).includes('9090:9090'));
  assert.equal(mounts.get('/etc/grafana/provisioning'), './grafana/provisioning');
  const provider = (readDeployYaml('grafana/provisioning/dashboards/sluice.yml') as { providers: { options: { path: string } }[] }).providers[0]!;
  assert.equal(mounts.get(provider.options.path), './grafana/dashboards', 'the provider reads the mounted dashboards');
  const home = (compose.services['grafana']!['environment'] as Obj)['GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH'] as string;
  assert.ok(existsSync(join(DEPLOY_DIR, 'grafana/dashboards', posix.relative(provider.options.path, home))), 'the home dashboard exists');
});

void test('the Dockerfile copies what exists, exposes the three ports and runs sluice serve', () => {
  const dockerfile = readFileSync(join(DEPLOY_DIR, 'Dockerfile'), 'utf8');
  const root = join(DEPLOY_DIR, '..');
  for (const m of dockerfile.matchAll(/^COPY (.+) \S+$/gm)) {
    for (const source of m[1]!.split(/\s+/)) assert.ok(existsSync(join(root, source)), `COPY ${source}`);
  }
  assert.match(dockerfile, /^FROM node:24-/m, 'production images run Node 24 LTS');
  assert.match(dockerfile, /^RUN npm ci/m);
  assert.match(dockerfile, /models\/generate\.ts/);
  assert.match(dockerfile, /^EXPOSE 8000 8001 8002$/m);
  assert.match(dockerfile, /^ENTRYPOINT \["node", "bin\/sluice\.mjs"\]$/m);
  assert.match(dockerfile, /^CMD \["serve"/m);
});
