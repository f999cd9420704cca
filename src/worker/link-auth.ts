/**
 * The worker host's side of the sealed link (docs/worker-protocol.md, Authentication of the link): who
 * may talk to it. Client certificates are checked by TLS itself, at the handshake, so a peer without a
 * certificate from the configured CA never reaches HTTP. A shared token is checked on every request,
 * /health included: a probe that could answer without it would tell anyone the host's models, memory
 * and load.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer as createHttpServer, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { Server as HttpsServer, createServer as createHttpsServer } from 'node:https';
import type { SecureContextOptions } from 'node:tls';
import { sendJson } from './http-io.ts';

/** The worker host's TLS material (PEM contents, not file names). */
export interface WorkerHostTls {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** CA that client certificates must chain to; given, every peer must present one (mutual TLS). */
  readonly ca?: string | Buffer;
}

/**
 * The code of the 401 answer. It belongs to the worker protocol, not to the error catalog: no client
 * ever sees it, since the gateway takes a 401 from a worker for a link failure (a TransportError: the
 * worker is ejected, the batch runs elsewhere), never for a fault of the client's request.
 */
export const UNAUTHENTICATED_CODE = 'SLUICE_WORKER_UNAUTHENTICATED';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * Checks `Authorization: Bearer <token>` against the host's tokens (several while one is rotated) in
 * constant time: both sides are hashed first, so neither the content nor the length of a token leaks
 * through timing, and every token is compared whichever matches.
 */
export class TokenCheck {
  readonly #digests: readonly Buffer[];

  constructor(tokens: string | readonly string[]) {
    const list = typeof tokens === 'string' ? [tokens] : tokens;
    if (list.length === 0 || list.some((tk) => tk === '')) throw new RangeError('a worker token must not be empty');
    this.#digests = list.map(digest);
  }

  /** Undefined when `header` presents the token; else why the request is refused (never echoing it). */
  refusal(header: string | undefined): string | undefined {
    if (header === undefined || header === '') return 'no Authorization header: this worker host requires Authorization: Bearer <token> (the gateway\'s --worker-token-file)';
    const m = /^Bearer[ \t]+(.+?)[ \t]*$/i.exec(header);
    if (!m) return 'the Authorization header is not a Bearer token: this worker host requires Authorization: Bearer <token>';
    const presented = digest(m[1]!);
    let match = false;
    for (const d of this.#digests) match = timingSafeEqual(presented, d) || match;
    return match ? undefined : 'the bearer token presented is not this worker host\'s token';
  }
}

/** Answers 401 with the worker's JSON error shape; the connection closes since its body is not read. */
export function refuseUnauthenticated(res: ServerResponse, reason: string): void {
  res.setHeader('www-authenticate', 'Bearer realm="sluice-worker"');
  res.setHeader('connection', 'close');
  sendJson(res, 401, { code: UNAUTHENTICATED_CODE, kind: 'UNAUTHENTICATED', message: reason });
}

function secureOptions(tls: WorkerHostTls): SecureContextOptions & { requestCert?: boolean; rejectUnauthorized?: boolean } {
  return { cert: tls.cert, key: tls.key, ...(tls.ca !== undefined ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {}), minVersion: 'TLSv1.2' };
}

/** A plain HTTP server, or HTTPS that (given a CA) refuses at the handshake every peer without a valid client certificate. */
export function createWorkerServer(tls: WorkerHostTls | undefined, handler: RequestListener): Server {
  if (tls === undefined) return createHttpServer(handler);
  return createHttpsServer(secureOptions(tls), handler);
}

/**
 * Rotates an HTTPS worker server's certificate, key and CA: new handshakes use them at once, and idle
 * keep-alive connections are closed so that each peer's next request shakes hands under the new
 * material (a peer the new CA no longer trusts is refused then). Connections with a request under way
 * finish it. A host started without TLS cannot start it here (a restart changes the scheme).
 */
export function rotateServerTls(server: Server, tls: WorkerHostTls): void {
  if (!(server instanceof HttpsServer)) throw new Error('this worker host was started without TLS; restart it to serve HTTPS');
  // requestCert is fixed when the server is made: a CA cannot be added or removed by a rotation.
  server.setSecureContext(secureOptions(tls));
  server.closeIdleConnections();
}
