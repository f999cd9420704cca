// deploy/kubernetes without a cluster: every YAML document parses, every sluice container uses only
// flags the CLI has, probes, ports, images, security settings, the NetworkPolicy, the autoscalers'
// metrics; then, where kubectl is installed, both overlays render and are checked the same way.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cliFlags, flag, flagAll, flagValues, isObj, K8S_DIR, knownMetrics, kubectl, loadDocs, metricsRead, objects, parseStream, patchFiles, podSpecs, ROOT, type Obj } from './manifests.ts';
import { parseDiscovery } from '../../src/config/worker-discovery.ts';

const docs = loadDocs();
const objs = objects(docs.filter((d) => !d.patch));
const FLAGS = { serve: cliFlags('serve'), worker: cliFlags('worker') };
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const byKind = (list: Obj[], kind: string): Obj[] => list.filter((o) => o['kind'] === kind);
const named = (list: Obj[], kind: string, name: string): Obj => {
  const o = list.find((x) => x['kind'] === kind && x['metadata']?.name === name);
  assert.ok(o, `${kind}/${name} exists`);
  return o;
};
const labelsMatch = (selector: Obj, labels: Obj): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v);

/** The checks every pod spec of sluice must pass, in the source files and rendered alike. */
function checkPodSpec(where: string, spec: Obj, kserve = false): void {
  const containers: Obj[] = [...(spec['initContainers'] ?? []), ...spec['containers']];
  const mounts = (c: Obj): Obj[] => c['volumeMounts'] ?? [];
  const volumes = new Map<string, Obj>((spec['volumes'] ?? []).map((v: Obj) => [v['name'], v]));
  if (!kserve) {
    assert.equal(spec['securityContext']?.runAsNonRoot, true, `${where}: runAsNonRoot`);
    assert.ok(Number(spec['securityContext']?.runAsUser) > 0, `${where}: a numeric non-root runAsUser`);
    assert.equal(spec['securityContext']?.seccompProfile?.type, 'RuntimeDefault', `${where}: seccomp RuntimeDefault`);
    assert.equal(spec['automountServiceAccountToken'], false, `${where}: no service account token`);
  }
  for (const c of containers) {
    const at = `${where} container ${String(c['name'])}`;
    const image = String(c['image']);
    const tag = /^[^@]+:([^:/]+)$/.exec(image)?.[1];
    assert.ok(tag !== undefined && tag !== 'latest', `${at}: image ${image} has a pinned tag`);
    if (image.startsWith('ghcr.io/sluice/sluice:')) assert.ok(tag.startsWith(VERSION), `${at}: tag ${tag} is package.json's version ${VERSION}`);
    const sc = c['securityContext'] ?? {};
    assert.equal(sc.allowPrivilegeEscalation, false, `${at}: allowPrivilegeEscalation false`);
    assert.equal(sc.readOnlyRootFilesystem, true, `${at}: read-only root filesystem`);
    assert.notEqual(sc.privileged, true, `${at}: not privileged`);
    assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${at}: drops every capability`);
    if (kserve) assert.equal(sc.runAsNonRoot, true, `${at}: runAsNonRoot`);
    for (const m of mounts(c)) assert.ok(volumes.has(m['name']), `${at}: mount ${String(m['name'])} has a volume`);
    assert.ok(mounts(c).some((m) => m['mountPath'] === '/tmp') || c['command'], `${at}: a writable /tmp beside the read-only root`);
  }
  for (const c of spec['containers'] as Obj[]) {
    const args: string[] = c['args'] ?? [];
    const command = args[0];
    if (command !== 'serve' && command !== 'worker') continue;
    const at = `${where} (sluice ${command})`;
    const known = FLAGS[command];
    for (const [f, value] of flagValues(args.slice(1))) {
      assert.ok(known.has(f), `${at}: ${f} is not a flag of \`sluice ${command} --help\``);
      const choices = known.get(f);
      if (choices && value !== undefined) assert.ok(choices.includes(value), `${at}: ${f}=${value} is not one of ${choices.join('|')}`);
    }
    const rest = args.slice(1);
    const ports = new Map<string, number>((c['ports'] ?? []).map((p: Obj) => [p['name'] ?? String(p['containerPort']), Number(p['containerPort'])]));
    const portOf = (ref: unknown): number => (typeof ref === 'number' ? ref : ports.get(String(ref)) ?? NaN);
    const underMount = (path: string | undefined, what: string, readOnly: boolean, kind?: string): void => {
      assert.ok(path, `${at}: ${what} is set`);
      const m = mounts(c).find((x) => path.startsWith(`${String(x['mountPath'])}/`) || path === x['mountPath']);
      if (kserve && path.startsWith('/mnt/models')) return; // KServe mounts the storageUri itself
      assert.ok(m, `${at}: ${what} ${path} lies under a volume mount`);
      if (readOnly) assert.equal(m['readOnly'], true, `${at}: ${what} is mounted read-only`);
      if (kind) assert.ok(volumes.get(m['name'])?.[kind], `${at}: ${what} comes from a ${kind} volume`);
      assert.equal(m['subPath'], undefined, `${at}: ${what} without subPath (a subPath mount never sees an update)`);
    };
    underMount(flag(rest, '--model-repository'), '--model-repository', true);
    if (command === 'serve') {
      const http = Number(flag(rest, '--http-port') ?? 8000);
      assert.equal(ports.get(kserve ? '8080' : 'http'), http, `${at}: the http container port is --http-port`);
      if (!kserve) {
        assert.equal(ports.get('grpc'), Number(flag(rest, '--grpc-port') ?? 8001), `${at}: grpc port`);
        assert.equal(ports.get('metrics'), Number(flag(rest, '--metrics-port') ?? 8002), `${at}: metrics port`);
        assert.equal(c['livenessProbe']?.httpGet?.path, '/v2/health/live', `${at}: liveness on /v2/health/live`);
        assert.equal(c['readinessProbe']?.httpGet?.path, '/v2/health/ready', `${at}: readiness on /v2/health/ready`);
        assert.equal(portOf(c['livenessProbe'].httpGet.port), http, `${at}: liveness probes the HTTP port`);
        assert.equal(portOf(c['readinessProbe'].httpGet.port), http, `${at}: readiness probes the HTTP port`);
        underMount(flag(rest, '--auth-config'), '--auth-config', true, 'secret');
        const drainS = Number(flag(rest, '--drain-timeout-ms') ?? 30_000) / 1000;
        const preStop = c['lifecycle']?.preStop?.exec?.command as string[] | undefined;
        assert.ok(preStop && preStop[0] === 'sleep', `${at}: a preStop sleep lets the endpoints drain`);
        const grace = Number(spec['terminationGracePeriodSeconds']);
        assert.ok(grace > Number(preStop[1]) + drainS, `${at}: terminationGracePeriodSeconds ${grace} > preStop ${preStop[1]} s + drain ${drainS} s`);
        const tokenFile = flag(rest, '--worker-token-file');
        if (flagAll(rest, '--worker').length > 0) {
          assert.equal(flag(rest, '--workers'), '0', `${at}: remote workers only`);
          underMount(tokenFile, '--worker-token-file', true, 'secret');
        }
      } else {
        assert.equal(c['readinessProbe']?.httpGet?.path, '/v2/health/ready', `${at}: readiness on /v2/health/ready`);
      }
    } else {
      const listen = flag(rest, '--listen');
      assert.match(listen ?? '', /^0\.0\.0\.0:\d+$/, `${at}: listens beyond loopback`);
      assert.equal(ports.get('worker'), Number(listen!.split(':')[1]), `${at}: the worker container port is --listen's`);
      underMount(flag(rest, '--token-file'), '--token-file (sealed: docs/worker-protocol.md)', true, 'secret');
      for (const p of ['livenessProbe', 'readinessProbe']) assert.equal(portOf(c[p]?.tcpSocket?.port), ports.get('worker'), `${at}: ${p} on the worker port (GET /health needs the token)`);
    }
  }
}

/** Checks of a whole deployment (source files or a rendered overlay). */
function checkDeployment(list: Obj[], what: string, rendered: boolean): void {
  for (const o of list) for (const { where, spec } of podSpecs(o)) checkPodSpec(`${what} ${where}`, spec, o['kind'] === 'ClusterServingRuntime');
  const workloads = [...byKind(list, 'Deployment'), ...byKind(list, 'StatefulSet')];
  const podLabels = (o: Obj): Obj => o['spec'].template.metadata.labels;
  for (const svc of byKind(list, 'Service')) {
    const pods = workloads.filter((w) => labelsMatch(svc['spec'].selector, podLabels(w)));
    assert.equal(pods.length, 1, `${what} Service/${String(svc['metadata'].name)} selects one workload`);
    const ports = new Map<string, number>(pods[0]!['spec'].template.spec.containers.flatMap((c: Obj) => (c['ports'] ?? []).map((p: Obj) => [p['name'], p['containerPort']])));
    for (const p of svc['spec'].ports) assert.ok(ports.has(p['targetPort']), `${what} Service/${String(svc['metadata'].name)} port ${String(p['name'])} targets a container port`);
  }
  const gateway = named(list, 'Service', 'sluice-gateway');
  assert.deepEqual(gateway['spec'].ports.map((p: Obj) => [p['name'], p['port']]), [['http', 8000], ['grpc', 8001], ['metrics', 8002]]);
  for (const pdb of byKind(list, 'PodDisruptionBudget')) assert.ok(workloads.some((w) => labelsMatch(pdb['spec'].selector.matchLabels, podLabels(w))), `${what} PDB/${String(pdb['metadata'].name)} selects a workload`);
  for (const sm of byKind(list, 'ServiceMonitor')) {
    const svc = byKind(list, 'Service').find((s) => labelsMatch(sm['spec'].selector.matchLabels, s['metadata'].labels ?? {}));
    assert.ok(svc, `${what} ServiceMonitor selects a Service`);
    for (const e of sm['spec'].endpoints) assert.ok(svc['spec'].ports.some((p: Obj) => p['name'] === e['port']), `ServiceMonitor port ${String(e['port'])} is a Service port`);
  }
  const workers = byKind(list, 'StatefulSet').find((s) => s['metadata'].name === 'sluice-worker');
  const policies = byKind(list, 'NetworkPolicy');
  if (!workers) return;
  const headless = named(list, 'Service', workers['spec'].serviceName);
  assert.equal(headless['spec'].clusterIP, 'None', `${what}: the worker Service is headless`);
  const gatewayPods = podLabels(named(list, 'Deployment', 'sluice-gateway'));
  const policy = policies.find((p) => labelsMatch(p['spec'].podSelector.matchLabels, podLabels(workers)));
  assert.ok(policy, `${what}: a NetworkPolicy selects the worker pods`);
  assert.ok(!labelsMatch(policy['spec'].podSelector.matchLabels, gatewayPods), `${what}: the worker NetworkPolicy does not select gateways`);
  assert.deepEqual(policy['spec'].policyTypes, ['Ingress']);
  assert.equal(policy['spec'].ingress.length, 1, 'one ingress rule');
  const rule = policy['spec'].ingress[0];
  assert.equal(rule.from.length, 1);
  assert.ok(labelsMatch(rule.from[0].podSelector.matchLabels, gatewayPods) && !rule.from[0].namespaceSelector, `${what}: only gateway pods of the namespace`);
  assert.deepEqual(rule.ports, [{ protocol: 'TCP', port: 9000 }]);
  // The gateway finds the worker pods by DNS: the headless Service's fully qualified name in the
  // rendered namespace, on the workers' port (the flag comes from a patch, so only a rendered overlay
  // has it), and no static list that scaling would outgrow.
  if (!rendered) return;
  const gwArgs: string[] = named(list, 'Deployment', 'sluice-gateway')['spec'].template.spec.containers[0].args;
  assert.deepEqual(flagAll(gwArgs.slice(1), '--worker'), [], `${what}: no static --worker URLs`);
  const namespace = String(workers['metadata'].namespace);
  const discovery = flag(gwArgs.slice(1), '--worker-discovery');
  assert.equal(discovery, `dns:///${String(workers['spec'].serviceName)}.${namespace}.svc.cluster.local:9000`, `${what}: --worker-discovery names the headless Service`);
  assert.equal(parseDiscovery(discovery).port, 9000);
}

void test('every YAML file under deploy/kubernetes parses, and every object has a kind and a name', () => {
  assert.ok(docs.length > 20, `${docs.length} documents`);
  for (const d of docs) {
    if (Array.isArray(d.value)) {
      // A JSON 6902 patch: each operation names a path; sluice arguments are checked below.
      for (const op of d.value as Obj[]) assert.ok(['add', 'replace', 'remove'].includes(op['op']) && typeof op['path'] === 'string', `${d.file}: a JSON patch operation`);
      continue;
    }
    assert.ok(isObj(d.value) && typeof d.value['kind'] === 'string', `${d.file}: an object with a kind`);
    assert.ok(typeof d.value['apiVersion'] === 'string', `${d.file}: apiVersion`);
  }
  for (const o of objs) assert.ok(o['metadata']?.name, `${String(o['kind'])} has a name`);
  const kinds = new Set(objs.map((o) => o['kind']));
  for (const k of ['Namespace', 'Deployment', 'StatefulSet', 'Service', 'PodDisruptionBudget', 'HorizontalPodAutoscaler', 'PersistentVolumeClaim', 'NetworkPolicy', 'ServiceMonitor', 'ScaledObject', 'ConfigMap', 'ClusterServingRuntime', 'InferenceService']) {
    assert.ok(kinds.has(k), `a ${k} is shipped`);
  }
});

void test('the source manifests pass the pod, port, probe, image and security checks', () => {
  checkDeployment(objs.filter((o) => o['kind'] !== 'ClusterServingRuntime' && o['kind'] !== 'InferenceService'), 'source', false);
  for (const o of objs) for (const { where, spec } of podSpecs(o)) checkPodSpec(where, spec, o['kind'] === 'ClusterServingRuntime');
});

void test('sluice arguments that JSON patches set or add are real flags too', () => {
  const patched: { file: string; command: 'serve' | 'worker'; args: string[] }[] = [];
  for (const { file, target, ops } of patchFiles().json6902) {
    const command = target['kind'] === 'StatefulSet' ? 'worker' : 'serve';
    const added = ops.filter((op) => /\/containers\/0\/args\/-$/.test(op['path'])).map((op) => String(op['value']));
    if (added.length > 0) patched.push({ file, command, args: added });
    for (const op of ops.filter((o) => /\/containers\/0\/args$/.test(o['path']))) {
      assert.equal(op['value'][0], command, `${file}: ${target['kind']} args start with ${command}`);
      patched.push({ file, command, args: op['value'].slice(1) });
    }
  }
  assert.ok(patched.some((p) => p.command === 'serve') && patched.some((p) => p.command === 'worker'), 'the gateway and the worker patches were found');
  for (const { file, command, args } of patched) {
    for (const [f, value] of flagValues(args)) {
      assert.ok(FLAGS[command].has(f), `${file}: ${f} is not a flag of sluice ${command}`);
      const choices = FLAGS[command].get(f);
      if (choices && value !== undefined) assert.ok(choices.includes(value), `${file}: ${f}=${value} is not one of ${choices.join('|')}`);
    }
  }
});

void test('the HPA scales on a metric the adapter rule serves, and every rule and KEDA query reads real metrics', () => {
  const known = knownMetrics();
  assert.ok(known.has('sluice_queue_duration_seconds') && known.has('sluice_queue_depth'));
  const adapter = named(objs, 'ConfigMap', 'prometheus-adapter');
  const rules = (parseStream(adapter['data']['config.yaml'], 'prometheus-adapter config.yaml')[0] as { rules: Obj[] }).rules;
  const served = new Set(rules.map((r) => r['name'].as));
  for (const r of rules) {
    for (const name of [...metricsRead(r['seriesQuery']), ...metricsRead(r['metricsQuery'])]) assert.ok(known.has(name), `adapter rule ${String(r['name'].as)} reads ${name}, which docs/metrics.md documents`);
    assert.match(r['metricsQuery'], /<<\.GroupBy>>/, 'the rule groups by the pod');
    assert.deepEqual(Object.keys(r['resources'].overrides).sort(), ['namespace', 'pod']);
    // Idle is a value (0), never NaN or no sample: every division is guarded and has an `or` fallback.
    if (r['metricsQuery'].includes('/')) assert.match(r['metricsQuery'], /> 0\)[\s\S]*\bor\b/, `${String(r['name'].as)}: the division skips 0/0 and falls back`);
    else assert.match(r['metricsQuery'], /\bor\b/, `${String(r['name'].as)}: a fallback for pods without histogram samples`);
  }
  for (const hpa of byKind(objs, 'HorizontalPodAutoscaler')) {
    assert.equal(hpa['apiVersion'], 'autoscaling/v2');
    named(objs, hpa['spec'].scaleTargetRef.kind, hpa['spec'].scaleTargetRef.name);
    const pods = (hpa['spec'].metrics as Obj[]).filter((m) => m['type'] === 'Pods');
    assert.ok(pods.length > 0, 'the base HPA has a Pods metric');
    for (const m of pods) assert.ok(served.has(m['pods'].metric.name), `HPA metric ${String(m['pods'].metric.name)} is served by an adapter rule`);
  }
  for (const so of byKind(objs, 'ScaledObject')) {
    assert.equal(so['spec'].minReplicaCount, 0, 'KEDA scales idle workers to zero');
    named(objs, so['spec'].scaleTargetRef.kind, so['spec'].scaleTargetRef.name);
    for (const t of so['spec'].triggers) {
      assert.equal(t['type'], 'prometheus');
      const names = metricsRead(t['metadata'].query);
      assert.ok(names.length > 0);
      for (const n of names) assert.ok(known.has(n), `KEDA query reads ${n}, which docs/metrics.md documents`);
      assert.match(t['metadata'].query, /or vector\(0\)/, 'no samples reads 0');
    }
    assert.ok(so['spec'].triggers.some((t: Obj) => /sluice_requests_total/.test(t['metadata'].query)), 'an arrival trigger wakes workers from zero (a request does not queue without workers)');
  }
});

void test('the KServe runtime declares sluice for ONNX over v2, and the example InferenceService uses it', () => {
  const rt = named(objs, 'ClusterServingRuntime', 'sluice');
  assert.equal(rt['apiVersion'], 'serving.kserve.io/v1alpha1');
  assert.ok(rt['spec'].supportedModelFormats.some((f: Obj) => f['name'] === 'onnx'));
  assert.ok(rt['spec'].protocolVersions.includes('v2'));
  const c = rt['spec'].containers[0];
  assert.equal(c.name, 'kserve-container');
  assert.equal(flag(c.args.slice(1), '--model-repository'), '/mnt/models');
  assert.equal(flag(c.args.slice(1), '--http-port'), '8080');
  assert.ok(c.args.some((a: string) => a.includes('{{.Name}}')), 'an argument takes the InferenceService name');
  assert.equal(rt['spec'].annotations['prometheus.kserve.io/port'], flag(c.args.slice(1), '--metrics-port'));
  const isvc = named(objs, 'InferenceService', 'sluice-onnx');
  assert.equal(isvc['spec'].predictor.model.runtime, 'sluice');
  assert.equal(isvc['spec'].predictor.model.modelFormat.name, 'onnx');
  assert.equal(isvc['spec'].predictor.model.protocolVersion, 'v2');
});

const kc = kubectl();

void test('kubectl kustomize renders both overlays, each passing the same checks', { skip: kc.skip }, () => {
  const cpu = kc.render!('cpu');
  const gpu = kc.render!('gpu');
  const kinds = (list: Obj[]): string[] => [...new Set(list.map((o) => String(o['kind'])))].sort();
  assert.deepEqual(kinds(cpu), ['Deployment', 'HorizontalPodAutoscaler', 'Namespace', 'PersistentVolumeClaim', 'PodDisruptionBudget', 'Service', 'ServiceMonitor']);
  assert.deepEqual(kinds(gpu), ['Deployment', 'HorizontalPodAutoscaler', 'Namespace', 'NetworkPolicy', 'PersistentVolumeClaim', 'PodDisruptionBudget', 'ScaledObject', 'Service', 'ServiceMonitor', 'StatefulSet']);
  for (const o of [...cpu, ...gpu]) if (o['kind'] !== 'Namespace') assert.equal(o['metadata'].namespace, 'sluice', `${String(o['kind'])} in namespace sluice`);
  checkDeployment(cpu, 'overlays/cpu', true);
  checkDeployment(gpu, 'overlays/gpu', true);
  // cpu: local thread workers in the gateway, no remote worker flags.
  const cpuArgs: string[] = named(cpu, 'Deployment', 'sluice-gateway')['spec'].template.spec.containers[0].args;
  assert.deepEqual(flagAll(cpuArgs.slice(1), '--worker'), []);
  assert.equal(flag(cpuArgs.slice(1), '--workers'), undefined, 'the default local workers');
  // gpu: one GPU per worker pod, the CUDA provider, and the gateways scale on CPU only.
  const worker = named(gpu, 'StatefulSet', 'sluice-worker')['spec'].template.spec.containers[0];
  assert.equal(String(worker.resources.limits['nvidia.com/gpu']), '1');
  assert.equal(flag(worker.args.slice(1), '--device'), 'cuda');
  assert.deepEqual(named(gpu, 'HorizontalPodAutoscaler', 'sluice-gateway')['spec'].metrics.map((m: Obj) => m['type']), ['Resource']);
  const gw = named(gpu, 'Deployment', 'sluice-gateway')['spec'].template.spec;
  assert.equal(gw.initContainers, undefined, 'the gateway starts without waiting for a worker: it loads its models when one joins');
});

const yamllint = spawnSync('yamllint', ['--version'], { encoding: 'utf8' });
void test('yamllint passes on deploy/kubernetes', { skip: yamllint.error || yamllint.status !== 0 ? 'yamllint is not on the PATH (Debian: apt-get install yamllint)' : false }, () => {
  const config = '{extends: default, rules: {line-length: {max: 130}, document-start: disable, truthy: {check-keys: false}, comments: {min-spaces-from-content: 1}, indentation: {indent-sequences: consistent}}}';
  const r = spawnSync('yamllint', ['-s', '-d', config, K8S_DIR], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});
