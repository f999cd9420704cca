// Reading deploy/kubernetes without a cluster: every YAML document, the pod specs in them, the flags
// the sluice CLI really has (from its own --help), and `kubectl kustomize` when kubectl is installed.
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

// Manifests are untyped YAML read field by field, and a wrong guess fails the assertion that reads
// it: typing every Kubernetes kind here would add noise, not safety.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Obj = Record<string, any>;

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const K8S_DIR = join(ROOT, 'deploy', 'kubernetes');

/** One YAML document of a file under deploy/kubernetes. */
export interface Doc {
  readonly file: string; // relative to deploy/kubernetes
  readonly value: unknown;
  readonly patch: boolean;
}

export function yamlFiles(dir = K8S_DIR): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...yamlFiles(path));
    else if (/\.ya?ml$/.test(entry.name)) out.push(path);
  }
  return out.sort();
}

/** Parses every document of a YAML stream; a syntax error or warning throws, naming the source. */
export function parseStream(text: string, source: string): unknown[] {
  return parseAllDocuments(text).map((d, i) => {
    const problems = [...d.errors, ...d.warnings];
    if (problems.length > 0) throw new Error(`${source} document ${i}: ${problems.map((p) => p.message).join('; ')}`);
    return d.toJS() as unknown;
  });
}

/** A JSON 6902 patch file of a kustomization, with the object it targets. */
export interface JsonPatch { readonly file: string; readonly target: Obj; readonly ops: Obj[] }

/** Every kustomization's patch files: strategic-merge fragments and JSON 6902 operation lists. */
export function patchFiles(): { strategic: string[]; json6902: JsonPatch[] } {
  const strategic: string[] = [];
  const json6902: JsonPatch[] = [];
  for (const path of yamlFiles().filter((p) => /kustomization\.ya?ml$/.test(p))) {
    const k = parseStream(readFileSync(path, 'utf8'), path)[0] as Obj;
    const file = (f: string): string => relative(K8S_DIR, join(dirname(path), f));
    for (const f of k['patchesStrategicMerge'] ?? []) strategic.push(file(String(f)));
    for (const p of k['patchesJson6902'] ?? []) {
      json6902.push({ file: file(p.path), target: p.target, ops: parseStream(readFileSync(join(dirname(path), p.path), 'utf8'), p.path)[0] as Obj[] });
    }
  }
  return { strategic, json6902 };
}

/** Every document of every YAML file; `patch` marks the fragments that patches are made of. */
export function loadDocs(): Doc[] {
  const { strategic, json6902 } = patchFiles();
  const patches = new Set([...strategic, ...json6902.map((p) => p.file)]);
  return yamlFiles().flatMap((path) => {
    const file = relative(K8S_DIR, path);
    return parseStream(readFileSync(path, 'utf8'), file).map((value) => ({ file, value, patch: patches.has(file) }));
  });
}

/** The Kubernetes objects (apiVersion + kind + metadata.name) among docs, kustomizations excepted. */
export function objects(docs: readonly { value: unknown }[]): Obj[] {
  return docs.map((d) => d.value).filter((v): v is Obj => isObj(v) && typeof v['kind'] === 'string' && typeof v['apiVersion'] === 'string' && !String(v['apiVersion']).startsWith('kustomize.config.k8s.io'));
}

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Flags (and their allowed values where the help lists them) of `sluice <command> --help`. */
export function cliFlags(command: 'serve' | 'worker'): Map<string, string[] | undefined> {
  const help = execFileSync(process.execPath, [join(ROOT, 'bin', 'sluice.mjs'), command, '--help'], { encoding: 'utf8', timeout: 30_000 });
  const flags = new Map<string, string[] | undefined>();
  for (const line of help.split('\n')) {
    const m = /^\s+(--[a-z0-9-]+)(?:\s+(\S+))?/.exec(line);
    if (!m) continue;
    // serve lists choices as "(a|b|c)" in the text, worker as the flag's argument "a|b".
    const choices = /\(([a-z0-9-]+(?:\|[a-z0-9-]+)+)\)/.exec(line)?.[1] ?? (m[2]?.includes('|') ? m[2] : undefined);
    flags.set(m[1]!, choices?.split('|'));
  }
  if (flags.size < 10) throw new Error(`sluice ${command} --help listed only ${flags.size} flags:\n${help}`);
  return flags;
}

/** `--flag=value` or `--flag value` pairs of an argument list (after the subcommand). */
export function flagValues(args: readonly string[]): [string, string | undefined][] {
  const out: [string, string | undefined][] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) throw new Error(`argument ${a} is not a flag (in ${args.join(' ')})`);
    const eq = a.indexOf('=');
    if (eq > 0) out.push([a.slice(0, eq), a.slice(eq + 1)]);
    else if (args[i + 1] !== undefined && !args[i + 1]!.startsWith('--')) out.push([a, args[++i]]);
    else out.push([a, undefined]);
  }
  return out;
}

export function flag(args: readonly string[], name: string): string | undefined {
  return flagValues(args).find(([f]) => f === name)?.[1];
}

export function flagAll(args: readonly string[], name: string): string[] {
  return flagValues(args).filter(([f]) => f === name).map(([, v]) => v!);
}

/** Every pod spec in an object: a workload's template, or a KServe runtime's spec. */
export function podSpecs(o: Obj): { where: string; spec: Obj }[] {
  const where = `${String(o['kind'])}/${String(o['metadata']?.name)}`;
  if (['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(o['kind'])) {
    const spec = o['spec']?.template?.spec;
    return isObj(spec) && Array.isArray(spec['containers']) ? [{ where, spec }] : [];
  }
  if (o['kind'] === 'ClusterServingRuntime' || o['kind'] === 'ServingRuntime') return [{ where, spec: o['spec'] as Obj }];
  return [];
}

export interface KubectlResult { readonly skip: string | false; readonly render?: (overlay: string) => Obj[] }

/** `kubectl kustomize` when kubectl is on the PATH; otherwise the reason to skip. */
export function kubectl(): KubectlResult {
  const probe = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8', timeout: 20_000 });
  if (probe.error || probe.status !== 0) {
    return { skip: 'kubectl is not on the PATH (Debian: apt-get install kubernetes-client); the overlays were not rendered' };
  }
  return {
    skip: false,
    render: (overlay) => {
      const r = spawnSync('kubectl', ['kustomize', join(K8S_DIR, 'overlays', overlay)], { encoding: 'utf8', timeout: 30_000 });
      if (r.status !== 0) throw new Error(`kubectl kustomize overlays/${overlay} failed: ${r.stderr}`);
      return objects(parseStream(r.stdout, `rendered overlays/${overlay}`).map((value) => ({ value })));
    },
  };
}

/** Metric families documented in docs/metrics.md or defined in src/telemetry/metrics.ts. */
export function knownMetrics(): Set<string> {
  const docs = readFileSync(join(ROOT, 'docs', 'metrics.md'), 'utf8');
  const code = readFileSync(join(ROOT, 'src', 'telemetry', 'metrics.ts'), 'utf8');
  const names = new Set<string>();
  for (const m of docs.matchAll(/^\| `(sluice_[a-z0-9_]+)`/gm)) names.add(m[1]!);
  for (const m of code.matchAll(/name: '(sluice_[a-z0-9_]+)'/g)) names.add(m[1]!);
  return names;
}

/** The sluice_* series a PromQL expression reads, as metric families (histogram suffixes removed). */
export function metricsRead(expr: string): string[] {
  return [...expr.matchAll(/\b(sluice_[a-z0-9_]+)\b/g)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, ''));
}
