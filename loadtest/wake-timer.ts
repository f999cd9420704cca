import { Worker } from 'node:worker_threads';

/**
 * The timer thread's loop, plain JavaScript (an eval'd worker needs no loader). It sleeps in
 * Atomics.wait (a futex: microsecond timeouts, no millisecond granularity), spins the last few tens
 * of microseconds, and posts one message at the target time. `seq` changes whenever the target does
 * (a wake-up per change at most); a target of -1 ends the thread.
 */
const SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const seq = new Int32Array(workerData.shared, 0, 1);
const target = new Float64Array(workerData.shared, 8, 1);
const now = () => Number(process.hrtime.bigint()) / 1e6;
let fired = 0;
for (;;) {
  const s = Atomics.load(seq, 0);
  const t = target[0];
  if (t < 0) break;
  // Fired already (or never armed): sleep until the target changes.
  if (s === fired) { Atomics.wait(seq, 0, s); continue; }
  const wait = t - now();
  if (wait > 0.08) { Atomics.wait(seq, 0, s, wait - 0.06); continue; }
  while (now() < t) {}
  fired = s;
  parentPort.postMessage(s);
}
`;

/**
 * Wakes the event loop at a sub-millisecond time without spinning on it. Node's timers fire on
 * millisecond boundaries, and spinning the event loop until a send time steals the core a server on
 * the same machine needs; instead a thread sleeps to the time and wakes the loop with a message, and
 * the loop meanwhile sleeps in epoll, where answers wake it as they arrive.
 */
export class WakeTimer {
  readonly #shared = new SharedArrayBuffer(16);
  readonly #seq = new Int32Array(this.#shared, 0, 1);
  readonly #target = new Float64Array(this.#shared, 8, 1);
  readonly #worker: Worker;
  #onWake: () => void = () => undefined;

  constructor() {
    this.#worker = new Worker(SOURCE, { eval: true, workerData: { shared: this.#shared } });
    this.#worker.on('message', () => this.#onWake());
    // A timer is no reason for the process to stay alive.
    this.#worker.unref();
  }

  /** Calls `fn` once, `ms` from now (the last call wins; a stale wake-up may still arrive). */
  wakeIn(ms: number, fn: () => void): void {
    this.#onWake = fn;
    this.#target[0] = Number(process.hrtime.bigint()) / 1e6 + Math.max(0, ms);
    Atomics.add(this.#seq, 0, 1);
    Atomics.notify(this.#seq, 0);
  }

  async close(): Promise<void> {
    this.#target[0] = -1;
    Atomics.add(this.#seq, 0, 1);
    Atomics.notify(this.#seq, 0);
    await this.#worker.terminate();
  }
}
