import { setMaxListeners } from 'node:events';
import type { Recorder } from './recorder.ts';
import type { RequestFn } from './transport.ts';
import type { Outcome } from './types.ts';

/** When a step runs: warm-up then measurement, both counted from `startMs` (performance.now()). */
export interface Timing {
  readonly startMs: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** How long requests still in flight at the end may take before they are aborted. */
  readonly drainTimeoutMs: number;
  /** Upper bound on requests in the step, warm-up included. */
  readonly maxRequests: number;
  /** Ends the step early (the operator's Ctrl-C): nothing new is sent, requests in flight finish. */
  readonly stop?: AbortSignal;
}

/** What a loop itself observed, beyond the per-request outcomes the recorder holds. */
export interface LoopStats {
  readonly sent: number;
  readonly aborted: number;
  readonly late: number;
  readonly maxSendLagMs: number;
}

/** Settings of an open loop beyond its timing. */
export interface OpenLoopOptions {
  readonly rate: number;
  /** Requests in flight at most; further due requests wait (and count as late), never dropped. */
  readonly maxOutstanding: number;
  /** A request sent more than this after its intended time counts as late. */
  readonly lateThresholdMs: number;
}

/** Timers fire up to ~1 ms late; sending this much early keeps the schedule without a busy wait. */
const EARLY_MS = 0.25;

async function settle(fn: RequestFn, signal: AbortSignal): Promise<Outcome> {
  try {
    return await fn(signal);
  } catch {
    return { ok: false, error: signal.aborted ? 'aborted' : 'transport: error' };
  }
}

/**
 * Open loop: request i is due at start + i/rate whatever happened to earlier ones. Latency counts from
 * the due time (or the actual send, if that was earlier), so a server that stalls is charged for every
 * request that should have been sent during the stall: coordinated omission is corrected by
 * construction, not estimated afterwards. The schedule is an index, so a backlog costs no memory.
 */
export function runOpenLoop(fn: RequestFn, recorder: Recorder, timing: Timing, opts: OpenLoopOptions): Promise<LoopStats> {
  const intervalMs = 1000 / opts.rate;
  const total = Math.min(timing.maxRequests, Math.floor((opts.rate * (timing.warmupMs + timing.durationMs)) / 1000));
  const endMs = timing.startMs + timing.warmupMs + timing.durationMs;
  const due = (i: number): number => timing.startMs + i * intervalMs;
  const controllers = new Set<AbortController>();
  let next = 0;
  let outstanding = 0;
  let late = 0;
  let maxLag = 0;
  let aborted = 0;
  let timer: NodeJS.Timeout | undefined;
  let deadline: NodeJS.Timeout | undefined;
  let finished = false;

  return new Promise<LoopStats>((resolve) => {
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearTimeout(deadline);
      timing.stop?.removeEventListener('abort', pump);
      resolve({ sent: next, aborted, late, maxSendLagMs: maxLag });
    };

    const launch = (i: number, now: number): void => {
      const dueMs = due(i);
      const lag = now - dueMs;
      if (lag > opts.lateThresholdMs) late += 1;
      if (lag > maxLag) maxLag = lag;
      const basis = Math.min(dueMs, now);
      const ac = new AbortController();
      controllers.add(ac);
      outstanding += 1;
      recorder.noteSent();
      void settle(fn, ac.signal).then((outcome) => {
        controllers.delete(ac);
        outstanding -= 1;
        if (ac.signal.aborted) aborted += 1;
        recorder.record(basis, performance.now(), outcome, dueMs);
        pump();
      });
    };

    const pump = (): void => {
      if (finished) return;
      // Stopped by the operator: the rest of the schedule is dropped, not charged as late or unsent.
      if (timing.stop?.aborted === true && next < total) {
        next = total;
        clearTimeout(timer);
        timer = undefined;
      }
      const now = performance.now();
      while (next < total && outstanding < opts.maxOutstanding && due(next) <= now + EARLY_MS) launch(next++, now);
      if (next >= total) {
        if (outstanding === 0) finish();
        return;
      }
      // At the bound, the next completion pumps again; otherwise wake up for the next due request.
      if (outstanding >= opts.maxOutstanding || timer !== undefined) return;
      // Deliberately ref'd: this timer is the run itself (bounded by the schedule), not background work;
      // unref'd, the process could exit between two requests when nothing else is in flight.
      timer = setTimeout(() => {
        timer = undefined;
        pump();
      }, Math.max(0, due(next) - now - EARLY_MS));
    };

    // Past the end plus the drain time, what was never sent is recorded as such and the rest aborted.
    deadline = setTimeout(() => {
      const unsent = total - next;
      for (let i = next; i < total; i++) recorder.record(due(i), performance.now(), { ok: false, error: 'not sent' });
      next = total;
      if (unsent > 0) late += unsent;
      for (const ac of controllers) ac.abort();
      if (outstanding === 0) finish();
    }, Math.max(0, endMs + timing.drainTimeoutMs - performance.now()));
    deadline.unref();
    timing.stop?.addEventListener('abort', pump, { once: true });
    pump();
  });
}

/**
 * Closed loop: `concurrency` requesters each send, wait, and send again until the end. Requests in
 * flight at the end finish (within the drain time) so that every sent request has an outcome.
 */
export async function runClosedLoop(fn: RequestFn, recorder: Recorder, timing: Timing, concurrency: number): Promise<LoopStats> {
  const endMs = timing.startMs + timing.warmupMs + timing.durationMs;
  const ac = new AbortController();
  // Each request in flight listens on this one signal: up to `concurrency` listeners is expected, not a leak.
  setMaxListeners(concurrency + 16, ac.signal);
  let sent = 0;
  let aborted = 0;
  const deadline = setTimeout(() => ac.abort(), Math.max(0, endMs + timing.drainTimeoutMs - performance.now()));
  deadline.unref();
  const worker = async (): Promise<void> => {
    while (performance.now() < endMs && sent < timing.maxRequests && !ac.signal.aborted && timing.stop?.aborted !== true) {
      sent += 1;
      recorder.noteSent();
      const t0 = performance.now();
      const outcome = await settle(fn, ac.signal);
      if (ac.signal.aborted) aborted += 1;
      recorder.record(t0, performance.now(), outcome);
      // A refused connection fails at once; yield so that a dead server does not starve the event loop.
      if (!outcome.ok) await new Promise<void>((r) => setImmediate(r));
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    clearTimeout(deadline);
  }
  return { sent, aborted, late: 0, maxSendLagMs: 0 };
}
