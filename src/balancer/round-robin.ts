import { canTake, type PickJob, type Picker, type WorkerView } from './picker.ts';

/**
 * Rotates over the workers in the order the pool lists them, skipping those that cannot take a batch.
 * Blind to load and to which models are hot: the baseline the least-loaded policy is measured against.
 */
export class RoundRobinPicker implements Picker {
  readonly name = 'round-robin';
  #next = 0;

  pick(candidates: readonly WorkerView[], _job: PickJob): WorkerView | undefined {
    const n = candidates.length;
    if (n === 0) return undefined;
    // The list may have shrunk since the last pick; wrap the cursor instead of trusting it.
    const start = this.#next % n;
    for (let i = 0; i < n; i++) {
      const index = (start + i) % n;
      const view = candidates[index]!;
      if (canTake(view)) {
        this.#next = index + 1;
        return view;
      }
    }
    return undefined;
  }
}
