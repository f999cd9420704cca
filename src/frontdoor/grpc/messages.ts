import { tritonModelConfig } from '../../core/model-config-wire.ts';
import { tritonModelStats } from '../../core/statistics.ts';
import type { ModelConfig, ModelMetadata, ModelStats } from '../../core/model.ts';

// Core types -> the reply messages of the non-inference methods (plain objects that proto-loader
// serializes; enums by name, 64-bit integers as numbers, which protobufjs accepts).

/** The Triton ModelConfig message of a model: the REST answer's object (one builder, src/core/model-config-wire.ts). */
export function modelConfigMessage(c: ModelConfig): Record<string, unknown> {
  return tritonModelConfig(c);
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
