// The autoscalers' PromQL as shipped: prometheus-adapter's metricsQuery with what the adapter
// substitutes for a request about the pods of namespace sluice, and the KEDA ScaledObject's queries.
import assert from 'node:assert/strict';
import { loadDocs, objects, parseStream, type Obj } from './manifests.ts';

const objs = objects(loadDocs().filter((d) => !d.patch));
const adapter = objs.find((o) => o['kind'] === 'ConfigMap' && o['metadata'].name === 'prometheus-adapter')!;
const rules = (parseStream(adapter['data']['config.yaml'], 'adapter config')[0] as { rules: Obj[] }).rules;

/** The adapter rule that serves metric `name`, as the adapter sends it for namespace sluice's pods. */
export function adapterQuery(name: string): string {
  const rule = rules.find((r) => r['name'].as === name);
  assert.ok(rule, `adapter rule ${name}`);
  return String(rule['metricsQuery']).replaceAll('<<.GroupBy>>', 'namespace, pod').replaceAll('<<.LabelMatchers>>', 'namespace="sluice"');
}

const keda = objs.find((o) => o['kind'] === 'ScaledObject')!;

/** The query of the KEDA trigger `name`. */
export function kedaQuery(name: string): string {
  return String(keda['spec'].triggers.find((t: Obj) => t['name'] === name).metadata.query);
}
