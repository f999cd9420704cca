import { fork, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../telemetry/logger.ts';
import { RespawnSchedule } from './respawn.ts';

/** How long a worker may take from spawn to its 'ready' message (tsx start-up plus ONNX Runtime). */
export const READY_TIMEOUT_MS = 60_000;
/** How long a stopping worker gets between SIGTERM and SIGKILL. */
export const STOP_TIMEOUT_MS = 10_000;
const BACKOFF_FIRST_MS = 200;
const BACKOFF_MAX_MS = 10_000;
/** A worker that stayed up this long is considered healthy again: its next crash restarts quickly. */
const BACKOFF_RESET_AFTER_MS = 30_000;

/** Events of one supervised worker process. */
export interface LocalWorkerEvents {
  /** The (re)spawned process listens and may be sent work. */
  onReady(pid: number): void;
  /** The process exited without being asked to; `reason` names the exit code or signal. */
  onExit(reason: string): void;
  /** A respawn is about to start (counted in metrics.workerRestarts). */
  onRestart(): void;
}

export interface LocalWorkerOptions {
  readonly id: string;
  /** Unix socket the worker listens on; removed before each spawn, as a crashed worker leaves it behind. */
  readonly socketPath: string;
  /** Flags of src/worker/main.ts other than --listen and --id. */
  readonly args: readonly string[];
  readonly logger: Logger;
  readonly events: LocalWorkerEvents;
}

/**
 * Runs the worker entry point the way this process itself runs: through tsx from the .ts sources, or
 * plain node from the compiled dist/ tree. The tsx loader is resolved here rather than by name so a
 * gateway started from another directory still finds it.
 */
function workerEntry(): { script: string; execArgv: string[] } {
  const fromSource = import.meta.url.endsWith('.ts');
  const script = fileURLToPath(new URL(fromSource ? '../worker/main.ts' : '../worker/main.js', import.meta.url));
  return { script, execArgv: fromSource ? ['--import', import.meta.resolve('tsx')] : [] };
}

/**
 * One local worker process under supervision: spawned on a unix socket, respawned with exponential
 * backoff whenever it exits unasked, stopped with SIGTERM (then SIGKILL) on close.
 */
export class LocalWorker {
  readonly id: string;
  readonly socketPath: string;
  readonly #opts: LocalWorkerOptions;
  #child: ChildProcess | undefined;
  #stopping = false;
  readonly #respawn = new RespawnSchedule({ firstMs: BACKOFF_FIRST_MS, maxMs: BACKOFF_MAX_MS });
  #restarts = 0;

  constructor(opts: LocalWorkerOptions) {
    this.id = opts.id;
    this.socketPath = opts.socketPath;
    this.#opts = opts;
  }

  /** The worker's address for a WorkerClient. */
  get address(): string {
    return `unix:${this.socketPath}`;
  }

  /** Pid of the running process, if one runs. */
  get pid(): number | undefined {
    return this.#child?.exitCode === null && this.#child.signalCode === null ? this.#child.pid : undefined;
  }

  get restarts(): number {
    return this.#restarts;
  }

  /** Spawns the first process; resolves once it is ready, rejects naming why it did not start. */
  async start(): Promise<void> {
    await this.#spawn();
  }

  /** SIGTERM (the worker finishes its batch and exits), SIGKILL after STOP_TIMEOUT_MS; no respawn. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#respawn.cancel();
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      timer.unref();
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.socketPath, { force: true });
  }

  #spawn(): Promise<void> {
    const { script, execArgv } = workerEntry();
    rmSync(this.socketPath, { force: true });
    const args = ['--listen', this.address, '--id', this.id, ...this.#opts.args];
    // The gateway's SLUICE_WORKER_TOKEN_FILE is for remote hosts: inherited, it would make this worker
    // demand a token its gateway does not send it (its socket is private to the gateway anyway).
    const { SLUICE_WORKER_TOKEN_FILE: _remoteOnly, ...env } = process.env;
    const child = fork(script, args, { execArgv, env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' });
    this.#child = child;
    const startedAt = Date.now();
    const log = this.#opts.logger;
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(() => {
        if (ready) return;
        log.error({ worker: this.id }, `worker ${this.id} did not become ready within ${READY_TIMEOUT_MS} ms; killing it`);
        child.kill('SIGKILL');
      }, READY_TIMEOUT_MS);
      timer.unref();
      child.on('message', (m: unknown) => {
        if (ready || typeof m !== 'object' || m === null || (m as { type?: unknown }).type !== 'ready') return;
        ready = true;
        clearTimeout(timer);
        log.info({ worker: this.id, pid: child.pid }, `worker ${this.id} ready`);
        resolve();
        if (!this.#stopping && child.pid !== undefined) this.#opts.events.onReady(child.pid);
      });
      child.on('error', (e) => log.warn({ worker: this.id, err: e }, `worker ${this.id} process error`));
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        // The IPC channel keeps no reference once the child is gone; drop listeners so nothing leaks.
        child.removeAllListeners('message');
        const reason = signal ? `exited on ${signal}` : `exited with code ${code ?? '?'}`;
        if (!ready) reject(new Error(`worker ${this.id} ${reason} before it was ready`));
        if (this.#stopping) return;
        if (Date.now() - startedAt > BACKOFF_RESET_AFTER_MS) this.#respawn.reset();
        log.warn({ worker: this.id, code, signal }, `worker ${this.id} ${reason}; respawning in ${this.#respawn.nextDelayMs} ms`);
        if (ready) this.#opts.events.onExit(reason);
        this.#scheduleRespawn();
      });
    });
  }

  #scheduleRespawn(): void {
    this.#respawn.schedule(() => {
      if (this.#stopping) return;
      this.#restarts++;
      this.#opts.events.onRestart();
      // A failed respawn is logged by the exit handler, which schedules the next attempt.
      this.#spawn().catch(() => undefined);
    });
  }
}
