import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { parseYaml, type YamlValue } from './yaml.ts';

/** deploy/ of this checkout. */
export const DEPLOY_DIR = fileURLToPath(new URL('../../deploy/', import.meta.url));
export const RECORDING_RULES = join(DEPLOY_DIR, 'prometheus/rules/recording.yml');
export const ALERT_RULES = join(DEPLOY_DIR, 'prometheus/rules/alerts.yml');
export const DASHBOARD = join(DEPLOY_DIR, 'grafana/dashboards/sluice.json');

/** Why the Prometheus tests cannot run here (the binaries are missing), or undefined when they can. */
export function prometheusMissing(): string | undefined {
  for (const bin of ['prometheus', 'promtool']) {
    const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
    if (r.error || r.status !== 0) return `${bin} is not installed (.ci/run installs Debian's prometheus package)`;
  }
  return undefined;
}

/** Runs promtool; resolves with its exit status and output. */
export function promtool(args: readonly string[], input?: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', args, { encoding: 'utf8', input, cwd: DEPLOY_DIR, timeout: 60_000 });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

/** Every recording rule of deploy/prometheus/rules/recording.yml: its name and expression. */
export function recordingRules(): { record: string; expr: string }[] {
  const doc = parseYaml(readFileSync(RECORDING_RULES, 'utf8')) as { groups: { rules: { record: string; expr: string }[] }[] };
  return doc.groups.flatMap((g) => g.rules.map((r) => ({ record: r.record, expr: String(r.expr).trim() })));
}

/** One PromQL expression of the dashboard with the panel it belongs to. */
export interface PanelQuery {
  readonly panel: string;
  readonly expr: string;
}

interface GrafanaPanel {
  readonly title?: string;
  readonly type?: string;
  readonly targets?: { readonly expr?: string }[];
  readonly panels?: GrafanaPanel[];
}

/** Every target expression of every panel of the dashboard (rows' nested panels included), raw. */
export function dashboardQueries(dashboard: { panels?: GrafanaPanel[] } = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels?: GrafanaPanel[] }): PanelQuery[] {
  const out: PanelQuery[] = [];
  const visit = (panels: readonly GrafanaPanel[]): void => {
    for (const p of panels) {
      for (const t of p.targets ?? []) if (t.expr !== undefined) out.push({ panel: p.title ?? '(untitled)', expr: t.expr });
      visit(p.panels ?? []);
    }
  };
  visit(dashboard.panels ?? []);
  return out;
}

/**
 * Substitutes Grafana's template variables the way Grafana would for "All models" over a short range:
 * the model variable's allValue, and windows that hold several 1 s scrapes. Throws on any variable left.
 */
export function substituteVariables(expr: string): string {
  const out = expr
    .replaceAll(/\$\{model(?::[a-z]+)?\}|\$model\b/g, '.*')
    .replaceAll('$__rate_interval', '15s')
    .replaceAll('$__interval', '5s')
    .replaceAll('$__range', '1m');
  if (out.includes('$')) throw new Error(`unsubstituted template variable in ${expr}`);
  return out;
}

/** Any free loopback port (closed again at once: Prometheus binds it next). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** A Prometheus server started for one test. */
export interface TestPrometheus {
  readonly url: string;
  /** Instant query through the HTTP API; throws on a PromQL error, with the expression. */
  query(expr: string, timeSeconds?: number): Promise<PromResult>;
}

/** An instant vector (or scalar) answer of /api/v1/query. */
export interface PromResult {
  readonly resultType: string;
  readonly result: { metric: Record<string, string>; value: [number, string] }[];
}

/**
 * Starts the Debian prometheus binary on a free loopback port with a temp config that scrapes
 * `metricsPort` every second and evaluates `ruleFiles` every second; stops it in t.after.
 */
/** A scrape target: a metrics port, and target labels Prometheus attaches (as Kubernetes discovery would). */
export interface ScrapeTarget {
  readonly port: number;
  readonly labels?: Readonly<Record<string, string>>;
}

export async function startPrometheus(t: TestContext, metrics: number | readonly ScrapeTarget[], ruleFiles: readonly string[]): Promise<TestPrometheus> {
  const targets = typeof metrics === 'number' ? [{ port: metrics }] : metrics;
  const dir = mkdtempSync(join(tmpdir(), 'sluice-prom-'));
  const config = [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 1s',
    '  evaluation_interval: 1s',
    'rule_files:',
    ...ruleFiles.map((f) => `  - ${JSON.stringify(f)}`),
    'scrape_configs:',
    '  - job_name: sluice',
    '    static_configs:',
    ...targets.flatMap((x) => [`      - targets: ['127.0.0.1:${x.port}']`, ...(x.labels ? [`        labels: ${JSON.stringify(x.labels)}`] : [])]),
    '',
  ].join('\n');
  writeFileSync(join(dir, 'prometheus.yml'), config);
  let child: ChildProcess | undefined;
  let log = '';
  t.after(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child!.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  });
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    child = spawn('prometheus', [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-8000)));
    child.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-8000)));
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 30_000;
    while (child.exitCode === null && Date.now() < deadline) {
      const ready = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
      if (ready) return { url, query: (expr, time) => query(url, expr, time) };
      await sleep(100);
    }
    if (child.exitCode === null) throw new Error(`prometheus did not become ready in 30 s:\n${log}`);
    // Most likely another process took the port between freePort() and prometheus binding it: retry.
  }
  throw new Error(`prometheus failed to start:\n${log}`);
}

async function query(url: string, expr: string, time?: number): Promise<PromResult> {
  const params = new URLSearchParams({ query: expr });
  if (time !== undefined) params.set('time', String(time));
  const res = await fetch(`${url}/api/v1/query`, { method: 'POST', body: params });
  const body = (await res.json()) as { status: string; error?: string; data: PromResult };
  if (body.status !== 'success') throw new Error(`PromQL error for ${expr}: ${body.error ?? res.status}`);
  return body.data;
}

/** The YAML of a deploy/ file. */
export function readDeployYaml(path: string): YamlValue {
  return parseYaml(readFileSync(join(DEPLOY_DIR, path), 'utf8'));
}
