import type { WorkerSnapshot } from '../telemetry/metrics.ts';
import type { WorkerHealth } from '../worker/protocol.ts';
import { BatchCostModel } from './cost-model.ts';
import { modelKey, type PickJob, type WorkerView } from './picker.ts';
import type { WorkerLink } from './link.ts';

/** Consecutive failed /health probes that eject a worker (one slow probe under load is not enough). */
export const PROBE_FAILURES_TO_EJECT = 2;
/** After a busy answer the worker is passed over this long, doubling while it stays busy, up to the max. */
export const BUSY_BACKOFF_FIRST_MS = 2;
export const BUSY_BACKOFF_MAX_MS = 100;
/** How long a worker's own account of other gateways' batches counts before it is stale. */
const OTHERS_FRESH_MS = 1_000;

/** A local worker the gateway runs and restarts itself: a process (LocalWorker) or inside the gateway (InProcessWorker). */
export interface SupervisedWorker {
  /** Pid of the process the worker runs in, while it runs. */
  readonly pid: number | undefined;
  readonly restarts: number;
  /** Stops it for good (no restart). */
  stop(): Promise<void>;
}

/** A reserved slot on a worker; released exactly once when the batch settles. */
export interface SlotLease {
  readonly worker: PooledWorker;
  readonly rows: number;
  readonly sentAt: number;
  /** Aborted when the worker is ejected while the batch is out, so that it fails over at once. */
  readonly cancel: AbortController;
}

/** Read-only description of one worker for operators and tests. */
export interface WorkerInfo {
  readonly id: string;
  readonly address: string;
  readonly kind: 'local' | 'remote';
  /** Pid of a local worker's running process (undefined while it is down, and for remote workers). */
  readonly pid: number | undefined;
  readonly healthy: boolean;
  /** Why the worker is ejected; empty while healthy. */
  readonly downReason: string;
  readonly inflightBatches: number;
  readonly hotModels: readonly string[];
  /** Batches this worker answered successfully since the pool started. */
  readonly completedBatches: number;
  readonly restarts: number;
}

/**
 * The pool's record of one worker: its client, health, slots and what it holds hot. All state changes
 * happen on the gateway's event loop, so reserving a slot is synchronous and cannot race.
 */
export class PooledWorker {
  readonly id: string;
  readonly client: WorkerLink;
  readonly local: SupervisedWorker | undefined;
  readonly maxInflight: number;
  #healthy = false;
  /** Discovery no longer names it: no new batches; removed once those in flight settled. */
  #retiring = false;
  #downReason = 'not yet probed';
  /** performance.now() when the worker last went down (a local one is expected back within a restart). */
  #downSince = performance.now();
  #probeFailures = 0;
  #inflightBatches = 0;
  #inflightRows = 0;
  #completed = 0;
  /** When the worker last finished a batch of ours: service time starts at max(sent, this). */
  #lastDoneAt = 0;
  readonly #hot = new Set<string>();
  readonly #costs = new Map<string, BatchCostModel>();
  #memoryUsedBytes = 0;
  #memoryBudgetBytes = 0;
  #pendingLoads = 0;
  readonly #leases = new Set<SlotLease>();
  /** performance.now() until which the worker is passed over (it answered busy). */
  #fullUntil = 0;
  #busyBackoffMs = 0;
  /** Batches the worker holds for other gateways, as its last answer or probe reported, and when. */
  #others = 0;
  #othersAt = -Infinity;

  constructor(id: string, client: WorkerLink, maxInflight: number, local?: SupervisedWorker) {
    this.id = id;
    this.client = client;
    this.maxInflight = maxInflight;
    this.local = local;
  }

  /** Healthy and wanted: a worker that discovery dropped takes nothing new even while it answers. */
  get healthy(): boolean {
    return this.#healthy && !this.#retiring;
  }

  get retiring(): boolean {
    return this.#retiring;
  }

  /** Discovery stopped naming it (true) or names it again (false). */
  setRetiring(retiring: boolean): void {
    this.#retiring = retiring;
  }

  get downReason(): string {
    if (this.#retiring) return 'no longer discovered; draining';
    return this.#healthy ? '' : this.#downReason;
  }

  /** How long the worker has been down (0 while healthy). */
  downFor(now: number): number {
    return this.#healthy ? 0 : now - this.#downSince;
  }

  /** Slots reserved on it and not yet released. */
  get busy(): boolean {
    return this.#leases.size > 0;
  }

  get inflightBatches(): number {
    return this.#inflightBatches;
  }

  get freeSlots(): number {
    return Math.max(0, this.maxInflight - this.#inflightBatches);
  }

  get canTake(): boolean {
    return this.healthy && this.#inflightBatches < this.maxInflight && performance.now() >= this.#fullUntil;
  }

  /**
   * The worker answered busy (full with other gateways' batches): pass it over for a while, longer each
   * time in a row. Returns when it may be tried again.
   */
  markFull(now: number): number {
    this.#busyBackoffMs = this.#busyBackoffMs === 0 ? BUSY_BACKOFF_FIRST_MS : Math.min(BUSY_BACKOFF_MAX_MS, this.#busyBackoffMs * 2);
    this.#fullUntil = now + this.#busyBackoffMs;
    return this.#fullUntil;
  }

  /**
   * What the worker said it holds (running and queued, every gateway's) when it answered or was probed;
   * what is not ours belongs to other gateways.
   */
  noteHeld(held: number, now: number): void {
    this.#others = Math.max(0, held - this.#inflightBatches);
    this.#othersAt = now;
  }

  /** Other gateways' batches on the worker, while its last report is fresh. */
  othersBatches(now: number): number {
    return now - this.#othersAt <= OTHERS_FRESH_MS ? this.#others : 0;
  }

  isHot(model: string, version: string): boolean {
    return this.#hot.has(modelKey(model, version));
  }

  /** Marks the worker usable; returns true when it was ejected before (capacity appeared). */
  markUp(): boolean {
    const was = this.#healthy;
    this.#healthy = true;
    this.#probeFailures = 0;
    return !was;
  }

  /**
   * Ejects the worker: no new batches until a probe succeeds. Batches still in flight on it are
   * aborted: a worker that stopped answering probes would otherwise hold them until the batch timeout.
   */
  markDown(reason: string): void {
    if (this.#healthy) this.#downSince = performance.now();
    this.#healthy = false;
    this.#downReason = reason;
    for (const lease of this.#leases) lease.cancel.abort(new Error(`worker ${this.id} was ejected: ${reason}`));
  }

  /** Models held hot plus loads under way: spreads loads of distinct models over the workers. */
  get modelLoadCount(): number {
    return this.#hot.size + this.#pendingLoads;
  }

  /** Brackets a load this pool sent to the worker. */
  loadStarted(): void {
    this.#pendingLoads++;
  }

  loadFinished(): void {
    this.#pendingLoads--;
  }

  /** Counts a failed probe; returns true when it ejects the worker. */
  probeFailed(reason: string): boolean {
    this.#probeFailures++;
    if (this.#healthy && this.#probeFailures < PROBE_FAILURES_TO_EJECT) return false;
    const wasHealthy = this.#healthy;
    this.markDown(`health probe failed: ${reason}`);
    return wasHealthy;
  }

  /** A fresh process holds nothing: forget what the previous one had loaded. */
  forgetModels(): void {
    this.#hot.clear();
    this.#memoryUsedBytes = 0;
  }

  /** Takes the worker's own account of its models and memory. */
  applyHealth(h: WorkerHealth): void {
    this.#hot.clear();
    for (const m of h.models) this.#hot.add(modelKey(m.model, m.version));
    this.#memoryUsedBytes = h.memoryUsedBytes;
    this.#memoryBudgetBytes = h.memoryBudgetBytes;
    if (this.local === undefined) this.noteHeld(h.queuedBatches + (h.running ? 1 : 0), performance.now());
  }

  markHot(model: string, version: string): void {
    this.#hot.add(modelKey(model, version));
  }

  markCold(model: string, version: string): void {
    this.#hot.delete(modelKey(model, version));
  }

  reserve(rows: number, now: number): SlotLease {
    this.#inflightBatches++;
    this.#inflightRows += rows;
    const lease: SlotLease = { worker: this, rows, sentAt: now, cancel: new AbortController() };
    this.#leases.add(lease);
    return lease;
  }

  /**
   * Frees the slot. `done` is given for an answered batch; when `done.measure` is set its service time
   * feeds the model's cost fit.
   */
  release(lease: SlotLease, now: number, done: { model: string; version: string; measure: boolean } | undefined): void {
    if (!this.#leases.delete(lease)) return; // released already: never count a slot twice
    this.#inflightBatches--;
    this.#inflightRows -= lease.rows;
    if (done === undefined) return;
    this.#completed++;
    // It finished one of ours: there is room again.
    this.#busyBackoffMs = 0;
    this.#fullUntil = 0;
    // With several batches in flight the worker runs them one after another: a batch's own service
    // time starts when the worker finished the previous one, not when this one was sent.
    const startedAt = Math.max(lease.sentAt, this.#lastDoneAt);
    this.#lastDoneAt = now;
    if (!done.measure) return;
    const key = modelKey(done.model, done.version);
    let cost = this.#costs.get(key);
    if (cost === undefined) {
      cost = new BatchCostModel();
      this.#costs.set(key, cost);
    }
    cost.observe(lease.rows, (now - startedAt) / 1000, now);
  }

  /** The model's fitted batch cost on this worker (seconds), if recent batches measured it. */
  costOf(model: string, version: string, now: number): { perRow: number; perBatch: number } | undefined {
    return this.#costs.get(modelKey(model, version))?.cost(now);
  }

  view(job: PickJob, now: number): WorkerView {
    const cost = this.#costs.get(modelKey(job.model, job.version))?.cost(now);
    return {
      id: this.id,
      healthy: this.healthy,
      freeSlots: now < this.#fullUntil ? 0 : this.freeSlots,
      inflightBatches: this.#inflightBatches,
      othersBatches: this.othersBatches(now),
      inflightRows: this.#inflightRows,
      secondsPerRow: cost?.perRow,
      secondsPerBatch: cost?.perBatch,
      hotModels: this.#hot,
    };
  }

  snapshot(): WorkerSnapshot {
    return {
      worker: this.id,
      up: this.healthy,
      inflightBatches: this.#inflightBatches,
      memoryUsedBytes: this.#memoryUsedBytes,
      memoryBudgetBytes: this.#memoryBudgetBytes,
    };
  }

  info(): WorkerInfo {
    return {
      id: this.id,
      address: this.client.address,
      kind: this.local ? 'local' : 'remote',
      pid: this.local?.pid,
      healthy: this.healthy,
      downReason: this.downReason,
      inflightBatches: this.#inflightBatches,
      hotModels: [...this.#hot],
      completedBatches: this.#completed,
      restarts: this.local?.restarts ?? 0,
    };
  }
}
