import { tritonTypeName } from '../../core/datatypes.ts';
import { tritonModelStats } from '../../core/statistics.ts';
import type { ModelConfig, ModelMetadata, ModelStats, QueuePolicy, TensorConfig, VersionPolicy } from '../../core/model.ts';

// Core types -> the reply messages of the non-inference methods (plain objects that proto-loader
// serializes; enums by name, 64-bit integers as numbers, which protobufjs accepts).

function queuePolicy(p: QueuePolicy): Record<string, unknown> {
  return {
    timeout_action: p.timeoutAction,
    default_timeout_microseconds: p.defaultTimeoutUs,
    allow_timeout_override: p.allowTimeoutOverride,
    max_queue_size: p.maxQueueSize,
  };
}

function versionPolicy(p: VersionPolicy): Record<string, unknown> {
  if ('latest' in p) return { latest: { num_versions: p.latest.numVersions } };
  if ('specific' in p) return { specific: { versions: [...p.specific.versions] } };
  return { all: {} };
}

function tensor(t: TensorConfig): Record<string, unknown> {
  return { name: t.name, data_type: tritonTypeName(t.datatype), dims: [...t.dims], ...(t.labelFilename ? { label_filename: t.labelFilename } : {}) };
}

/** The Triton ModelConfig message of a model (model configuration extension). */
export function modelConfigMessage(c: ModelConfig): Record<string, unknown> {
  const db = c.dynamicBatching;
  const priorityPolicies: Record<string, unknown> = {};
  for (const [level, p] of Object.entries(db.priorityQueuePolicy)) priorityPolicies[level] = queuePolicy(p);
  const warmup = c.warmup.map((w) => {
    const inputs: Record<string, unknown> = {};
    for (const [name, i] of Object.entries(w.inputs)) {
      inputs[name] = { data_type: tritonTypeName(i.datatype), dims: [...i.dims], ...(i.randomData ? { random_data: true } : { zero_data: true }) };
    }
    return { name: w.name, batch_size: w.batchSize, inputs, count: w.count };
  });
  return {
    name: c.name,
    platform: c.platform,
    backend: c.backend,
    version_policy: versionPolicy(c.versionPolicy),
    max_batch_size: c.maxBatchSize,
    input: c.inputs.map((i) => ({ ...tensor(i), optional: i.optional === true })),
    output: c.outputs.map(tensor),
    // A model that does not batch has no dynamic batcher in Triton's terms either.
    ...(c.maxBatchSize > 0
      ? {
          dynamic_batching: {
            preferred_batch_size: [...db.preferredBatchSizes],
            max_queue_delay_microseconds: db.maxQueueDelayUs,
            preserve_ordering: db.preserveOrdering,
            priority_levels: db.priorityLevels,
            default_priority_level: db.defaultPriorityLevel,
            default_queue_policy: queuePolicy(db.defaultQueuePolicy),
            priority_queue_policy: priorityPolicies,
          },
        }
      : {}),
    instance_group: c.instanceGroups.map((g, i) => ({ name: `${c.name}_${i}`, kind: g.kind, count: g.count, gpus: [...g.gpus] })),
    model_warmup: warmup,
    response_cache: { enable: c.responseCache?.enable ?? false },
  };
}

/** ModelMetadataResponse. */
export function modelMetadataMessage(m: ModelMetadata): Record<string, unknown> {
  const t = (x: { name: string; datatype: string; shape: number[] }): Record<string, unknown> => ({ name: x.name, datatype: x.datatype, shape: x.shape });
  return { name: m.name, versions: [...m.versions], platform: m.platform, inputs: m.inputs.map(t), outputs: m.outputs.map(t) };
}

/** One ModelStatistics entry (statistics extension). */
export function modelStatsMessage(s: ModelStats): Record<string, unknown> {
  return tritonModelStats(s);
}
