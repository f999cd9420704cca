/**
 * The worker's endpoint: a node:http server on a unix socket or TCP that serves the protocol of
 * protocol.ts. Batches run one at a time in arrival order: session.run blocks this event loop anyway, and
 * a queue in front of it keeps the order and a bound on waiting work visible.
 */
import { unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BodyTooLarge, InvalidRequest, MalformedBody, QueueFull, ShapeMismatch, ShuttingDown, Unimplemented, toSluiceError, type SluiceError } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';
import type { Logger } from '../telemetry/logger.ts';
import { ModelCache } from './cache.ts';
import {
  FRAME_CONTENT_TYPE, WORKER_PATHS, chunksByteLength, decodeInferRequest, encodeInferResponse, encodeWorkerError, parseModelRef, workerStatusOf,
  type InferFrameHeader, type LoadResult, type UnloadResult, type WorkerHealth,
} from './protocol.ts';
import { repositoryResolver } from './resolve.ts';
import { SessionFactory } from './session.ts';

/** Answers up to this size are copied into one buffer so they leave in a single write. */
const COALESCE_BYTES = 1024 * 1024;

/** Everything a worker host needs; main.ts builds it from flags. */
export interface WorkerHostOptions {
  /** 'unix:/path/to.sock' or 'host:port' (port 0 = any free port). */
  readonly listen: string;
  readonly modelRepository: string;
  readonly id: string;
  readonly device: 'cpu' | 'cuda';
  readonly deviceId: number;
  readonly cudaFallback: 'cpu' | 'fail';
  /** ONNX Runtime intra-op threads per session; 0 = every core. */
  readonly intraOpThreads: number;
  readonly memoryBudgetBytes: number;
  /** Models (latest version) to load before the host reports ready; a failure is logged, not fatal. */
  readonly loadModels?: readonly string[];
  readonly logger: Logger;
  /** Batches waiting to run beyond which /infer answers RESOURCE_EXHAUSTED (default 1024). */
  readonly maxQueuedBatches?: number;
  /** Largest /infer body accepted (default 1 GiB). */
  readonly maxBodyBytes?: number;
}

/** A running worker host. */
export interface WorkerHost {
  /** Where it listens: 'unix:/path' or 'host:port' with the bound port. */
  readonly address: string;
  /** Stops accepting, finishes queued and running batches, releases sessions, closes connections. */
  close(): Promise<void>;
}

const CONTROL_BODY_LIMIT = 64 * 1024;

interface QueuedBatch {
  readonly header: InferFrameHeader;
  readonly inputs: Tensor[];
  readonly res: ServerResponse;
}

type Target = { readonly path: string } | { readonly host: string; readonly port: number };

/** Parses a listen address; throws RangeError naming what is wrong. */
export function parseListen(listen: string): Target {
  if (listen.startsWith('unix:')) {
    const path = listen.slice('unix:'.length);
    if (path === '') throw new RangeError(`listen address '${listen}' has no socket path`);
    return { path };
  }
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new RangeError(`listen address '${listen}' is neither unix:/path nor host:port`);
  return { host: (m[1] ?? m[2])!, port };
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
  #sessions: SessionFactory;
  #server: Server;
  #queue: QueuedBatch[] = [];
  #pumping = false;
  #running = false;
  #closing: Promise<void> | undefined;
  #active = 0;
  #idle: (() => void)[] = [];
  #socketPath: string | undefined;

  constructor(opts: WorkerHostOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ worker: opts.id });
    const sessions = (this.#sessions = new SessionFactory({ device: opts.device, deviceId: opts.deviceId, cudaFallback: opts.cudaFallback, intraOpThreads: opts.intraOpThreads, logger: this.#log }));
    this.#cache = new ModelCache({ budgetBytes: opts.memoryBudgetBytes, resolver: repositoryResolver(opts.modelRepository), opener: sessions, logger: this.#log });
    this.#server = createServer((req, res) => this.#handle(req, res));
    // Outlast the gateway's pooled keep-alive connections so that the client, not the server, closes them.
    this.#server.keepAliveTimeout = 65_000;
  }

  async listen(): Promise<void> {
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
    if ('path' in target) {
      this.address = `unix:${target.path}`;
    } else {
      const a = this.#server.address() as AddressInfo;
      this.address = a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
    }
    this.#log.info({ address: this.address, device: this.#opts.device, budget: this.#opts.memoryBudgetBytes }, 'worker listening');
    for (const name of this.#opts.loadModels ?? []) {
      try {
        const version = await repositoryResolver(this.#opts.modelRepository).latestVersion(name);
        await this.#cache.load(name, version);
      } catch (e) {
        this.#log.error({ model: name, err: toSluiceError(e).message }, 'start-up load failed; the worker serves the other models');
      }
    }
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
    this.#server.closeAllConnections();
    if (this.#socketPath) await unlink(this.#socketPath).catch(() => undefined);
    this.#log.info('worker closed');
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
    if (req.method === 'POST' && (path === WORKER_PATHS.load || path === WORKER_PATHS.unload)) {
      readBody(req, CONTROL_BODY_LIMIT)
        .then((body) => this.#control(path, body))
        .then((result) => sendJson(res, 200, result), (e: unknown) => this.#fail(res, toSluiceError(e)));
      return;
    }
    req.resume();
    this.#fail(res, Unimplemented(`worker endpoint ${req.method ?? '?'} ${path ?? ''}`));
  }

  #health(): WorkerHealth {
    const s = this.#cache.snapshot();
    return {
      id: this.#opts.id,
      pid: process.pid,
      device: this.#opts.device,
      deviceId: this.#opts.deviceId,
      provider: this.#sessions.provider,
      models: s.models,
      memoryUsedBytes: s.memoryUsedBytes,
      memoryBudgetBytes: this.#opts.memoryBudgetBytes,
      running: this.#running,
      loads: s.loads,
      evictions: s.evictions,
      cacheHits: s.cacheHits,
      cacheMisses: s.cacheMisses,
      warmupRuns: s.warmupRuns,
      queuedBatches: this.#queue.length,
    };
  }

  async #control(path: string, body: Buffer): Promise<LoadResult | UnloadResult> {
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch (e) {
      throw MalformedBody((e as Error).message);
    }
    const { model, version } = parseModelRef(json);
    if (path === WORKER_PATHS.unload) return { unloaded: await this.#cache.unload(model, version) };
    const r = await this.#cache.load(model, version);
    return { model, version, loadMs: r.loadMs, cacheHit: r.cacheHit };
  }

  #enqueue(body: Buffer, res: ServerResponse): void {
    const max = this.#opts.maxQueuedBatches ?? 1024;
    let batch: QueuedBatch;
    try {
      const { header, inputs } = decodeInferRequest(body);
      if (this.#queue.length >= max) throw QueueFull(header.model, max);
      batch = { header, inputs, res };
    } catch (e) {
      this.#fail(res, toSluiceError(e));
      return;
    }
    this.#queue.push(batch);
    this.#pump();
  }

  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    void (async () => {
      for (let b = this.#queue.shift(); b; b = this.#queue.shift()) {
        // The gateway gave up on this batch (timeout, worker failover): running it would waste the slot.
        if (b.res.destroyed) continue;
        await this.#run(b);
      }
      this.#pumping = false;
      this.#checkIdle();
    })();
  }

  async #run(b: QueuedBatch): Promise<void> {
    const { model, version, rows, outputs } = b.header;
    try {
      const lease = await this.#cache.acquire(model, version);
      let result;
      try {
        const batching = (lease.config?.maxBatchSize ?? 0) > 0;
        for (const t of b.inputs) {
          if (batching && rows > 0 && t.shape[0] !== rows) throw ShapeMismatch(t.name, model, `${rows} rows (the batch's row count) in dimension 0`, JSON.stringify(t.shape));
        }
        this.#running = true;
        result = await lease.session.run(b.inputs, outputs);
      } finally {
        this.#running = false;
        lease.release();
      }
      const chunks = encodeInferResponse({ ...result, cacheHit: lease.cacheHit });
      const length = chunksByteLength(chunks);
      b.res.writeHead(200, { 'content-type': FRAME_CONTENT_TYPE, 'content-length': length });
      // Every socket write wakes the gateway: a small answer goes out as one write, a large one corked.
      if (length <= COALESCE_BYTES) {
        b.res.end(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, length));
      } else {
        b.res.cork();
        for (const c of chunks) b.res.write(c);
        b.res.end();
        b.res.uncork();
      }
    } catch (e) {
      const err = toSluiceError(e);
      if (err.kind === 'INTERNAL') this.#log.error({ model, version, code: err.code, err: err.message }, 'batch failed');
      this.#fail(b.res, err);
    }
  }

  #fail(res: ServerResponse, err: SluiceError): void {
    if (res.headersSent || res.destroyed) return;
    sendJson(res, workerStatusOf(err.kind), encodeWorkerError(err));
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Reads a whole body, refusing it as soon as it (or its declared length) passes `limit`. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > limit) {
      req.resume();
      reject(BodyTooLarge(limit));
      return;
    }
    const chunks: Buffer[] = [];
    let total = 0;
    req.on('data', (c: Buffer) => {
      total += c.byteLength;
      if (total > limit) {
        req.destroy();
        reject(BodyTooLarge(limit));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks, total)));
    req.on('error', (e) => reject(InvalidRequest(`request body could not be read: ${e.message}`)));
  });
}
