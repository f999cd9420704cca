/**
 * The executor a version made of uploaded files (a load request's `file:` parameters) batches on: every
 * batch, load and unload names the upload's source, so a worker runs those files and never the
 * repository's files of the same name and version. A version from the repository uses the pool as it is.
 */
import type { Acquired, BatchJob, Executor } from '../core/execution.ts';

export function withSource(executor: Executor, source: string): Executor {
  return {
    tryAcquire(batch): Acquired {
      const a = executor.tryAcquire(batch);
      if (a.kind !== 'slot') return a;
      const { slot } = a;
      return { kind: 'slot', slot: { worker: slot.worker, run: (job: BatchJob) => slot.run({ ...job, source }), release: () => slot.release() } };
    },
    onDrain: (listener) => executor.onDrain(listener),
    costOf: (model, version) => executor.costOf(model, version),
    load: (model, version) => executor.load(model, version, source),
    unload: (model, version) => executor.unload(model, version, source),
  };
}
