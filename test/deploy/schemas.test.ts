// Every Kubernetes object under deploy/kubernetes, and every object of both rendered overlays (where
// kubectl is on the PATH), validated offline against the API schemas: kubernetes-models for the core
// groups, @kubernetes-models/keda for the ScaledObject, @kubernetes-models/prometheus-operator for the
// ServiceMonitor. KServe's kinds have no published models: they are listed, and nothing else may be.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kubectl, loadDocs, objects, type Obj } from './manifests.ts';

/** Kinds no schema package covers here; each must be one of these, never an unknown kind slipping by. */
const UNVALIDATED = new Set(['serving.kserve.io/v1alpha1 ClusterServingRuntime', 'serving.kserve.io/v1beta1 InferenceService']);

/** The module of an object's model class, by its apiVersion (group/version) and kind. */
function modelModule(apiVersion: string, kind: string): string | undefined {
  if (apiVersion.startsWith('keda.sh/')) return `@kubernetes-models/keda/${apiVersion}/${kind}`;
  if (apiVersion.startsWith('monitoring.coreos.com/')) return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
  if (apiVersion.includes('kserve.io')) return undefined;
  return `kubernetes-models/${apiVersion}/${kind}`;
}

interface Validatable {
  validate(): void;
}

/** Validates `o` against its schema; returns the problem, or undefined when it is valid. */
async function problemOf(o: Obj): Promise<string | undefined> {
  const apiVersion = String(o['apiVersion']);
  const kind = String(o['kind']);
  const module = modelModule(apiVersion, kind);
  if (module === undefined) {
    return UNVALIDATED.has(`${apiVersion} ${kind}`) ? undefined : `${apiVersion} ${kind}: no schema to validate it against`;
  }
  let Model: new (data: Obj) => Validatable;
  try {
    Model = ((await import(module)) as Record<string, new (data: Obj) => Validatable>)[kind]!;
  } catch (e) {
    return `${apiVersion} ${kind}: no model ${module} (${(e as Error).message.split('\n')[0]})`;
  }
  try {
    new Model(o).validate();
    return undefined;
  } catch (e) {
    return `${kind} ${String(o['metadata']?.name)}: ${(e as Error).message}`;
  }
}

async function problems(list: readonly Obj[]): Promise<string[]> {
  const out: string[] = [];
  for (const o of list) {
    const p = await problemOf(o);
    if (p !== undefined) out.push(p);
  }
  return out;
}

void test('every object under deploy/kubernetes validates against its Kubernetes, KEDA or Prometheus Operator schema', async () => {
  const list = objects(loadDocs().filter((d) => !d.patch));
  assert.ok(list.length >= 15, `${list.length} objects`);
  assert.deepEqual(await problems(list), []);
});

void test('a schema violation is caught, naming the field', async () => {
  const bad: Obj = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' }, spec: { selector: {}, template: { spec: { containers: [{ name: 'a', image: 3 }] } } } };
  assert.match((await problemOf(bad)) ?? '', /containers\/0\/image must be string/);
  const hpa: Obj = { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: { name: 'x' }, spec: { scaleTargetRef: { kind: 'Deployment', name: 'x' }, maxReplicas: 'ten' } };
  assert.match((await problemOf(hpa)) ?? '', /maxReplicas/);
  assert.match((await problemOf({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } })) ?? '', /no model/);
});

const kc = kubectl();

void test('both rendered overlays validate against the schemas', { skip: kc.skip }, async () => {
  for (const overlay of ['cpu', 'gpu']) {
    assert.deepEqual(await problems(kc.render!(overlay)), [], `overlays/${overlay}`);
  }
});
