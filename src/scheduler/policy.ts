import { ExpectedWaitTooLong, QueueFull, type SluiceError } from '../core/errors.ts';
import type { BatchCost } from '../core/execution.ts';
import { DEFAULT_MAX_QUEUE_SIZE, type ModelConfig, type QueuePolicy } from '../core/model.ts';
import type { ShedReason } from './pending.ts';
import type { QueueNode, RequestQueue } from './queue.ts';
import type { BatchLimits } from './select.ts';

/** Priority levels a model has: at least one, so a model without priorities has the single level 1. */
export function levelCount(config: ModelConfig): number {
  return Math.max(1, config.dynamicBatching.priorityLevels);
}

/**
 * The level a request's priority 0 ("default") maps to. Triton requires a default level whenever
 * levels are configured; when a config omits it, the lowest level keeps explicit priorities ahead.
 */
export function defaultLevel(config: ModelConfig): number {
  const levels = levelCount(config);
  const d = config.dynamicBatching.defaultPriorityLevel;
  return d >= 1 && d <= levels ? d : levels;
}

/** The queue policy of one level: its own if the config sets one, else the model's default. */
export function queuePolicyOf(config: ModelConfig, level: number): QueuePolicy {
  return config.dynamicBatching.priorityQueuePolicy[level] ?? config.dynamicBatching.defaultQueuePolicy;
}

/** Triton's max_queue_size 0 means unbounded; sluice always bounds a queue. */
export function maxQueueSizeOf(policy: QueuePolicy): number {
  return policy.maxQueueSize > 0 ? policy.maxQueueSize : DEFAULT_MAX_QUEUE_SIZE;
}

/** The request's timeout in microseconds (0 = none): its own when the policy allows overriding, else the default. */
export function timeoutUsOf(policy: QueuePolicy, requestTimeoutUs: number): number {
  if (policy.allowTimeoutOverride && requestTimeoutUs > 0) return requestTimeoutUs;
  return policy.defaultTimeoutUs;
}

/** The batch limits of a model. Padding to allowed sizes caps a batch at the largest allowed size. */
export function batchLimitsOf(config: ModelConfig): BatchLimits {
  // Validation asks for every request: configs are frozen, so the answer is computed once per config.
  let limits = limitsCache.get(config);
  if (!limits) {
    limits = computeBatchLimits(config);
    limitsCache.set(config, limits);
  }
  return limits;
}

const limitsCache = new WeakMap<ModelConfig, BatchLimits>();

function computeBatchLimits(config: ModelConfig): BatchLimits {
  const db = config.dynamicBatching;
  let maxRows = config.maxBatchSize > 0 ? config.maxBatchSize : 1;
  const allowed = db.allowedBatchSizes.filter((s) => Number.isSafeInteger(s) && s > 0);
  if (config.maxBatchSize > 0 && allowed.length > 0) maxRows = Math.min(maxRows, Math.max(...allowed));
  const preferred = [...new Set(db.preferredBatchSizes)].filter((s) => s > 0 && s <= maxRows).sort((a, b) => a - b);
  return { batching: config.maxBatchSize > 0, maxRows, preferred, maxQueueDelayMs: Math.max(0, db.maxQueueDelayUs) / 1000 };
}

/**
 * Microseconds until a new request's batch can start: the full batches queued ahead of it at the
 * measured cost, spread over the workers; 0 while unmeasured. Neither the batch it joins nor one already
 * running counts, so a queue shorter than one batch always admits. That is what keeps admission live:
 * a cost measured on a saturated machine can exceed a tight budget by itself, and an estimate that
 * counted the request's own batch would then refuse everything, run nothing and never measure again.
 */
export function expectedWaitUs(cost: BatchCost | undefined, queuedRows: number, maxRows: number): number {
  if (!cost || cost.workers === 0) return 0;
  const batches = Math.floor(queuedRows / maxRows);
  return ((batches * (cost.perBatchMs + maxRows * cost.perRowMs)) / cost.workers) * 1000;
}

/** Why a request would be shed on arrival, and the error it gets. */
export interface Overload {
  readonly reason: ShedReason;
  readonly error: SluiceError;
}

/**
 * The queue bound and the expected-wait budget of a priority level's list (the memory bound needs the
 * request), as they stand for a request of `flow`: a full queue still admits a tenant holding less
 * than its fair share of the bound, and the wait counts what fair share serves before it, so that
 * one tenant's flood fills its own part of the queue, not everyone's. The cost is asked for only
 * when a budget applies (it walks the workers).
 */
export function overloadOf(
  q: RequestQueue<QueueNode>,
  r: { readonly model: string; readonly policy: QueuePolicy; readonly list: number; readonly flow: string; readonly rows: number; readonly cost: () => BatchCost | undefined; readonly maxRows: number },
): Overload | undefined {
  const max = maxQueueSizeOf(r.policy);
  if (q.sizeOf(r.list) >= max && q.flowSizeOf(r.flow, r.list) >= q.shareOf(r.flow, max)) return { reason: 'queue_full', error: QueueFull(r.model, max) };
  const budgetUs = r.policy.maxExpectedWaitUs;
  if (budgetUs > 0) {
    const waitUs = expectedWaitUs(r.cost(), q.rowsAhead(r.flow, r.rows), r.maxRows);
    if (waitUs > budgetUs) return { reason: 'expected_wait', error: ExpectedWaitTooLong(r.model, waitUs, budgetUs) };
  }
  return undefined;
}
