import http2, { type Http2ServerResponse } from 'node:http2';
import { promisify } from 'node:util';
import { deflate, gzip } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { toSluiceError, type SluiceError } from '../../core/errors.ts';
import type { InferRequest, InferenceService } from '../../core/inference.ts';
import type { SystemSharedMemory } from '../../shm/registry.ts';
import { inferWithSharedMemory } from '../../shm/tensors.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { UNKNOWN_MODEL_LABEL, type Metrics, type RequestStatus } from '../../telemetry/metrics.ts';
import type { FrontDoorTrace, Tracer } from '../../telemetry/trace.ts';
import { decodeContentEncoding } from './body.ts';
import type { BodyLimit, BodyLimits } from './body-limit.ts';
import { decodeInferBody, decodeRawBody, parseHeaderLength, type InferContext, type RawInputSpec } from './infer-request.ts';
import { encodeInferResponse } from './infer-response.ts';
import { checkModelParams, type ModelParams } from './routes.ts';
import { requestStatusOfError, requestStatusOfHttp } from './status.ts';

const gzipAsync = promisify(gzip);
const deflateAsync = promisify(deflate);

/** What the infer route needs from the server. */
export interface InferRouteOptions {
  readonly service: InferenceService;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly bodyLimitBytes: number;
  /** Per-model body limits: a body larger than a full batch of its model is refused before it is read. */
  readonly bodyLimits: BodyLimits;
  readonly tracer?: Tracer;
  /** The system shared-memory extension's regions; absent when it is off (--shared-memory none). */
  readonly sharedMemory?: SystemSharedMemory;
}

/** Per-request state of an infer request, kept on the Fastify request. */
export interface InferState {
  readonly arrivalMs: number;
  readonly abort: AbortController;
  /** The client's request id once the body is decoded (for logs). */
  id: string;
  /** Which worker ran it, in a batch of how many rows (for logs). */
  worker?: string;
  batchRows?: number;
  /** Set when the tracer sampled the request. */
  readonly trace?: FrontDoorTrace;
  /** The model's body limit, when tighter than the global one (the body readers apply it). */
  readonly bodyLimit?: BodyLimit;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the infer routes' onRequest hook. */
    inferState: InferState | null;
    /** The SluiceError the request failed with, if any (for the metric's status label). */
    sluiceError: SluiceError | null;
  }
}

/**
 * The response encoding the client accepts, gzip preferred: responses are compressed only when asked
 * (Accept-Encoding) and only here, where tensors make bodies large.
 */
export function negotiateEncoding(header: string | string[] | undefined): 'gzip' | 'deflate' | undefined {
  if (header === undefined) return undefined;
  const accepted = new Set<string>();
  for (const part of (Array.isArray(header) ? header.join(',') : header).split(',')) {
    const [token = '', ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    if (q !== undefined && !(Number(q.slice(2)) > 0)) continue;
    accepted.add(token.trim());
  }
  if (accepted.has('gzip') || accepted.has('x-gzip')) return 'gzip';
  if (accepted.has('deflate')) return 'deflate';
  return undefined;
}

function rawInputOf(service: InferenceService, model: string, version: string): RawInputSpec | undefined {
  const inputs = service.modelMetadata(model, version).inputs;
  return inputs.length === 1 ? inputs[0] : undefined;
}

/**
 * Whether the whole response went out. HTTP/1: 'finish' happened (writableFinished). HTTP/2: the
 * compatibility layer emits 'finish' even for a stream the client reset, so the stream's own close code
 * decides: the response was sent and the stream closed without error.
 */
export function responseCompleted(res: FastifyReply['raw'] | Http2ServerResponse): boolean {
  if (!('stream' in res)) return res.writableFinished;
  return res.headersSent && res.stream.rstCode === http2.constants.NGHTTP2_NO_ERROR;
}

/**
 * Records the request once, when its response is written or its client goes away: the metric
 * (model label bounded by the repository), and one debug line.
 */
function watchCompletion(req: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply, opts: InferRouteOptions, state: InferState): void {
  const res = reply.raw;
  // 'finish': the last byte was handed to the socket (REQUEST_END); 'close' ends a trace 'finish' never saw.
  if (state.trace) res.once('finish', () => state.trace?.end());
  res.once('close', () => {
    state.trace?.end();
    const finished = responseCompleted(res);
    if (!finished) state.abort.abort();
    const name = req.params.model;
    const model = opts.service.hasModel(name) ? name : UNKNOWN_MODEL_LABEL;
    const err = req.sluiceError;
    const status: RequestStatus = !finished ? 'cancelled' : err ? requestStatusOfError(err) : requestStatusOfHttp(res.statusCode);
    const seconds = (performance.now() - state.arrivalMs) / 1000;
    opts.metrics.observeRequest(model, 'http', status, seconds);
    if (req.principal) opts.metrics.observeTenantRequest(req.principal.tenant, status, seconds);
    // The line's fields are built only when it is written: this runs for every request.
    if (opts.logger.isLevelEnabled('debug')) opts.logger.debug({ id: state.id, model: name, status: finished ? res.statusCode : 499, ms: seconds * 1000, http: req.raw.httpVersion, worker: state.worker, batchRows: state.batchRows }, finished ? 'infer' : 'infer abandoned by the client');
  });
}

async function handleInfer(req: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply, opts: InferRouteOptions): Promise<FastifyReply | undefined> {
  const state = req.inferState!;
  const { model, version } = checkModelParams(req.params);
  const trace = state.trace;
  // A compressed body may not inflate past what its model could need either.
  const limit = state.bodyLimit?.bytes ?? opts.bodyLimitBytes;
  const body = await decodeContentEncoding((req.body as Buffer | undefined) ?? Buffer.alloc(0), req.headers, limit);
  const headerLength = parseHeaderLength(req.headers['inference-header-content-length'], body.byteLength);
  const ctx: InferContext = { model, version, arrivalMs: state.arrivalMs, signal: state.abort.signal, trace, sharedMemory: opts.sharedMemory !== undefined };
  const decoded = headerLength === 0 ? decodeRawBody(body, rawInputOf(opts.service, model, version), ctx) : decodeInferBody(body, headerLength, ctx);
  trace?.mark('DECODE_END');
  trace?.identify(decoded.request.id, '');
  state.id = decoded.request.id;
  const tenant = req.principal?.tenant;
  if (!decoded.shm && acceptsEventStream(req.headers.accept)) return streamInfer(reply, opts, tenant === undefined ? decoded.request : { ...decoded.request, tenant });
  const { response, written } = await inferWithSharedMemory(opts.sharedMemory, decoded.shm, decoded.request, (r) => opts.service.infer(tenant === undefined ? r : { ...r, tenant }));
  state.worker = response.worker;
  state.batchRows = response.batchRows;
  trace?.identify('', response.version);
  const encoded = encodeInferResponse(response, decoded.encoding, written);
  reply.code(200).type(encoded.contentType).header('vary', 'accept-encoding');
  if (encoded.headerLength !== undefined) reply.header('inference-header-content-length', String(encoded.headerLength));
  const encoding = negotiateEncoding(req.headers['accept-encoding']);
  if (encoding === undefined) {
    trace?.mark('ENCODE_END');
    return reply.send(encoded.body);
  }
  const compressed = encoding === 'gzip' ? await gzipAsync(encoded.body) : await deflateAsync(encoded.body);
  trace?.mark('ENCODE_END');
  return reply.header('content-encoding', encoding).send(compressed);
}

function acceptsEventStream(accept: string | undefined): boolean {
  return accept !== undefined && /(^|,)\s*text\/event-stream\s*(;|,|$)/i.test(accept);
}

const JSON_ONLY = { binaryDefault: false, binary: new Map<string, boolean>() };

/**
 * REST infer as server-sent events (asked for with Accept: text/event-stream): one `data:` event per
 * answer, in JSON, each with Triton's triton_final_response parameter; a decoupled model answers zero
 * or many times, then a flag-only last event. An error before the first answer is an ordinary error
 * response; after it, the last event is {"error", "code"}.
 */
async function streamInfer(reply: FastifyReply, opts: InferRouteOptions, request: InferRequest): Promise<FastifyReply | undefined> {
  const res = reply.raw;
  let started = false;
  let final = false;
  const event = (body: Record<string, unknown>): void => {
    if (!started) {
      started = true;
      reply.hijack();
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    }
    res.write(`data: ${JSON.stringify(body)}\n\n`);
  };
  try {
    await opts.service.inferStream(request, (r, last) => {
      final ||= last;
      const json = JSON.parse(Buffer.from(encodeInferResponse(r, JSON_ONLY).body).toString('utf8')) as Record<string, unknown>;
      event({ ...json, parameters: { triton_final_response: last } });
    });
    if (!final) event({ model_name: request.model, ...(request.id !== '' && { id: request.id }), outputs: [], parameters: { triton_final_response: true } });
    res.end();
    return undefined;
  } catch (e) {
    if (!started) throw e;
    const err = toSluiceError(e);
    res.end(`data: ${JSON.stringify({ error: err.message, code: err.code })}\n\n`);
    return undefined;
  }
}

/** The Inference-Header-Content-Length as a number when it is one (the handler checks it properly later). */
function binaryHeaderLength(h: string | string[] | undefined): number | undefined {
  return typeof h === 'string' && /^\d{1,15}$/.test(h.trim()) ? Number(h) : undefined;
}

/** POST /v2/models/{m}[/versions/{v}]/infer. */
export function registerInferRoutes(app: FastifyInstance, opts: InferRouteOptions): void {
  for (const url of ['/v2/models/:model/infer', '/v2/models/:model/versions/:version/infer']) {
    app.route<{ Params: ModelParams }>({
      method: 'POST',
      url,
      onRequest: (req, reply, done) => {
        const { model, version = '' } = req.params;
        const trace = opts.tracer?.start(model, 'http');
        const bodyLimit = opts.bodyLimits.limitFor(model, version, binaryHeaderLength(req.headers['inference-header-content-length']));
        const state: InferState = { arrivalMs: performance.now(), abort: new AbortController(), id: '', trace, bodyLimit };
        req.inferState = state;
        watchCompletion(req, reply, opts, state);
        // Refused by its key or scope (access.ts): answered here, where the request is counted.
        if (req.accessError) {
          done(req.accessError);
          return;
        }
        // Refused from the headers alone: not a byte of an oversize body is read, let alone parsed.
        const declared = req.headers['content-length'];
        if (bodyLimit !== undefined && declared !== undefined && /^\d+$/.test(declared) && Number(declared) > bodyLimit.bytes) {
          done(bodyLimit.tooLarge(declared));
          return;
        }
        // Shed from the headers when the model's queue would refuse the request anyway: under overload
        // refusals are most of the traffic, and a refusal that decoded its body first cost almost as
        // much as an answer. The unread body is drained by node:http, and the connection stays open.
        done(opts.service.refuseOnArrival(model, version, state.arrivalMs, req.principal?.tenant));
      },
      handler: (req, reply) => handleInfer(req, reply, opts),
    });
  }
}

