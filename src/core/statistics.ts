import type { DurationStat, ModelStats } from './model.ts';

/** One {count, ns} pair of Triton's statistics extension. */
function duration(d: DurationStat): { count: number; ns: number } {
  return { count: d.count, ns: d.ns };
}

/**
 * One model's statistics in the field names of Triton's statistics extension. REST returns it as
 * JSON and gRPC as a ModelStatistics message: the extension gives both the same names.
 */
export function tritonModelStats(s: ModelStats): Record<string, unknown> {
  return {
    name: s.name,
    version: s.version,
    last_inference: s.lastInference,
    inference_count: s.inferenceCount,
    execution_count: s.executionCount,
    inference_stats: {
      success: duration(s.success),
      fail: duration(s.fail),
      queue: duration(s.queue),
      compute_input: duration(s.computeInput),
      compute_infer: duration(s.computeInfer),
      compute_output: duration(s.computeOutput),
      // Zero for a model without the response cache: present because clients index these fields.
      cache_hit: duration(s.cacheHit),
      cache_miss: duration(s.cacheMiss),
    },
    batch_stats: s.batchStats.map((b) => ({
      batch_size: b.batchSize,
      compute_input: duration(b.computeInput),
      compute_infer: duration(b.computeInfer),
      compute_output: duration(b.computeOutput),
    })),
    memory_usage: [],
  };
}
