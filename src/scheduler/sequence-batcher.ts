/**
 * Triton's sequence batcher for one model version: requests that carry a correlation ID run in order,
 * one at a time per sequence, and a batch holds at most one request of each sequence (its row's
 * START / END / READY / CORRID controls and implicit state filled in here). Bounded where Triton is
 * not: at most maxActiveSequences sequences (max_batch_size slots for direct, max_candidate_sequences
 * for oldest), and a new one past it is refused at once; queued requests are bounded by
 * max_queue_size. Implicit state lives here, in the gateway, and travels with each batch: a worker that
 * dies mid-sequence loses nothing, its batch runs again elsewhere with the same state.
 */
import { BatchNotRun, type BatchSlot } from '../core/execution.ts';
import {
  QueueFull, RequestCancelled, SequenceBatchSize, SequenceIdMissing, SequenceNotStarted, SequenceParameter, SequenceSlotsFull, toSluiceError, type SluiceError,
} from '../core/errors.ts';
import type { InferRequest, InferResponse, SequenceFlags } from '../core/inference.ts';
import type { SequenceBatchingConfig } from '../core/model.ts';
import type { BatcherOptions } from './batcher.ts';
import { maxQueueSizeOf, queuePolicyOf } from './policy.ts';
import type { DispatchResult, RequestPlan, Scheduler } from './scheduler.ts';
import { sequenceInputs, takeStates, type SequenceRow } from './sequence-tensors.ts';
import { nsBetween } from './stats.ts';
import { concatInputs, splitOutputs } from './tensors.ts';

/** Built from what a dynamic batcher is, less the memory bound and tenants (one request per sequence at a time). */
export type SequenceBatcherOptions = Pick<BatcherOptions, 'model' | 'version' | 'config' | 'executor' | 'metrics' | 'stats' | 'logger'> & {
  readonly onBlocked?: (scheduler: Scheduler) => void;
};

interface Item {
  readonly request: InferRequest;
  readonly plan: RequestPlan;
  readonly flags: SequenceFlags;
  readonly arrivalMs: number;
  retried: boolean;
  resolve(r: InferResponse): void;
  reject(e: SluiceError): void;
}

interface Sequence {
  readonly key: string;
  readonly queue: Item[];
  running: boolean;
  /** The state its last request left, per state input. */
  state: Map<string, Uint8Array> | undefined;
  lastMs: number;
}

export class SequenceBatcher implements Scheduler {
  readonly #o: SequenceBatcherOptions;
  readonly #sb: SequenceBatchingConfig;
  readonly #maxQueue: number;
  readonly #sequences = new Map<string, Sequence>();
  readonly #reaper: NodeJS.Timeout;
  #queued = 0;
  #inflight = 0;
  #closed: Error | undefined;
  #delayTimer: NodeJS.Timeout | undefined;
  #drainWaiters: (() => void)[] = [];

  constructor(options: SequenceBatcherOptions) {
    this.#o = options;
    this.#sb = options.config.sequenceBatching!;
    this.#maxQueue = maxQueueSizeOf(queuePolicyOf(options.config, 1));
    const idleMs = this.#sb.maxSequenceIdleUs / 1000;
    this.#reaper = setInterval(() => this.#reap(), Math.min(1000, Math.max(10, idleMs / 4)));
    this.#reaper.unref();
  }

  /** Sequences holding a slot now. */
  activeSequences(): number {
    return this.#sequences.size;
  }

  enqueue(request: InferRequest, plan: RequestPlan): Promise<InferResponse> {
    const { model } = this.#o;
    if (this.#closed) return Promise.reject(this.#closed);
    const flags = request.sequence;
    if (!flags || flags.id === '' || flags.id === '0') return Promise.reject(SequenceIdMissing(model));
    if (plan.rows !== 1) return Promise.reject(SequenceBatchSize(model));
    const corrid = this.#sb.controls.find((c) => c.kind === 'CORRID');
    // A string ID has no number for a numeric CORRID control (Triton refuses it the same way).
    if (corrid && corrid.datatype !== 'BYTES' && !flags.numeric) return Promise.reject(SequenceParameter('sequence_id', `model '${model}' takes its correlation ID as ${corrid.datatype} (control '${corrid.tensor}'): send an unsigned integer, not the string '${flags.id}'`));
    const key = `${flags.numeric ? 'n' : 's'}:${flags.id}`;
    let seq = this.#sequences.get(key);
    if (!seq) {
      if (!flags.start) return Promise.reject(SequenceNotStarted(flags.id, model));
      if (this.#sequences.size >= this.#sb.maxActiveSequences) {
        this.#o.metrics.requestsShed.inc({ model, reason: 'queue_full' });
        return Promise.reject(SequenceSlotsFull(model, this.#sb.maxActiveSequences));
      }
      seq = { key, queue: [], running: false, state: undefined, lastMs: request.arrivalMs };
      this.#sequences.set(key, seq);
    } else if (flags.start) {
      this.#o.logger.warn({ model, sequence: flags.id }, 'a sequence started again before it ended: it restarts from its initial state');
    }
    if (this.#queued >= this.#maxQueue) {
      this.#o.metrics.requestsShed.inc({ model, reason: 'queue_full' });
      return Promise.reject(QueueFull(model, this.#maxQueue));
    }
    const s = seq;
    return new Promise<InferResponse>((resolve, reject) => {
      const item: Item = { request, plan, flags, arrivalMs: request.arrivalMs, retried: false, resolve, reject };
      s.queue.push(item);
      s.lastMs = performance.now();
      this.#queued++;
      request.signal?.addEventListener('abort', () => {
        const at = s.queue.indexOf(item);
        if (at < 0) return;
        s.queue.splice(at, 1);
        this.#queued--;
        this.#o.metrics.requestsShed.inc({ model, reason: 'cancelled' });
        reject(RequestCancelled(model));
      }, { once: true });
      this.#kick();
    });
  }

  refuseOnArrival(): SluiceError | undefined {
    return undefined;
  }

  depth(): number {
    return this.#queued;
  }

  inflight(): number {
    return this.#inflight;
  }

  #kick(): void {
    for (;;) {
      const r = this.dispatchOne();
      if (r === 'busy') return void this.#o.onBlocked?.(this);
      if (r === 'idle') return;
    }
  }

  dispatchOne(): DispatchResult {
    if (this.#closed) return 'idle';
    const ready = [...this.#sequences.values()].filter((s) => !s.running && s.queue.length > 0).sort((a, b) => a.queue[0]!.arrivalMs - b.queue[0]!.arrivalMs);
    if (ready.length === 0) return 'idle';
    if (this.#shouldWait(ready)) return 'idle';
    const members = ready.slice(0, this.#o.config.maxBatchSize);
    const { model, version, executor } = this.#o;
    const acquired = executor.tryAcquire({ model, version, rows: members.length });
    if (acquired.kind === 'busy') return 'busy';
    const items = members.map((s) => s.queue.shift()!);
    this.#queued -= items.length;
    if (acquired.kind === 'unavailable') {
      const err = toSluiceError(acquired.error);
      for (const it of items) this.#fail(it, err);
      return 'sent';
    }
    for (const s of members) s.running = true;
    this.#inflight++;
    void this.#run(acquired.slot, members, items);
    return 'sent';
  }

  /** oldest with a queue delay: a batch smaller than the smallest preferred size waits, up to the delay, to grow. */
  #shouldWait(ready: readonly Sequence[]): boolean {
    const { strategy, preferredBatchSizes, maxQueueDelayUs } = this.#sb;
    if (strategy !== 'oldest' || maxQueueDelayUs === 0 || ready.length >= (preferredBatchSizes[0] ?? this.#o.config.maxBatchSize)) return false;
    const waitedMs = performance.now() - ready[0]!.queue[0]!.arrivalMs;
    const leftMs = maxQueueDelayUs / 1000 - waitedMs;
    if (leftMs <= 0) return false;
    if (!this.#delayTimer) {
      this.#delayTimer = setTimeout(() => {
        this.#delayTimer = undefined;
        this.#kick();
      }, leftMs);
      this.#delayTimer.unref();
    }
    return true;
  }

  async #run(slot: BatchSlot, members: Sequence[], items: Item[]): Promise<void> {
    const { model, version, stats } = this.#o;
    const rows: SequenceRow[] = items.map((it, i) => ({ ...it.flags, state: members[i]!.state }));
    const wanted = [...new Set([...items.flatMap((it) => it.plan.outputs), ...this.#sb.states.map((s) => s.outputName)])];
    const now = performance.now();
    for (const it of items) stats.queued(nsBetween(it.arrivalMs, now));
    try {
      const inputs = [...concatInputs(items.map((it) => ({ inputs: it.request.inputs, rows: 1, outputs: it.plan.outputs })), items.length), ...sequenceInputs(this.#sb.controls, this.#sb.states, rows)];
      const result = await slot.run({ model, version, rows: items.length, inputs, outputs: wanted });
      const shares = splitOutputs(model, result.outputs, items.map((it) => ({ inputs: [], rows: 1, outputs: it.plan.outputs })), items.length);
      const states = takeStates(this.#sb.states, result.outputs, items.length);
      stats.executed(items.length, items.length, items.length, result);
      const end = performance.now();
      items.forEach((it, i) => {
        const s = members[i]!;
        s.state = states[i];
        s.running = false;
        s.lastMs = end;
        if (it.flags.end && s.queue.length === 0) this.#sequences.delete(s.key);
        stats.success(nsBetween(it.arrivalMs, end));
        it.resolve({ id: it.request.id, model, version, outputs: shares[i]!, worker: result.worker, batchRows: items.length });
      });
    } catch (e) {
      this.#failed(members, items, e);
    } finally {
      this.#inflight--;
      for (const s of members) s.running = false;
      this.#kick();
      this.#wakeDrain();
    }
  }

  /** A batch its worker failed goes back to the heads of its sequences, once; any other error fails its requests (the sequences keep their state). */
  #failed(members: readonly Sequence[], items: readonly Item[], e: unknown): void {
    const again = e instanceof BatchNotRun && !this.#closed && items.every((it) => !it.retried || e.busy);
    items.forEach((it, i) => {
      if (again) {
        if (!(e).busy) it.retried = true;
        members[i]!.queue.unshift(it);
        this.#queued++;
      } else this.#fail(it, toSluiceError(e));
    });
  }

  #fail(it: Item, err: SluiceError): void {
    this.#o.stats.fail(nsBetween(it.arrivalMs, performance.now()));
    it.reject(err);
  }

  /** Ends sequences idle past max_sequence_idle_microseconds: their slot and state are freed. */
  #reap(): void {
    const now = performance.now();
    const idleMs = this.#sb.maxSequenceIdleUs / 1000;
    for (const [key, s] of this.#sequences) {
      if (s.running || s.queue.length > 0 || now - s.lastMs < idleMs) continue;
      this.#sequences.delete(key);
      this.#o.logger.info({ model: this.#o.model, sequence: key.slice(2) }, 'sequence idle past max_sequence_idle_microseconds: ended');
    }
  }

  drain(): Promise<void> {
    if (this.#queued === 0 && this.#inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  #wakeDrain(): void {
    if (this.#queued !== 0 || this.#inflight !== 0) return;
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }

  close(error: Error): void {
    this.#closed = error;
    clearInterval(this.#reaper);
    if (this.#delayTimer) clearTimeout(this.#delayTimer);
    const err = toSluiceError(error);
    for (const s of this.#sequences.values()) for (const it of s.queue.splice(0)) this.#fail(it, err);
    this.#queued = 0;
    this.#sequences.clear();
    this.#wakeDrain();
  }
}
