/**
 * The worker's endpoint: a node:http (or, sealed, https) server on a unix socket or TCP that serves the
 * protocol of protocol.ts; with a token, every request must present it (link-auth.ts). ONNX Runtime
 * runs in the worker's ORT thread (ort-thread.ts), so this event loop stays free to read the next
 * batch while one runs, and to answer /health during long runs and loads.
 * Batches run one at a time in arrival order; a queue here keeps the order and a bound on waiting work
 * visible, and hands the thread one batch ahead so that it never waits for this thread between runs.
 */
import { unlink } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ShuttingDown, Unimplemented, WorkerBusy, toSluiceError, type SluiceError } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';
import { traceNow } from '../core/trace.ts';
import { UploadStore } from '../repository/uploads.ts';
import type { Logger } from '../telemetry/logger.ts';
import { ModelCache, type Lease } from './cache.ts';
import { startRun } from './engine.ts';
import { readBody, sendFrame, sendJson } from './http-io.ts';
import { TokenCheck, createWorkerServer, refuseUnauthenticated, rotateServerTls, type WorkerHostTls } from './link-auth.ts';
import { isLocalOnly, parseListen, type Target } from './listen.ts';
import { OrtThread } from './ort-client.ts';
import { packFrame } from './ort-messages.ts';
import {
  FRAME_CONTENT_TYPE, WORKER_PATHS, decodeInferRequest, encodeInferResponse, encodeWorkerError, workerStatusOf, type FrameResult, type InferFrameHeader, type WorkerHealth,
} from './protocol.ts';
import { repositoryResolver } from './resolve.ts';
import { answerControl } from './control.ts';
import { decodeUpload } from './upload-frame.ts';
import type { WorkerHost, WorkerHostOptions } from './host-options.ts';

/**
 * Batches handed to the ORT thread at once: the running one and the next, so the next starts as soon as
 * the running one ends. More would hold leases (and skip the check for abandoned batches) for nothing.
 */
const THREAD_DEPTH = 2;

const CONTROL_BODY_LIMIT = 64 * 1024;
/**
 * Batches queued behind the running one before /infer says busy. A gateway keeps two in flight per
 * worker (one running, one crossing the socket), so eight leave room for four gateways at full speed;
 * more gateways than that share the worker through their own queues instead of this one.
 */
export const DEFAULT_MAX_QUEUED_BATCHES = 8;

interface QueuedBatch {
  readonly header: InferFrameHeader;
  readonly inputs: Tensor[];
  /** The request frame the inputs are slices of: its memory moves to the ORT thread. */
  readonly body: Buffer;
  readonly res: ServerResponse;
  /** process.hrtime.bigint() at acceptance, for the queue wait the answer reports. */
  readonly enqueuedNs: bigint;
}

export async function startWorkerHost(opts: WorkerHostOptions): Promise<WorkerHost> {
  const host = new Host(opts);
  await host.listen();
  return host;
}

class Host implements WorkerHost {
  address = '';
  #opts: WorkerHostOptions;
  #log: Logger;
  #cache: ModelCache;
  readonly #uploads: UploadStore;
  #ort: OrtThread;
  #server: Server;
  #queue: QueuedBatch[] = [];
  #pumping = false;
  /** The most batches held at once (queued plus in the thread) since the host started. */
  #heldPeak = 0;
  /** Batches handed to the ORT thread whose answers have not come back. */
  #inThread = 0;
  #fatal: SluiceError | undefined;
  #closing: Promise<void> | undefined;
  #active = 0;
  #idle: (() => void)[] = [];
  #socketPath: string | undefined;
  #token: TokenCheck | undefined;
  /**
   * Whether /health may name the host (its id, by default hostname-pid, and its pid): to authenticated
   * peers, or to peers on this machine; an open host on the network keeps them to itself.
   */
  #revealIdentity = true;

  constructor(opts: WorkerHostOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ worker: opts.id });
    this.#ort = new OrtThread({
      device: opts.device, deviceId: opts.deviceId, cudaFallback: opts.cudaFallback, intraOpThreads: opts.intraOpThreads,
      worker: opts.id, logger: this.#log, onDeath: (err) => this.#onThreadDeath(err),
    });
    // Files uploaded with a load stay staged while a version made of them is in the cache.
    this.#uploads = new UploadStore({ budgetBytes: opts.memoryBudgetBytes });
    this.#cache = new ModelCache({
      budgetBytes: opts.memoryBudgetBytes, resolver: repositoryResolver(opts.modelRepository, this.#uploads), opener: this.#ort, logger: this.#log,
      onSourceDropped: (source) => void this.#uploads.drop(source),
    });
    this.#token = opts.token === undefined ? undefined : new TokenCheck(opts.token);
    this.#server = createWorkerServer(opts.tls, (req, res) => this.#handle(req, res));
    // Node ends such a connection by itself; the gateway's log names the cause of a failing link.
    this.#server.on('tlsClientError', (err: Error) => this.#log.debug({ err: err.message }, 'refused a TLS peer'));
    // Outlast the gateway's pooled keep-alive connections so that the client, not the server, closes them.
    this.#server.keepAliveTimeout = 65_000;
  }

  async listen(): Promise<void> {
    let target: Target;
    try {
      target = await this.#bind();
    } catch (e) {
      // Nothing was loaded yet: the thread ends by itself once told to.
      await this.#ort.close();
      throw e;
    }
    if ('path' in target) {
      this.address = `unix:${target.path}`;
    } else {
      const a = this.#server.address() as AddressInfo;
      this.address = a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
    }
    // Every peer proves itself (token, or a client certificate at the handshake), or sits on this machine.
    this.#revealIdentity = this.#token !== undefined || this.#opts.tls?.ca !== undefined || isLocalOnly(target);
    const tls = this.#opts.tls === undefined ? 'off' : this.#opts.tls.ca === undefined ? 'server' : 'mutual';
    this.#log.info({ address: this.address, device: this.#opts.device, budget: this.#opts.memoryBudgetBytes, token: this.#token !== undefined, tls }, 'worker listening');
    for (const name of this.#opts.loadModels ?? []) {
      try {
        const version = await repositoryResolver(this.#opts.modelRepository).latestVersion(name);
        await this.#cache.load(name, version);
      } catch (e) {
        this.#log.error({ model: name, err: toSluiceError(e).message }, 'start-up load failed; the worker serves the other models');
      }
    }
  }

  async #bind(): Promise<Target> {
    const target = parseListen(this.#opts.listen);
    if ('path' in target) {
      // A socket file left by a crashed worker would make listen fail with EADDRINUSE.
      await unlink(target.path).catch(() => undefined);
      this.#socketPath = target.path;
    }
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen('path' in target ? { path: target.path } : { host: target.host, port: target.port }, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    return target;
  }

  close(): Promise<void> {
    return (this.#closing ??= this.#close());
  }

  async #close(): Promise<void> {
    this.#server.close();
    // Accepted work finishes first: queued batches run, then loads settle, then sessions are released
    // (never during a run: releasing under a running session aborts the process).
    await this.#whenIdle();
    await this.#cache.close();
    await this.#uploads.close();
    // The releases the cache just sent are ahead of this in the thread's queue: it ends with nothing held.
    await this.#ort.close();
    this.#server.closeAllConnections();
    if (this.#socketPath) await unlink(this.#socketPath).catch(() => undefined);
    this.#log.info('worker closed');
  }

  rotateSecrets(secrets: { readonly token?: string | readonly string[]; readonly tls?: WorkerHostTls }): void {
    if ((secrets.token === undefined) !== (this.#token === undefined) || (secrets.tls === undefined) !== (this.#opts.tls === undefined)) {
      throw new Error('a rotation keeps the kind of link: a token where there was one, TLS where there was TLS');
    }
    if (secrets.tls) rotateServerTls(this.#server, secrets.tls);
    if (secrets.token !== undefined) this.#token = new TokenCheck(secrets.token);
  }

  #whenIdle(): Promise<void> {
    if (this.#active === 0 && !this.#pumping) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #checkIdle(): void {
    if (this.#active !== 0 || this.#pumping) return;
    const waiters = this.#idle;
    this.#idle = [];
    for (const w of waiters) w();
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    this.#active++;
    res.once('close', () => {
      this.#active--;
      this.#checkIdle();
    });
    const refusal = this.#token?.refusal(req.headers.authorization);
    if (refusal !== undefined) {
      req.resume();
      refuseUnauthenticated(res, refusal);
      return;
    }
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === WORKER_PATHS.health) {
      sendJson(res, 200, this.#health());
      return;
    }
    if (this.#closing) {
      res.setHeader('connection', 'close');
      this.#fail(res, ShuttingDown());
      req.resume();
      return;
    }
    if (req.method === 'POST' && path === WORKER_PATHS.infer) {
      readBody(req, this.#opts.maxBodyBytes ?? 1024 ** 3).then((body) => this.#enqueue(body, res), (e: unknown) => this.#fail(res, toSluiceError(e)));
      return;
    }
    if (req.method === 'POST' && path === WORKER_PATHS.upload) {
      readBody(req, this.#opts.maxBodyBytes ?? 1024 ** 3)
        .then((body) => this.#uploads.stageBundle(decodeUpload(body)))
        .then((result) => sendJson(res, 200, result), (e: unknown) => this.#fail(res, toSluiceError(e)));
      return;
    }
    if (req.method === 'POST' && (path === WORKER_PATHS.load || path === WORKER_PATHS.unload)) {
      readBody(req, CONTROL_BODY_LIMIT)
        .then((body) => answerControl(this.#cache, path, body))
        .then((result) => sendJson(res, 200, result), (e: unknown) => this.#fail(res, toSluiceError(e)));
      return;
    }
    req.resume();
    this.#fail(res, Unimplemented(`worker endpoint ${req.method ?? '?'} ${path ?? ''}`));
  }

  #health(): WorkerHealth {
    const s = this.#cache.snapshot();
    return {
      ...(this.#revealIdentity ? { id: this.#opts.id, pid: process.pid } : {}),
      device: this.#opts.device,
      deviceId: this.#opts.deviceId,
      provider: this.#ort.provider,
      models: s.models,
      memoryUsedBytes: s.memoryUsedBytes,
      memoryBudgetBytes: this.#opts.memoryBudgetBytes,
      running: this.#inThread > 0,
      loads: s.loads,
      evictions: s.evictions,
      cacheHits: s.cacheHits,
      cacheMisses: s.cacheMisses,
      warmupRuns: s.warmupRuns,
      // The batch handed to the thread ahead of the running one still waits: it counts as queued.
      queuedBatches: this.#queue.length + Math.max(0, this.#inThread - 1),
      heldBatches: { bound: (this.#opts.maxQueuedBatches ?? DEFAULT_MAX_QUEUED_BATCHES) + THREAD_DEPTH, peak: this.#heldPeak },
    };
  }

  #enqueue(body: Buffer, res: ServerResponse): void {
    const enqueuedNs = process.hrtime.bigint();
    const max = this.#opts.maxQueuedBatches ?? DEFAULT_MAX_QUEUED_BATCHES;
    let batch: QueuedBatch;
    try {
      if (this.#fatal) throw this.#fatal;
      const { header, inputs } = decodeInferRequest(body);
      if (this.#queue.length >= max) throw WorkerBusy(this.#opts.id, this.#held());
      batch = { header, inputs, body, res, enqueuedNs };
    } catch (e) {
      this.#fail(res, toSluiceError(e));
      return;
    }
    this.#queue.push(batch);
    this.#heldPeak = Math.max(this.#heldPeak, this.#held());
    this.#pump();
  }

  /**
   * Hands queued batches to the ORT thread in arrival order, keeping at most THREAD_DEPTH there. A batch
   * whose model must load first waits for its load here, so later batches cannot overtake it.
   */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    void (async () => {
      while (this.#inThread < THREAD_DEPTH) {
        const b = this.#queue.shift();
        if (!b) break;
        // The gateway gave up on this batch (timeout, worker failover): running it would waste the slot.
        if (b.res.destroyed) continue;
        await this.#dispatch(b);
      }
      this.#pumping = false;
      this.#checkIdle();
    })();
  }

  /** Takes a lease (loading the model if needed) and starts the run; the answer is sent when it ends. */
  async #dispatch(b: QueuedBatch): Promise<void> {
    const { model, version, source } = b.header;
    let lease: Lease;
    try {
      lease = await this.#cache.acquire(model, version, source);
    } catch (e) {
      this.#failBatch(b, e);
      return;
    }
    let run: Promise<FrameResult>;
    try {
      run = startRun(lease, b.header, b.inputs, () => packFrame(b.inputs, b.body), b.enqueuedNs);
    } catch (e) {
      this.#failBatch(b, e);
      return;
    }
    this.#inThread++;
    run.then(
      (result) => {
        this.#runEnded();
        this.#answer(b.res, { ...result, heldBatches: this.#held() });
      },
      (e: unknown) => {
        this.#runEnded();
        this.#failBatch(b, e);
      },
    );
  }

  /** Batches accepted and not yet answered: in the ORT thread (running or next) and queued. */
  #held(): number {
    return this.#queue.length + this.#inThread;
  }

  #runEnded(): void {
    this.#inThread--;
    // The thread already holds the next batch; refill its slot before this answer is encoded and written.
    this.#pump();
  }

  #answer(res: ServerResponse, result: FrameResult): void {
    let chunks: Buffer[];
    try {
      const stamps = result.stamps && { ...result.stamps, replyNs: traceNow() };
      chunks = encodeInferResponse(stamps ? { ...result, stamps } : result);
    } catch (e) {
      this.#fail(res, toSluiceError(e));
      return;
    }
    sendFrame(res, chunks, FRAME_CONTENT_TYPE);
  }

  #failBatch(b: QueuedBatch, e: unknown): void {
    const err = toSluiceError(e);
    if (err.kind === 'INTERNAL') this.#log.error({ model: b.header.model, version: b.header.version, code: err.code, err: err.message }, 'batch failed');
    this.#fail(b.res, err);
  }

  /** The ORT thread died: nothing can run any more, so every accepted batch fails now. */
  #onThreadDeath(err: SluiceError): void {
    this.#fatal = err;
    this.#log.fatal({ err: err.message }, 'ONNX Runtime thread died');
    for (const b of this.#queue.splice(0)) this.#fail(b.res, err);
    this.#opts.onFatal?.(err);
  }

  #fail(res: ServerResponse, err: SluiceError): void {
    if (res.headersSent || res.destroyed) return;
    sendJson(res, workerStatusOf(err.kind), encodeWorkerError(err));
  }
}
