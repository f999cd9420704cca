/**
 * Read-only views over the model table's slots: what the gauges read at scrape time (queue depth and
 * capacity, active sequences) and the repository index.
 */
import type { RepositoryIndexEntry } from '../core/model.ts';
import type { ModelSlot } from './models.ts';
import { levelCount, maxQueueSizeOf, queuePolicyOf } from './policy.ts';
import { SequenceBatcher } from './sequence-batcher.ts';
import { stepVersion } from './ensemble.ts';
import { compareVersions } from './versions.ts';

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

/** Active sequences per sequence model, over its versions. */
export function* activeSequences(slots: Iterable<ModelSlot>): IterableIterator<readonly [string, number]> {
  for (const slot of slots) {
    let n = 0;
    let any = false;
    for (const v of slot.versions.values()) {
      if (!(v.batcher instanceof SequenceBatcher)) continue;
      any = true;
      n += v.batcher.activeSequences();
    }
    if (any) yield [slot.name, n];
  }
}

/** The repository extension's index: every model by name, each version with its state (ready ones only when asked). */
export function repositoryIndexOf(slots: Iterable<ModelSlot>, readyOnly: boolean, ready: (name: string, version: string) => boolean): RepositoryIndexEntry[] {
  const out: RepositoryIndexEntry[] = [];
  const names = [...slots].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const slot of names) {
    const versions = [...slot.versions.values()].sort((a, b) => compareVersions(a.version, b.version));
    if (versions.length === 0) {
      if (!readyOnly) out.push({ name: slot.name, version: '', state: 'UNAVAILABLE', reason: slot.reason || 'unloaded' });
      continue;
    }
    for (const v of versions) {
      // A loaded ensemble serves only while the models of all its steps are ready, as its ready endpoint says.
      const down = v.state === 'READY' ? v.config?.ensembleScheduling?.steps.find((s) => !ready(s.modelName, stepVersion(s))) : undefined;
      const state = down ? 'UNAVAILABLE' : v.state;
      if (readyOnly && state !== 'READY') continue;
      out.push({ name: slot.name, version: v.version, state, reason: down ? `step model '${down.modelName}' is not ready` : v.reason });
    }
  }
  return out;
}
