import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2, { type Http2ServerRequest, type Http2ServerResponse, type Http2Session, type ServerHttp2Session } from 'node:http2';
import net, { type AddressInfo, type Socket } from 'node:net';
import type { TlsConfig } from '../../config/schema.ts';
import { readServerTls, watchServerTls } from '../../config/server-tls.ts';
import type { Logger } from '../../telemetry/logger.ts';

/** The request handler Fastify hands to its serverFactory; it serves HTTP/1 and HTTP/2 compat objects. */
export type RequestHandler = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => void;

/** What the transport needs to know: where to listen and its limits. */
export interface TransportOptions {
  readonly host: string;
  readonly port: number;
  readonly tls: TlsConfig | undefined;
  readonly keepAliveTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly logger: Logger;
}

/** The client connection preface of HTTP/2 (RFC 9113 section 3.4): how h2c with prior knowledge starts. */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const H2_SETTINGS: http2.Settings = { maxConcurrentStreams: 256, initialWindowSize: 1 << 20 };

/**
 * One port for HTTP/1.1 and HTTP/2. Cleartext: Node's h2c server has no HTTP/1 fallback, so a plain TCP
 * server reads the first bytes of each connection and hands the socket to the HTTP/2 server when they
 * are the HTTP/2 preface, else to the HTTP/1 server; both run the same handler. TLS: one secure HTTP/2
 * server with allowHTTP1, ALPN choosing h2 or http/1.1.
 */
/** How long the port must see no new connection or request before a drain closes it. */
const QUIET_MS = 100;

export class HttpTransport {
  /** The server Fastify sees as its own (fastify.server). */
  readonly server: http.Server | http2.Http2SecureServer;
  readonly #listener: net.Server;
  readonly #options: TransportOptions;
  readonly #sockets = new Set<Socket>();
  readonly #sessions = new Set<Http2Session>();
  readonly #h2Sockets = new WeakSet<Socket>();
  /** HTTP/1 requests in flight per socket: a socket with none is idle and may be closed at shutdown. */
  readonly #active = new Map<Socket, number>();
  /** HTTP/1 sockets that carried a request: only these can be idle keep-alive connections. */
  readonly #served = new WeakSet<Socket>();
  #closing = false;
  /** performance.now() of the latest connection or request: close() waits for a quiet port. */
  #lastActivityMs = 0;
  /** The HTTP/1 server behind the cleartext port (it never listens itself). */
  #h1: http.Server | undefined;
  /** Stops re-reading the certificate and key (TLS only). */
  #stopTlsWatch: () => void = () => undefined;

  constructor(handler: RequestHandler, options: TransportOptions) {
    this.#options = options;
    const wrapped = this.#wrap(handler);
    const headersTimeout = Math.min(60_000, options.requestTimeoutMs);
    // Node checks request and header timeouts on an interval (30 s by default): tie it to the timeout.
    const connectionsCheckingInterval = Math.max(100, Math.min(5_000, Math.floor(headersTimeout / 4)));
    if (options.tls) {
      const { certFile, keyFile } = options.tls;
      const secure = http2.createSecureServer({ ...readServerTls(certFile, keyFile), allowHTTP1: true, settings: H2_SETTINGS, noDelay: true }, wrapped);
      // A renewed certificate is served from the next handshake on; connections already open keep theirs.
      this.#stopTlsWatch = watchServerTls(certFile, keyFile, (pair, why) => {
        secure.setSecureContext(pair);
        options.logger.info({ why, cert: certFile }, 'REST TLS certificate rotated');
      }, (err, why) => options.logger.error({ why, err: err.message }, 'REST TLS certificate not rotated; the one in use stays'));
      // allowHTTP1 serves HTTP/1 through the http module with the secure server as its server object.
      Object.assign(secure, { keepAliveTimeout: options.keepAliveTimeoutMs, requestTimeout: options.requestTimeoutMs, headersTimeout, connectionsCheckingInterval });
      this.server = secure;
      this.#listener = secure;
      this.#watchSessions(secure);
    } else {
      const h1 = http.createServer({ keepAliveTimeout: options.keepAliveTimeoutMs, requestTimeout: options.requestTimeoutMs, headersTimeout, connectionsCheckingInterval }, wrapped);
      // h1 never listens itself: 'listening' is what starts its connection tracking, which enforces
      // headersTimeout and requestTimeout on the sockets handed to it.
      h1.emit('listening');
      this.#h1 = h1;
      const h2 = http2.createServer({ settings: H2_SETTINGS }, wrapped);
      this.#watchSessions(h2);
      this.server = h1;
      // Nagle off, as http.createServer has it (net's default is on): a response written in pieces (a
      // server-sent event per token) would otherwise wait for the client's delayed ACK, 40 ms on Linux.
      this.#listener = net.createServer({ noDelay: true }, (socket) => this.#route(socket, h1, h2, headersTimeout));
    }
    // TLS connections are tracked once the handshake is done (the TLS socket is what requests see).
    this.#listener.on(options.tls ? 'secureConnection' : 'connection', (socket: Socket & { alpnProtocol?: string | false }) => {
      if (socket.alpnProtocol === 'h2') this.#h2Sockets.add(socket);
      this.#sockets.add(socket);
      this.#lastActivityMs = performance.now();
      socket.once('close', () => {
        this.#sockets.delete(socket);
        this.#active.delete(socket);
      });
    });
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#listener.once('error', reject);
      this.#listener.listen(this.#options.port, this.#options.host, () => {
        this.#listener.removeListener('error', reject);
        resolve((this.#listener.address() as AddressInfo).port);
      });
    });
  }

  /**
   * The start of a drain, while the port still answers: from now on every HTTP/1 response carries
   * Connection: close and its connection ends once it is written, and HTTP/2 sessions get GOAWAY, so
   * each client learns on its next answer to open a new connection rather than write into one that
   * close() will end. Idle keep-alive connections are left open (closing them now races the client's
   * next write); their next request is answered the same way.
   */
  beginDrain(): void {
    if (this.#closing) return;
    this.#closing = true;
    for (const session of this.#sessions) session.close();
  }

  /**
   * Stops accepting connections, lets every request in flight finish (HTTP/1: its response carries
   * Connection: close; HTTP/2: GOAWAY, then open streams complete), closes idle keep-alive connections
   * at once, and destroys whatever is still open after `drainMs`.
   */
  async close(drainMs: number): Promise<void> {
    this.#stopTlsWatch();
    this.beginDrain();
    const deadline = Date.now() + drainMs;
    // The port stays open until no connection or request has come for QUIET_MS (bounded by the
    // drain): a client answered "Connection: close" a moment ago may be connecting again to send its
    // next request, and closing the listener now would reset that connection after it was written.
    while (performance.now() - this.#lastActivityMs < QUIET_MS && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, QUIET_MS / 4).unref());
    }
    const stopped = new Promise<void>((resolve) => this.#listener.close(() => resolve()));
    for (const session of this.#sessions) session.close();
    for (const socket of this.#sockets) {
      // A connection whose first request is still on its way is left to send it (and be answered).
      if (!this.#h2Sockets.has(socket) && this.#served.has(socket) && (this.#active.get(socket) ?? 0) === 0) socket.destroy();
    }
    while (this.#sockets.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20).unref());
    }
    for (const socket of this.#sockets) socket.destroy();
    // Stops the HTTP/1 server's timeout checks (it reports that it was not listening: expected).
    this.#h1?.close(() => undefined);
    await stopped;
  }

  #wrap(handler: RequestHandler): RequestHandler {
    return (req, res) => {
      this.#lastActivityMs = performance.now();
      if (req.httpVersionMajor === 1) {
        const socket = req.socket;
        this.#served.add(socket);
        this.#active.set(socket, (this.#active.get(socket) ?? 0) + 1);
        (res as ServerResponse).once('close', () => {
          const left = (this.#active.get(socket) ?? 1) - 1;
          this.#active.set(socket, left);
          if (this.#closing && left === 0) socket.end();
        });
        // While shutting down, every HTTP/1 response closes its connection after it is written.
        if (this.#closing) res.setHeader('connection', 'close');
      }
      handler(req, res);
    };
  }

  #watchSessions(server: http2.Http2Server | http2.Http2SecureServer): void {
    const { keepAliveTimeoutMs, requestTimeoutMs } = this.#options;
    server.on('session', (session: ServerHttp2Session) => {
      this.#sessions.add(session);
      let streams = 0;
      session.on('stream', (stream) => {
        streams++;
        // An idle stream (a client that stopped sending its body) is reset rather than held forever.
        stream.setTimeout(requestTimeoutMs, () => stream.close(http2.constants.NGHTTP2_CANCEL));
        stream.once('close', () => streams--);
      });
      // Keep-alive for HTTP/2: a session with no open stream for keepAliveTimeoutMs gets a GOAWAY.
      session.setTimeout(keepAliveTimeoutMs, () => {
        if (streams === 0) session.close();
      });
      session.on('error', (e) => this.#options.logger.debug({ err: e }, 'HTTP/2 session error'));
      session.once('close', () => this.#sessions.delete(session));
      if (this.#closing) session.close();
    });
    server.on('sessionError', (e) => this.#options.logger.debug({ err: e }, 'HTTP/2 session error'));
  }

  /** Reads just enough of a new cleartext connection to tell HTTP/2 prior knowledge from HTTP/1. */
  #route(socket: Socket, h1: http.Server, h2: http2.Http2Server, timeoutMs: number): void {
    let buffered: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), timeoutMs).unref();
    const onError = (e: Error): void => this.#options.logger.debug({ err: e }, 'connection error before the first request');
    const onData = (chunk: Buffer): void => {
      buffered = buffered.byteLength === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const n = Math.min(buffered.byteLength, PREFACE.byteLength);
      const isH2 = buffered.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (isH2 && buffered.byteLength < PREFACE.byteLength) return;
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
      socket.pause();
      socket.unshift(buffered);
      if (isH2) {
        this.#h2Sockets.add(socket);
        // The HTTP/2 session takes over the socket and reads what was put back itself.
        h2.emit('connection', socket);
      } else {
        h1.emit('connection', socket);
        socket.resume();
      }
    };
    const onClose = (): void => clearTimeout(timer);
    socket.on('data', onData);
    socket.on('error', onError);
    socket.once('close', onClose);
  }
}
