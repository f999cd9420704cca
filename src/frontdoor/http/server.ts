import type { Server } from 'node:http';
import http2, { type Http2ServerRequest } from 'node:http2';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import type { AccessGuard } from '../../access/guard.ts';
import type { Config } from '../../config/schema.ts';
import { InvalidRequest, isSluiceError, NoRoute, toSluiceError, type SluiceError } from '../../core/errors.ts';
import type { InferenceService } from '../../core/inference.ts';
import type { SystemSharedMemory } from '../../shm/registry.ts';
import { LogBudget } from '../../telemetry/log-budget.ts';
import { logControlOf, type Logger } from '../../telemetry/logger.ts';
import type { Metrics } from '../../telemetry/metrics.ts';
import type { Tracer } from '../../telemetry/trace.ts';
import { readBody } from './body.ts';
import { BodyLimits } from './body-limit.ts';
import { guardRoutes } from './access.ts';
import { registerGenerateRoutes } from './generate-route.ts';
import { registerInferRoutes } from './infer-route.ts';
import { registerRoutes } from './routes.ts';
import { registerTraceRoutes } from './trace-routes.ts';
import { registerSharedMemoryRoutes } from './shm-routes.ts';
import { registerLoggingRoutes } from './logging-routes.ts';
import { httpStatusOfError } from './status.ts';
import { HttpTransport, type RequestHandler } from './transport.ts';

/** The running REST front door. */
export interface HttpServer {
  readonly port: number;
  /** Tells every client, on its next answer, to close its connection (the drain has begun); the port stays open. */
  beginDrain(): void;
  /** Stops accepting, lets requests in flight finish (bounded by drainTimeoutMs), then closes. */
  close(): Promise<void>;
}

/** What the REST front door is built from. */
export interface HttpServerOptions {
  readonly config: Config;
  readonly service: InferenceService;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Triton's trace extension: sampled infer requests are traced, /v2/trace/setting is served. */
  readonly tracer?: Tracer;
  /** Keys and scopes (--auth-config); absent, every route is open. */
  readonly guard?: AccessGuard;
  /** The system shared-memory extension's regions; absent when it is off (--shared-memory none). */
  readonly sharedMemory?: SystemSharedMemory;
  /** The root logger, whose settings the logging extension changes (absent: `logger`'s own, if it is a root). */
  readonly rootLogger?: Logger;
}

function errorParts(err: unknown): { status: number; message: string; sluice: ReturnType<typeof toSluiceError> | null } {
  if (isSluiceError(err)) return { status: httpStatusOfError(err), message: err.message, sluice: err };
  const fe = err as Partial<FastifyError>;
  // Fastify's own errors (bad URL encoding, ...) carry a 4xx status and a message meant for the client.
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) return { status: fe.statusCode, message: fe.message ?? 'bad request', sluice: fe.statusCode === 404 ? null : InvalidRequest(fe.message ?? 'bad request') };
  const wrapped = toSluiceError(err);
  return { status: httpStatusOfError(wrapped), message: wrapped.message, sluice: wrapped };
}

/** Response header carrying the catalog's stable error code of every error answer. */
export const ERROR_CODE_HEADER = 'sluice-error-code';

/** What Fastify's content-type parser accepts: type "/" subtype, tokens both (RFC 9110), then parameters. */
const MEDIA_TYPE = /^[\w!#$%&'*+.^`|~-]+\/[\w!#$%&'*+.^`|~-]+\s*(?:;|$)/;

/**
 * Logs a failed request. Load shedding is the gateway working as intended, thousands of times a second
 * under overload: the shed counters report it, so it logs at debug. What a client caused (4xx, and 501
 * for a feature it asked for) logs at warn; a fault of the server's (other 5xx but 503) at error with
 * its stack. Both go through the log budget: a client sending the same bad request in a loop gets a
 * few lines per code and a count of the rest, not a line each.
 */
function logFailure(log: ErrorLog, fields: Record<string, unknown>, err: unknown, status: number, sluice: SluiceError | null | undefined, message: string): void {
  if (sluice?.kind === 'RESOURCE_EXHAUSTED' || sluice?.kind === 'RATE_LIMITED') {
    log.logger.debug(fields, message);
    return;
  }
  const serverFault = status >= 500 && status !== 501 && status !== 503;
  log.budget.log(log.logger, serverFault ? 'error' : 'warn', sluice?.code ?? `http ${status}`, serverFault ? { ...fields, err } : fields, message);
}

/** The front door's logger and the budget its error lines share. */
interface ErrorLog {
  readonly logger: Logger;
  readonly budget: LogBudget;
}

function sendError(log: ErrorLog, err: unknown, req: FastifyRequest, reply: FastifyReply): FastifyReply | undefined {
  const { status, message, sluice } = errorParts(err);
  req.sluiceError = sluice;
  const params = req.params as { model?: string } | undefined;
  const fields = { id: req.inferState?.id ?? '', model: params?.model, status, url: req.url, code: sluice?.code };
  logFailure(log, fields, err, status, sluice, message);
  // The client is gone: nothing can be written, and the completion hook has already counted it.
  if (reply.raw.destroyed) return undefined;
  // An oversize body is left unread: close the connection after the answer rather than drain it.
  if (status === 413 && req.raw.httpVersionMajor === 1) reply.header('connection', 'close');
  if (status === 413 && req.raw.httpVersionMajor === 2) {
    // HTTP/2's equivalent: once the answer is out, RST_STREAM(NO_ERROR) tells the client to stop sending.
    const stream = (req.raw as unknown as Http2ServerRequest).stream;
    reply.raw.once('finish', () => stream.close(http2.constants.NGHTTP2_NO_ERROR));
  }
  const code = sluice?.code ?? NoRoute.code;
  // The catalog's stable code, for clients that branch on it (gRPC carries it in its trailer).
  reply.header(ERROR_CODE_HEADER, code);
  if (sluice?.retryAfterSeconds !== undefined) reply.header('retry-after', String(sluice.retryAfterSeconds));
  if (status === 401) reply.header('www-authenticate', 'Bearer realm="sluice"');
  return reply.code(status).type('application/json').send(JSON.stringify({ error: message, code }));
}

/**
 * Starts the REST front door (Open Inference Protocol / KServe v2 with Triton's extensions) on
 * config.host:config.http.port: HTTP/1.1 and h2c on one port, or TLS with ALPN when a certificate is set.
 */
export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const { config, service, metrics, logger, tracer, guard } = opts;
  const errorLog: ErrorLog = { logger, budget: new LogBudget() };
  const limit = config.http.bodyLimitBytes;
  const bodyLimits = new BodyLimits(service, limit);
  let transport: HttpTransport | undefined;
  // Typed as Fastify's logger so that the instance type is the default one the route modules take.
  const fastifyLogger: FastifyBaseLogger = logger;
  const app = Fastify({
    serverFactory: (handler) => {
      transport = new HttpTransport(handler as unknown as RequestHandler, { host: config.host, port: config.http.port, tls: config.http.tls, keepAliveTimeoutMs: config.http.keepAliveTimeoutMs, requestTimeoutMs: config.http.requestTimeoutMs, logger });
      // Fastify only needs a server object to hang on to; HTTP/2 requests reach the same handler.
      return transport.server as Server;
    },
    loggerInstance: fastifyLogger,
    // Fastify's per-request info lines are replaced by this module's own debug line per request.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: limit,
    routerOptions: { maxParamLength: 512 },
    frameworkErrors: (err, req, reply) => {
      sendError(errorLog, err, req, reply);
    },
  });
  app.decorateRequest('inferState', null);
  app.decorateRequest('sluiceError', null);
  // Bodies are read as raw Buffers whatever their content type (curl -d sends form-urlencoded, Triton's
  // client octet-stream): the infer route parses the JSON header itself, and only that slice.
  app.removeAllContentTypeParsers();
  // Any content type is accepted (docs/protocol.md), a malformed one too: Fastify answers 415 to a
  // media type it cannot parse before any parser runs, so such a header is dropped here and the body
  // is read as an untyped one.
  app.addHook('onRequest', (req, _reply, done) => {
    const type = req.headers['content-type'];
    if (type !== undefined && !MEDIA_TYPE.test(type)) delete req.raw.headers['content-type'];
    done();
  });
  app.addContentTypeParser('*', (req, payload, done) => {
    // An infer body is bounded by what a full batch of its model could need (body-limit.ts).
    const model = req.inferState?.bodyLimit;
    readBody(payload, req.headers, model?.bytes ?? limit, model?.tooLarge).then((b) => done(null, b), (e: Error) => done(e, undefined));
  });
  // Fastify parses no body that comes without a content type and without a length (HTTP/2 allows
  // both): read those here, so every POST handler sees its body.
  app.addHook('preHandler', async (req) => {
    if (req.body === undefined && req.method === 'POST') req.body = await readBody(req.raw, req.headers, req.inferState?.bodyLimit?.bytes ?? limit, req.inferState?.bodyLimit?.tooLarge);
  });
  app.setErrorHandler((err, req, reply) => sendError(errorLog, err, req, reply));
  app.setNotFoundHandler((req, reply) => reply.code(404).type('application/json').header(ERROR_CODE_HEADER, NoRoute.code).send(JSON.stringify({ error: NoRoute(req.method, req.url.slice(0, 200)).message, code: NoRoute.code })));
  app.addHook('onResponse', (req, reply, done) => {
    if (req.inferState === null) logger.debug({ method: req.method, url: req.url, status: reply.statusCode, http: req.raw.httpVersion }, 'request');
    done();
  });
  // First: its onRoute hook checks that every route below has an access rule.
  guardRoutes(app, guard);
  registerRoutes(app, service);
  registerTraceRoutes(app, service, tracer);
  registerSharedMemoryRoutes(app, opts.sharedMemory);
  registerLoggingRoutes(app, logControlOf(opts.rootLogger ?? logger));
  registerGenerateRoutes(app, { service, metrics });
  registerInferRoutes(app, { service, metrics, logger, bodyLimitBytes: limit, bodyLimits, tracer, ...(opts.sharedMemory ? { sharedMemory: opts.sharedMemory } : {}) });
  await app.ready();
  const port = await transport!.listen();
  let closing: Promise<void> | undefined;
  return {
    port,
    beginDrain: () => transport!.beginDrain(),
    close: () => (closing ??= (async () => {
      await transport!.close(config.drainTimeoutMs);
      await app.close();
    })()),
  };
}
