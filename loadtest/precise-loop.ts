import { connect, type Socket } from 'node:net';
import { httpErrorKind } from './http-codec.ts';
import type { LoopStats } from './loops.ts';
import { ResponseParser, type RawResponse } from './raw-http.ts';
import { WakeTimer } from './wake-timer.ts';
import { Recorder, type RecorderExport } from './recorder.ts';
import { errorCode } from './transport.ts';

/** The target of a precise open loop and its connections; fixed for the driver process's life. */
export interface PreciseTarget {
  readonly host: string;
  readonly port: number;
  /** The complete bytes of one request per input set (see requestBytes). */
  readonly requests: readonly Uint8Array[];
  /** Keep-alive connections, one request in flight on each. */
  readonly connections: number;
  readonly timeoutMs: number;
  readonly lateThresholdMs: number;
}

/** One open-loop step: the rate and timing, and which responses to keep for checks. */
export interface PreciseStep {
  readonly rate: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly drainTimeoutMs: number;
  readonly maxRequests: number;
  /** Keep the body of request 0 and one in this many (0: none) for a check after the step. */
  readonly sampleEvery: number;
  /** Bodies kept at most (a bound on the driver's memory whatever the step's length). */
  readonly maxSamples: number;
}

/** A response kept for a check: where it falls and its body; counted only once checked. */
export interface Sample {
  readonly variant: number;
  readonly us: number;
  readonly measured: boolean;
  readonly body: Uint8Array;
  readonly inferHeaderLength: number | undefined;
}

/** What a step produced, sent back to the parent process. */
export interface PreciseResult {
  readonly recorded: RecorderExport;
  readonly loop: LoopStats;
  readonly samples: readonly Sample[];
}

/** What the parent sends the driver process. */
export type DriverCommand =
  | { readonly type: 'init'; readonly target: PreciseTarget }
  | { readonly type: 'step'; readonly step: PreciseStep }
  | { readonly type: 'stop' }
  | { readonly type: 'close' };

/** What the driver process sends back. */
export type DriverReport =
  | { readonly type: 'ready' }
  | { readonly type: 'tick'; readonly qps: number; readonly p99Ms: number; readonly newErrors: number }
  | { readonly type: 'done'; readonly result: PreciseResult }
  | { readonly type: 'error'; readonly message: string };

/**
 * Waits longer than this go to a Node timer, which fires up to about a millisecond late; the rest
 * goes to the wake timer's thread, so sends are not quantised to the timer's granularity.
 */
const TIMER_SLACK_MS = 2;

interface Job {
  readonly i: number;
  readonly variant: number;
  readonly dueMs: number;
  readonly sentMs: number;
  readonly keep: boolean;
}

interface Conn {
  socket: Socket | undefined;
  readonly parser: ResponseParser;
  job: Job | undefined;
  /** The last socket error's code, for the kind of a request the socket's close then fails. */
  lastError: string | undefined;
}

/**
 * The open loop of the driver process: request i is due at start + i/rate (absolute times, never
 * drifting), goes out on a free keep-alive connection, and its latency counts from its due time.
 * When every connection is busy, due requests wait for the next completion and count as late when
 * they go out more than the threshold after their time: coordinated omission corrected, none dropped.
 *
 * Between sends the event loop sleeps in epoll, so answers are read (and timed) as they arrive: on a
 * Node timer while the next send is far, then until a wake-up from a timer thread at the send time
 * (wake-timer.ts). The loop never spins: on a machine of few cores, a spinning generator would take
 * the core the server under test needs.
 */
export class PreciseOpenLoop {
  readonly #t: PreciseTarget;
  readonly #conns: Conn[];
  readonly #free: Conn[] = [];
  readonly #timer = new WakeTimer();
  #run: RunState | undefined;

  constructor(target: PreciseTarget) {
    if (target.requests.length === 0) throw new Error('no request bytes to send');
    this.#t = target;
    this.#conns = Array.from({ length: target.connections }, () => ({ socket: undefined, parser: new ResponseParser(), job: undefined, lastError: undefined }));
    this.#free.push(...this.#conns);
  }

  /** Opens every connection that is down, so that connecting is not charged to the step's first requests. */
  async connect(timeoutMs: number): Promise<void> {
    await Promise.all(this.#conns.filter((c) => c.socket === undefined && c.job === undefined).map((c) => new Promise<void>((resolve) => {
      const s = this.#open(c);
      const timer = setTimeout(resolve, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      s.once('connect', done);
      s.once('close', done);
    })));
  }

  /** Runs one step; `stop()` ends it early (nothing new is sent, requests in flight finish). */
  run(step: PreciseStep): Promise<PreciseResult> {
    if (this.#run) throw new Error('a step is already running');
    return new Promise<PreciseResult>((resolve) => {
      const startMs = performance.now();
      const total = Math.min(step.maxRequests, Math.floor((step.rate * (step.warmupMs + step.durationMs)) / 1000));
      const st: RunState = {
        step, startMs, total, intervalMs: 1000 / step.rate, next: 0, inflight: 0, late: 0, maxLag: 0, aborted: 0,
        recorder: new Recorder(startMs + step.warmupMs, 'due'), samples: [], armed: false, finished: false, stopped: false,
        sweep: undefined, deadline: undefined,
        finish: () => {
          if (st.finished) return;
          st.finished = true;
          clearInterval(st.sweep);
          clearTimeout(st.deadline);
          this.#run = undefined;
          const recorded = st.recorder.export();
          st.recorder.destroy();
          resolve({ recorded, loop: { sent: st.next, aborted: st.aborted, late: st.late, maxSendLagMs: st.maxLag }, samples: st.samples });
        },
      };
      this.#run = st;
      // One sweep for every connection's timeout rather than a timer per request.
      st.sweep = setInterval(() => this.#expire(performance.now()), Math.max(5, Math.min(100, this.#t.timeoutMs / 4)));
      st.deadline = setTimeout(() => this.#drainTimeout(), Math.max(0, step.warmupMs + step.durationMs + step.drainTimeoutMs));
      this.#pump();
    });
  }

  /** The operator's Ctrl-C: the rest of the schedule is dropped, not charged as late or unsent. */
  stop(): void {
    const st = this.#run;
    if (!st) return;
    st.stopped = true;
    this.#pump();
  }

  /** QPS and P99 since the previous call and errors so far, while a step runs (for a progress line). */
  progress(): { qps: number; p99Ms: number; errorsSeen: number } | undefined {
    const st = this.#run;
    return st ? { ...st.recorder.takeInterval(), errorsSeen: st.recorder.errorsSeen } : undefined;
  }

  close(): void {
    for (const c of this.#conns) c.socket?.destroy();
    void this.#timer.close();
  }

  #open(c: Conn): Socket {
    const s = connect({ host: this.#t.host, port: this.#t.port, noDelay: true });
    c.socket = s;
    c.lastError = undefined;
    s.on('data', (data: Buffer) => this.#onData(c, s, data));
    s.on('error', (e) => {
      c.lastError = errorCode(e);
    });
    s.on('close', () => this.#onClose(c, s));
    return s;
  }

  #onData(c: Conn, s: Socket, data: Buffer): void {
    if (c.socket !== s) return;
    if (!c.job) {
      // Bytes nobody asked for: the connection is out of step with its requests.
      s.destroy();
      return;
    }
    let r: RawResponse | undefined;
    try {
      r = c.parser.push(data);
    } catch (e) {
      this.#fail(c, `transport: ${errorCode(e)}`);
      s.destroy();
      return;
    }
    if (r) this.#complete(c, r);
  }

  #onClose(c: Conn, s: Socket): void {
    if (c.socket !== s) return;
    c.socket = undefined;
    if (!c.job) return;
    const r = c.parser.end();
    if (r) this.#complete(c, r);
    else this.#fail(c, `transport: ${c.lastError ?? (c.parser.started ? 'response cut off' : 'ECONNRESET')}`);
  }

  #complete(c: Conn, r: RawResponse): void {
    const st = this.#run;
    const job = c.job;
    c.job = undefined;
    if (r.close) {
      c.socket?.destroy();
      c.socket = undefined;
    }
    this.#free.push(c);
    if (!st || !job) return;
    st.inflight -= 1;
    const now = performance.now();
    const basis = Math.min(job.dueMs, job.sentMs);
    const ok = r.status >= 200 && r.status < 300;
    if (ok && job.keep && r.body && st.samples.length < st.step.maxSamples) {
      const p = st.recorder.place(basis, now, job.dueMs);
      st.samples.push({ variant: job.variant, us: p.us, measured: p.measured, body: r.body, inferHeaderLength: r.inferHeaderLength });
    } else {
      st.recorder.record(basis, now, ok ? { ok: true } : { ok: false, error: httpErrorKind(r.status) }, job.dueMs);
    }
    this.#pump();
  }

  /** Ends a request without a response; its connection is dropped (it may hold a half-read answer). */
  #fail(c: Conn, error: string, aborted = false): void {
    const st = this.#run;
    const job = c.job;
    c.job = undefined;
    const s = c.socket;
    c.socket = undefined;
    s?.destroy();
    this.#free.push(c);
    if (!st || !job) return;
    st.inflight -= 1;
    if (aborted) st.aborted += 1;
    st.recorder.record(Math.min(job.dueMs, job.sentMs), performance.now(), { ok: false, error }, job.dueMs);
    this.#pump();
  }

  #expire(now: number): void {
    for (const c of this.#conns) if (c.job && now - c.job.sentMs > this.#t.timeoutMs) this.#fail(c, 'timeout');
  }

  #drainTimeout(): void {
    const st = this.#run;
    if (!st) return;
    const now = performance.now();
    // What was never sent is recorded as such (and late); what is still in flight is aborted.
    for (let i = st.next; i < st.total; i++) st.recorder.record(st.startMs + i * st.intervalMs, now, { ok: false, error: 'not sent' });
    st.late += st.total - st.next;
    st.total = st.next;
    for (const c of this.#conns) if (c.job) this.#fail(c, 'aborted', true);
    if (st.inflight === 0) st.finish();
  }

  #send(c: Conn, st: RunState, now: number): void {
    const i = st.next++;
    const dueMs = st.startMs + i * st.intervalMs;
    const lag = now - dueMs;
    if (lag > this.#t.lateThresholdMs) st.late += 1;
    if (lag > st.maxLag) st.maxLag = lag;
    const variant = i % this.#t.requests.length;
    const keep = st.step.sampleEvery > 0 && i % st.step.sampleEvery === 0;
    c.job = { i, variant, dueMs, sentMs: now, keep };
    c.parser.reset(keep);
    st.inflight += 1;
    st.recorder.noteSent();
    (c.socket ?? this.#open(c)).write(this.#t.requests[variant]!);
  }

  #pump(): void {
    const st = this.#run;
    if (!st || st.finished) return;
    if (st.stopped && st.next < st.total) st.total = st.next;
    let now = performance.now();
    while (st.next < st.total && st.startMs + st.next * st.intervalMs <= now) {
      const c = this.#free.pop();
      // Every connection busy: the due request waits for the next completion, which pumps again.
      if (!c) return;
      this.#send(c, st, now);
      now = performance.now();
    }
    if (st.next >= st.total) {
      if (st.inflight === 0) st.finish();
      return;
    }
    if (this.#free.length === 0 || st.armed) return;
    const wait = st.startMs + st.next * st.intervalMs - now;
    if (wait > TIMER_SLACK_MS) this.#arm(st, wait - TIMER_SLACK_MS);
    else this.#arm(st, undefined, wait);
  }

  /**
   * Wakes the pump after `ms` on a Node timer (far sends), or at `preciseMs` through the wake timer's
   * thread, with the event loop asleep in epoll meanwhile, woken at once by answers.
   */
  #arm(st: RunState, ms: number | undefined, preciseMs?: number): void {
    st.armed = true;
    const wake = (): void => {
      st.armed = false;
      this.#pump();
    };
    // Ref'd on purpose: this wake-up is the run itself, bounded by the schedule.
    if (ms !== undefined) setTimeout(wake, ms);
    else this.#timer.wakeIn(preciseMs ?? 0, wake);
  }
}

interface RunState {
  readonly step: PreciseStep;
  readonly startMs: number;
  total: number;
  readonly intervalMs: number;
  next: number;
  inflight: number;
  late: number;
  maxLag: number;
  aborted: number;
  readonly recorder: Recorder;
  readonly samples: Sample[];
  armed: boolean;
  finished: boolean;
  stopped: boolean;
  sweep: NodeJS.Timeout | undefined;
  deadline: NodeJS.Timeout | undefined;
  readonly finish: () => void;
}
