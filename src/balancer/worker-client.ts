import type { Readable } from 'node:stream';
import { Pool } from 'undici';
import { UploadMissing } from '../core/errors.ts';
import type { BatchJob } from '../core/execution.ts';
import type { UploadStore } from '../repository/uploads.ts';
import {
  FRAME_CONTENT_TYPE,
  WORKER_PATHS,
  chunksByteLength,
  decodeInferResponse,
  encodeInferRequest,
  errorFromWorker,
  modelNames,
  type FrameResult,
  type LoadResult,
  type ModelRef,
  type UnloadResult,
  type WorkerHealth,
} from '../worker/protocol.ts';
import { UPLOAD_CONTENT_TYPE, encodeUpload } from '../worker/upload-frame.ts';
import { TransportError, WorkerAnswerError, type WorkerLink } from './link.ts';

/** Timeouts of one worker's client; every call is bounded by one of them. */
export interface WorkerClientTimeouts {
  readonly connectMs: number;
  readonly healthMs: number;
  /** A batch, including a model load the worker does first on a cache miss. */
  readonly batchMs: number;
  readonly loadMs: number;
}

/**
 * How the gateway proves itself to a sealed worker host and checks the host (docs/worker-protocol.md,
 * Authentication of the link): the contents of the --worker-token-file and --worker-tls-* files.
 */
export interface LinkCredentials {
  /** Sent as `Authorization: Bearer` on every request. */
  readonly token?: string;
  /** For https:// workers: the CA that verifies the host (else the system's), and a client certificate. */
  readonly tls?: { readonly ca?: Buffer; readonly cert?: Buffer; readonly key?: Buffer; readonly servername?: string };
}

/**
 * Speaks src/worker/protocol.ts to one worker over an undici Pool of persistent connections: a unix
 * socket for `unix:/path`, TCP for `http://host:port` and TLS for `https://host:port`, the same code
 * each way.
 */
export class WorkerClient implements WorkerLink {
  readonly worker: string;
  readonly address: string;
  #pool: Pool;
  readonly #timeouts: WorkerClientTimeouts;
  readonly #connections: number;
  /** Headers of every request: the bearer token, when the link has one. */
  #auth: Record<string, string>;
  /** The link's credentials now (a function when they rotate), and those the pool and headers were made with. */
  readonly #credentials: () => LinkCredentials;
  #applied: LinkCredentials;
  /** Where uploaded versions' files are read back from, for a worker that lacks them. */
  readonly #uploads: Pick<UploadStore, 'bundle'> | undefined;
  /** Uploads being sent to this worker: concurrent misses of one source send it once. */
  readonly #sending = new Map<string, Promise<void>>();

  /**
   * `credentials` as a function are the link's current ones: when it answers another object (the files
   * were rotated), the next request presents the new token, and new TLS material gets a new connection
   * pool while the old one finishes what it carries.
   */
  constructor(worker: string, address: string, connections: number, timeouts: WorkerClientTimeouts, credentials: LinkCredentials | (() => LinkCredentials) = {}, uploads?: Pick<UploadStore, 'bundle'>) {
    this.worker = worker;
    this.address = address;
    this.#timeouts = timeouts;
    this.#connections = connections;
    this.#uploads = uploads;
    const fixed = credentials;
    this.#credentials = typeof fixed === 'function' ? fixed : () => fixed;
    this.#applied = this.#credentials();
    this.#auth = authHeaders(this.#applied);
    this.#pool = this.#newPool(this.#applied);
  }

  /** Takes rotated credentials: the token at once, TLS material through a new pool (the old one drains). */
  #refresh(): void {
    const now = this.#credentials();
    if (now === this.#applied) return;
    const before = this.#applied;
    this.#applied = now;
    this.#auth = authHeaders(now);
    if (new URL(this.address).protocol !== 'https:' || sameTls(before.tls, now.tls)) return;
    const old = this.#pool;
    this.#pool = this.#newPool(now);
    old.close().catch(() => undefined);
  }

  #newPool(credentials: LinkCredentials): Pool {
    const timeouts = this.#timeouts;
    const url = new URL(this.address);
    const common = {
      connections: this.#connections,
      // One request per connection at a time: a pipelined batch would wait behind a long one anyway, and
      // a dropped connection would take every request queued on it down with it.
      pipelining: 1,
      connectTimeout: timeouts.connectMs,
      headersTimeout: timeouts.batchMs,
      bodyTimeout: timeouts.batchMs,
      keepAliveTimeout: 60_000,
    };
    if (url.protocol === 'unix:') return new Pool('http://localhost', { ...common, socketPath: url.pathname });
    if (url.protocol === 'http:') return new Pool(url.origin, common);
    // undici verifies the host's certificate (rejectUnauthorized stays on) against `ca` and its name.
    if (url.protocol === 'https:') return new Pool(url.origin, { ...common, connect: { ...credentials.tls } });
    throw new Error(`worker address '${this.address}' must be http://host:port, https://host:port or unix:/path`);
  }

  async health(): Promise<WorkerHealth> {
    const body = await this.#call('GET', WORKER_PATHS.health, undefined, this.#timeouts.healthMs);
    return this.#json(body, WORKER_PATHS.health) as WorkerHealth;
  }

  async load(ref: ModelRef): Promise<LoadResult> {
    const body = await this.#withUpload(ref.source, () => this.#call('POST', WORKER_PATHS.load, jsonBody(ref), this.#timeouts.loadMs));
    const r = this.#json(body, WORKER_PATHS.load) as LoadResult;
    // Evicted model names become metric labels: only a list of model names is taken.
    return r.evicted === undefined ? r : { ...r, evicted: modelNames(r.evicted, 'evicted') };
  }

  async unload(ref: ModelRef): Promise<UnloadResult> {
    const body = await this.#call('POST', WORKER_PATHS.unload, jsonBody(ref), this.#timeouts.healthMs);
    return this.#json(body, WORKER_PATHS.unload) as UnloadResult;
  }

  /** Runs one batch; `cancel` fails it early (the pool cancels the batches of a worker it ejects). */
  async infer(job: BatchJob, cancel?: AbortSignal): Promise<FrameResult> {
    const chunks = encodeInferRequest(job);
    const send = (): Promise<Buffer> => this.#call('POST', WORKER_PATHS.infer, { chunks, type: FRAME_CONTENT_TYPE }, this.#timeouts.batchMs, cancel);
    const body = await (job.source === undefined ? send() : this.#withUpload(job.source, send));
    try {
      return decodeInferResponse(body);
    } catch (e) {
      throw new TransportError(this.worker, `sent an unreadable batch result: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Closes idle connections and fails requests still queued in the pool (after a drain, nothing is). */
  async close(): Promise<void> {
    await this.#pool.destroy().catch(() => undefined);
  }

  /**
   * Runs a call for an uploaded version; a worker that answers it lacks the files (a fresh or restarted
   * process, a host that evicted them) is sent them, and the call is made once more.
   */
  async #withUpload<T>(source: string | undefined, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (e) {
      if (source === undefined || this.#uploads === undefined || !(e instanceof WorkerAnswerError) || e.error.code !== UploadMissing.code) throw e;
    }
    let sending = this.#sending.get(source);
    if (!sending) {
      const uploads = this.#uploads;
      sending = (async () => {
        const chunks = encodeUpload(await uploads.bundle(source));
        await this.#call('POST', WORKER_PATHS.upload, { chunks, type: UPLOAD_CONTENT_TYPE }, this.#timeouts.loadMs);
      })().finally(() => this.#sending.delete(source));
      this.#sending.set(source, sending);
    }
    await sending;
    return call();
  }

  async #call(method: 'GET' | 'POST', path: string, body: { chunks: Buffer[]; type: string } | undefined, timeoutMs: number, cancel?: AbortSignal): Promise<Buffer> {
    // headersTimeout restarts on a slow trickle of bytes; this timer bounds the whole exchange. One
    // short-lived controller per request, fed by the caller's signal through a listener removed below:
    // AbortSignal.any over a long-lived signal leaks its dependants on Node 20.
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError')), timeoutMs);
    timer.unref();
    const forward = (): void => ac.abort(cancel?.reason);
    if (cancel?.aborted) forward();
    else cancel?.addEventListener('abort', forward, { once: true });
    this.#refresh();
    let status: number;
    let payload: Buffer;
    try {
      const res = await this.#pool.request({
        method,
        path,
        headers: body ? { ...this.#auth, 'content-type': body.type, 'content-length': String(chunksByteLength(body.chunks)) } : this.#auth,
        body: body ? coalesce(body.chunks) : null,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: ac.signal,
      });
      status = res.statusCode;
      payload = Buffer.from(await res.body.arrayBuffer());
    } catch (e) {
      throw new TransportError(this.worker, describeTransportFailure(e, timeoutMs), { cause: e });
    } finally {
      clearTimeout(timer);
      cancel?.removeEventListener('abort', forward);
    }
    // A host that refuses our credentials is a broken link, not an answer about the batch: the batch may
    // run elsewhere, and the client (whose own key may be fine) must not see a 401 for it.
    if (status === 401) throw new TransportError(this.worker, `worker host refused the link (HTTP 401): ${errorFromWorker(this.worker, status, payload).message}`);
    if (status !== 200) throw new WorkerAnswerError(status, errorFromWorker(this.worker, status, payload));
    return payload;
  }

  #json(body: Buffer, path: string): unknown {
    try {
      return JSON.parse(body.toString('utf8'));
    } catch (e) {
      throw new TransportError(this.worker, `answered ${path} with invalid JSON: ${(e as Error).message}`, { cause: e });
    }
  }
}

/** Up to this size a body is copied into one buffer: one socket write (one wake-up of the worker) instead of one per tensor. */
const COALESCE_BYTES = 64 * 1024;

function coalesce(chunks: Buffer[]): Buffer | Readable {
  const length = chunksByteLength(chunks);
  if (chunks.length === 1) return chunks[0]!;
  if (length <= COALESCE_BYTES) return Buffer.concat(chunks, length);
  // undici writes an iterable body chunk by chunk (its documented body types include Iterable; its
  // typings lag): large tensors go out without one more copy.
  return chunks as unknown as Readable;
}

function authHeaders(c: LinkCredentials): Record<string, string> {
  return c.token === undefined ? {} : { authorization: `Bearer ${c.token}` };
}

function sameTls(a: LinkCredentials['tls'], b: LinkCredentials['tls']): boolean {
  const same = (x: Buffer | undefined, y: Buffer | undefined): boolean => (x === undefined ? y === undefined : y !== undefined && x.equals(y));
  return same(a?.ca, b?.ca) && same(a?.cert, b?.cert) && same(a?.key, b?.key) && a?.servername === b?.servername;
}

function jsonBody(value: unknown): { chunks: Buffer[]; type: string } {
  return { chunks: [Buffer.from(JSON.stringify(value), 'utf8')], type: 'application/json' };
}

/** A short human reason for a failed exchange, naming the system error code where there is one. */
export function describeTransportFailure(e: unknown, timeoutMs: number): string {
  const err = e as { name?: string; code?: string; message?: string };
  if (err.name === 'TimeoutError' || err.code === 'UND_ERR_HEADERS_TIMEOUT' || err.code === 'UND_ERR_BODY_TIMEOUT') {
    return `no answer within ${timeoutMs} ms`;
  }
  if (err.code === 'UND_ERR_CONNECT_TIMEOUT') return 'connect timed out';
  const code = err.code ? `${err.code}: ` : '';
  return `${code}${err.message ?? String(e)}`;
}
