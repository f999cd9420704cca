import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { decodeHttpResponse } from './http-codec.ts';
import { inferPath, type HttpTarget } from './http-transport.ts';
import type { LoopStats, Timing } from './loops.ts';
import type { DriverCommand, DriverReport, PreciseResult, PreciseTarget } from './precise-loop.ts';
import { requestBytes } from './raw-http.ts';
import type { Recorder } from './recorder.ts';
import { judge } from './transport.ts';
import type { OutputCheck } from './types.ts';

/** Settings of the HTTP/1.1 open loop beyond the target. */
export interface ForkedLoopOptions {
  readonly connections: number;
  readonly timeoutMs: number;
  readonly lateThresholdMs: number;
  /** Check the first response and one in this many (0: none), after the step. */
  readonly checkEvery: number;
}

/** Sampled bodies kept per step at most; past it, responses are counted unchecked. */
const MAX_SAMPLES = 20_000;

const here = fileURLToPath(import.meta.url);
/** Sources run through tsx, a build runs compiled JavaScript: the driver module is the same kind. */
const fromSource = here.endsWith('.ts');
const DRIVER = fileURLToPath(new URL(fromSource ? './open-driver.ts' : './open-driver.js', import.meta.url));

/**
 * The REST (HTTP/1.1) open loop in a driver process of its own: the parent sends each step's rate and
 * timing, the driver runs the schedule over raw keep-alive sockets and sends back its latency
 * histogram, counts and a sample of response bodies, which are checked here after the step, off the
 * sending path. The process is started on the first step and kept for the driver's life.
 */
export class ForkedOpenLoop {
  readonly #target: PreciseTarget;
  readonly #checkEvery: number;
  #child: ChildProcess | undefined;
  #ready: Promise<void> | undefined;
  #onReport: ((m: DriverReport) => void) | undefined;
  #exit: ((why: string) => void) | undefined;

  constructor(http: HttpTarget, opts: ForkedLoopOptions) {
    const base = new URL(http.url);
    const path = inferPath(base, http.model, http.version);
    this.#target = {
      host: base.hostname.replace(/^\[|\]$/g, ''),
      port: Number(base.port || 80),
      requests: http.bodies.map((b) => requestBytes(base, path, b)),
      connections: opts.connections,
      timeoutMs: opts.timeoutMs,
      lateThresholdMs: opts.lateThresholdMs,
    };
    this.#checkEvery = opts.checkEvery;
  }

  /** Starts the driver process (once); a step's clock should start only after this. */
  prepare(): Promise<void> {
    this.#ready ??= new Promise<void>((resolve, reject) => {
      const child = fork(DRIVER, [], {
        // Only the loader the sources need: the parent's own flags (--test, --watch) are not the driver's.
        execArgv: fromSource ? ['--import', import.meta.resolve('tsx')] : [],
        serialization: 'advanced',
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      this.#child = child;
      child.on('message', (m: DriverReport) => {
        if (m.type === 'ready') resolve();
        else this.#onReport?.(m);
      });
      child.once('exit', (code, signal) => {
        const why = `the open-loop driver process exited (${signal ?? `code ${code}`})`;
        this.#child = undefined;
        this.#ready = undefined;
        reject(new Error(why));
        this.#exit?.(why);
      });
      this.#post({ type: 'init', target: this.#target });
    });
    return this.#ready;
  }

  #post(m: DriverCommand): void {
    this.#child?.send(m);
  }

  /** Runs one open-loop step at `rate` in the driver process; fills `recorder` as an in-process loop would. */
  async run(rate: number, recorder: Recorder, timing: Timing, check: OutputCheck | undefined): Promise<LoopStats> {
    await this.prepare();
    const child = this.#child!;
    child.ref();
    (child.channel as { ref?: () => void } | undefined)?.ref?.();
    const onStop = (): void => this.#post({ type: 'stop' });
    let result: PreciseResult;
    try {
      result = await new Promise<PreciseResult>((resolve, reject) => {
        this.#onReport = (m) => {
          if (m.type === 'tick') recorder.noteRemoteInterval(m.qps, m.p99Ms, m.newErrors);
          else if (m.type === 'done') resolve(m.result);
          else if (m.type === 'error') reject(new Error(`open-loop driver: ${m.message}`));
        };
        this.#exit = (why) => reject(new Error(why));
        // The driver's schedule starts on receipt, a fraction of a millisecond after the parent's clock
        // (prepare() started the process beforehand); the whole schedule is kept either way.
        this.#post({
          type: 'step',
          step: {
            rate, warmupMs: timing.warmupMs, durationMs: timing.durationMs,
            drainTimeoutMs: timing.drainTimeoutMs, maxRequests: timing.maxRequests, sampleEvery: check ? this.#checkEvery : 0, maxSamples: MAX_SAMPLES,
          },
        });
        if (timing.stop?.aborted === true) onStop();
        timing.stop?.addEventListener('abort', onStop, { once: true });
      });
    } finally {
      timing.stop?.removeEventListener('abort', onStop);
      this.#onReport = undefined;
      this.#exit = undefined;
      // Idle between steps: a driver nobody closed must not keep the process alive.
      this.#child?.unref();
      (this.#child?.channel as { unref?: () => void } | undefined)?.unref?.();
    }
    recorder.absorb(result.recorded);
    for (const s of result.samples) {
      const outcome = judge(decodeHttpResponse(Buffer.from(s.body.buffer, s.body.byteOffset, s.body.byteLength), s.inferHeaderLength), s.variant, check);
      recorder.noteChecked(!outcome.ok);
      recorder.recordPlaced(s.us, outcome, s.measured);
    }
    return result.loop;
  }

  async close(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.ref();
    this.#post({ type: 'close' });
    const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
    killer.unref();
    await exited;
    clearTimeout(killer);
  }
}
