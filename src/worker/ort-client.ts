/**
 * The worker's main-thread side of its ONNX Runtime thread (ort-thread.ts). OrtThread opens sessions
 * there (it is the cache's SessionOpener) and ThreadSession stands in for each one, so the cache's LRU,
 * budget, coalescing and counters stay on the main thread while every InferenceSession lives, runs and
 * is released in the thread.
 */
import type { Device } from '../core/device.ts';
import { Worker } from 'node:worker_threads';
import { WorkerFailed, type SluiceError } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { SessionOpener } from './cache.ts';
import { packCopies, rebuildError, type FromThread, type OpenedSession, type ThreadConfig, type ToThread } from './ort-messages.ts';
import type { RunOptions, RunResult, SessionHandle } from './session.ts';

export interface OrtThreadOptions extends ThreadConfig {
  /** The worker's name, for errors. */
  readonly worker: string;
  readonly logger: Logger;
  /**
   * Called once if the thread dies (an uncaught error in it; a native crash aborts the whole process
   * anyway). Every call in flight or made later fails with the same error.
   */
  readonly onDeath?: (err: SluiceError) => void;
  /** The thread's module, when not ort-thread.ts (tests substitute one that dies). */
  readonly entry?: URL;
}

interface Pending {
  readonly resolve: (m: FromThread) => void;
  readonly reject: (e: SluiceError) => void;
}

/** Request bodies without the id the client assigns. */
type Request = ToThread extends infer M ? (M extends ToThread ? Omit<M, 'id'> : never) : never;

/** How long a thread that reported itself closed may take to end before it is terminated (safely: idle). */
const EXIT_GRACE_MS = 5000;

/**
 * The thread's entry point. From the TypeScript sources the thread needs tsx, and Node 20 applies
 * neither the parent's tsx hooks nor an inherited (or explicit) `--import tsx` in execArgv to a worker's
 * own entry module (it fails with ERR_UNKNOWN_FILE_EXTENSION): a small eval'd bootstrap registers tsx
 * in the thread first, then imports the entry. Compiled to dist, the .js entry loads directly.
 */
function spawn(config: ThreadConfig, module: URL | undefined): Worker {
  const fromSource = import.meta.url.endsWith('.ts');
  const url = module ?? new URL(fromSource ? './ort-thread.ts' : './ort-thread.js', import.meta.url);
  if (!url.pathname.endsWith('.ts')) return new Worker(url, { workerData: config });
  const entry = url.href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(boot, { eval: true, workerData: config });
}

export class OrtThread implements SessionOpener {
  #opts: OrtThreadOptions;
  #worker: Worker;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #provider: Device;
  #dead: SluiceError | undefined;
  #cause = '';
  #closing: Promise<void> | undefined;
  #exited: Promise<number>;

  constructor(opts: OrtThreadOptions) {
    this.#opts = opts;
    this.#provider = opts.device;
    const config: ThreadConfig = { device: opts.device, deviceId: opts.deviceId, cudaFallback: opts.cudaFallback, intraOpThreads: opts.intraOpThreads };
    this.#worker = spawn(config, opts.entry);
    // Idle, the thread must not keep the process alive on its own; a call in flight holds it (see #call).
    this.#worker.unref();
    this.#worker.on('message', (m: FromThread) => this.#onMessage(m));
    this.#worker.on('error', (e) => {
      this.#cause = e.message;
    });
    this.#worker.on('messageerror', (e) => opts.logger.error({ err: e.message }, 'message from the ONNX Runtime thread could not be read'));
    this.#exited = new Promise((resolve) => this.#worker.once('exit', (code) => {
      this.#onExit(code);
      resolve(code);
    }));
  }

  /** The provider sessions really use (cuda until the thread's CUDA probe fails). */
  get provider(): Device {
    return this.#provider;
  }

  async open(model: string, file: string): Promise<SessionHandle> {
    const m = await this.#call({ type: 'open', model, file });
    if (m.type !== 'opened') throw WorkerFailed(this.#opts.worker, `ONNX Runtime thread answered '${m.type}' to open`);
    return new ThreadSession(m.opened, (r, transfer) => this.#call(r, transfer), () => this.#dead !== undefined);
  }

  /**
   * Releases what the thread still holds and lets it end by itself. Call it after the cache closed
   * (every run finished): the close request queues behind anything still in the thread.
   */
  close(): Promise<void> {
    return (this.#closing ??= this.#close());
  }

  async #close(): Promise<void> {
    if (this.#dead) return;
    try {
      await this.#call({ type: 'close' });
    } catch {
      // The thread died meanwhile: #onExit reported it, and there is nothing left to release.
      return;
    }
    const timer = setTimeout(() => {
      this.#opts.logger.warn('ONNX Runtime thread did not end after releasing its sessions; terminating it');
      void this.#worker.terminate();
    }, EXIT_GRACE_MS);
    await this.#exited;
    clearTimeout(timer);
  }

  #call(request: Request, transfer: readonly ArrayBuffer[] = []): Promise<FromThread> {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#nextId++;
    return new Promise<FromThread>((resolve, reject) => {
      if (this.#pending.size === 0) this.#worker.ref();
      this.#pending.set(id, { resolve, reject });
      try {
        this.#worker.postMessage({ ...request, id }, transfer);
      } catch (e) {
        this.#settle(id);
        reject(WorkerFailed(this.#opts.worker, `could not hand a request to the ONNX Runtime thread: ${(e as Error).message}`));
      }
    }).then((m) => {
      if (m.type === 'failed') throw rebuildError(m.error);
      return m;
    });
  }

  #settle(id: number): Pending | undefined {
    const p = this.#pending.get(id);
    this.#pending.delete(id);
    if (this.#pending.size === 0) this.#worker.unref();
    return p;
  }

  #onMessage(m: FromThread): void {
    if (m.type === 'log') {
      this.#opts.logger[m.level](m.obj, m.msg);
      return;
    }
    this.#provider = m.provider;
    this.#settle(m.id)?.resolve(m);
  }

  #onExit(code: number): void {
    // After close() the thread ends by itself with nothing pending: that exit is the expected one.
    if (this.#closing && this.#pending.size === 0) return;
    const why = this.#cause !== '' ? `: ${this.#cause}` : '';
    const err = WorkerFailed(this.#opts.worker, `its ONNX Runtime thread died (exit code ${code}${why}); the worker process exits so that it can be restarted`);
    this.#dead = err;
    const pending = [...this.#pending.keys()];
    for (const id of pending) this.#settle(id)?.reject(err);
    this.#opts.onDeath?.(err);
  }
}

type Call = (request: Request, transfer?: readonly ArrayBuffer[]) => Promise<FromThread>;

/** A session that lives in the ORT thread; names and provider are known here, runs happen there. */
class ThreadSession implements SessionHandle {
  readonly model: string;
  readonly provider: Device;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  #id: number;
  #call: Call;
  #dead: () => boolean;

  constructor(opened: OpenedSession, call: Call, dead: () => boolean) {
    this.model = opened.model;
    this.provider = opened.provider;
    this.inputNames = opened.inputNames;
    this.outputNames = opened.outputNames;
    this.#id = opened.session;
    this.#call = call;
    this.#dead = dead;
  }

  /**
   * Runs in the thread. With options.transfer the inputs' buffers move there (the caller gave them
   * away); otherwise their bytes are copied first, so the caller's tensors stay usable.
   */
  async run(inputs: readonly Tensor[], outputs: readonly string[], options?: RunOptions): Promise<RunResult> {
    const packed = options?.transfer ? { tensors: inputs, transfer: options.transfer } : packCopies(inputs);
    const m = await this.#call({ type: 'run', session: this.#id, inputs: packed.tensors, outputs, enqueuedNs: options?.enqueuedNs }, packed.transfer);
    if (m.type !== 'ran') throw new Error(`ONNX Runtime thread answered '${m.type}' to run`);
    return m.result;
  }

  async release(): Promise<void> {
    // A dead thread took its sessions with it.
    if (this.#dead()) return;
    await this.#call({ type: 'release', session: this.#id });
  }
}
