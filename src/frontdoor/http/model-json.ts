import { tritonModelStats } from '../../core/statistics.ts';
import { tritonModelConfig } from '../../core/model-config-wire.ts';
import type { ModelConfig, ModelStats } from '../../core/model.ts';

type Json = Record<string, unknown>;

/** The model configuration as Triton's GET /v2/models/{m}/config returns it (src/core/model-config-wire.ts). */
export function modelConfigJson(c: ModelConfig): Json {
  return tritonModelConfig(c);
}

/** One model_stats entry of Triton's statistics extension. */
export function modelStatsJson(s: ModelStats): Json {
  return tritonModelStats(s);
}
