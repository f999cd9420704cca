/** What the queue gauges read at scrape time: depth and capacity per model, over its live versions. */
import type { ModelSlot } from './models.ts';
import { levelCount, maxQueueSizeOf, queuePolicyOf } from './policy.ts';

/** Requests queued per model, summed over its versions (models without a batcher are left out). */
export function* queueDepths(slots: Iterable<ModelSlot>): IterableIterator<readonly [string, number]> {
  for (const slot of slots) {
    let depth = 0;
    let live = false;
    for (const v of slot.versions.values()) {
      if (!v.batcher) continue;
      live = true;
      depth += v.batcher.depth();
    }
    if (live) yield [slot.name, depth];
  }
}

/** Queue capacity per model: every priority level of every live version. */
export function* queueLimits(slots: Iterable<ModelSlot>): IterableIterator<readonly [string, number]> {
  for (const slot of slots) {
    let max = 0;
    for (const v of slot.versions.values()) {
      if (!v.batcher || !v.config) continue;
      for (let level = 1; level <= levelCount(v.config); level++) max += maxQueueSizeOf(queuePolicyOf(v.config, level));
    }
    if (max > 0) yield [slot.name, max];
  }
}
