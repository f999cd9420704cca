import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { decodeHttpResponse, httpErrorKind, INFER_HEADER } from './http-codec.ts';
import { inferPath, type HttpTarget } from './http-transport.ts';
import { errorCode, judge, type Transport } from './transport.ts';
import type { Outcome } from './types.ts';

/**
 * REST over cleartext HTTP/2 with prior knowledge (h2c): `sessions` connections, requests multiplexed
 * as streams and spread round robin. A session that fails is replaced on the next request.
 */
export function h2Transport(target: HttpTarget, opts: { sessions: number; timeoutMs: number }): Transport {
  const base = new URL(target.url);
  const path = inferPath(base, target.model, target.version);
  const sessions: (ClientHttp2Session | undefined)[] = Array.from({ length: Math.max(1, opts.sessions) }, () => undefined);
  let turn = 0;
  let closed = false;

  const session = (): ClientHttp2Session => {
    const i = turn++ % sessions.length;
    const s = sessions[i];
    if (s && !s.closed && !s.destroyed) return s;
    const fresh = connect(base.origin);
    // Errors surface on the streams; an unhandled session 'error' would crash the process.
    fresh.on('error', () => undefined);
    fresh.on('close', () => {
      if (sessions[i] === fresh) sessions[i] = undefined;
    });
    sessions[i] = fresh;
    return fresh;
  };

  return {
    send(variant, check, signal): Promise<Outcome> {
      const prepared = target.bodies[variant];
      if (!prepared) return Promise.reject(new Error(`no request body for input set ${variant}`));
      if (closed) return Promise.resolve({ ok: false, error: 'transport: closed' });
      return new Promise<Outcome>((resolve) => {
        let done = false;
        const finish = (o: Outcome): void => {
          if (done) return;
          done = true;
          signal.removeEventListener('abort', onAbort);
          resolve(o);
        };
        let stream: ReturnType<ClientHttp2Session['request']>;
        try {
          stream = session().request({ ':method': 'POST', ':path': path, ...prepared.headers, 'content-length': String(prepared.body.length) });
        } catch (e) {
          finish({ ok: false, error: `transport: ${errorCode(e)}` });
          return;
        }
        const onAbort = (): void => {
          stream.close(constants.NGHTTP2_CANCEL);
          finish({ ok: false, error: 'aborted' });
        };
        signal.addEventListener('abort', onAbort, { once: true });
        stream.setTimeout(opts.timeoutMs, () => {
          stream.close(constants.NGHTTP2_CANCEL);
          finish({ ok: false, error: 'timeout' });
        });
        let status = 0;
        let headerLength: number | undefined;
        const chunks: Buffer[] = [];
        stream.on('response', (headers) => {
          status = Number(headers[':status']);
          const h = headers[INFER_HEADER];
          if (typeof h === 'string') headerLength = Number(h);
        });
        stream.on('data', (chunk: Buffer) => {
          if (check) chunks.push(chunk);
        });
        stream.on('end', () => {
          if (status < 200 || status >= 300) finish({ ok: false, error: httpErrorKind(status) });
          else if (!check) finish({ ok: true });
          else finish(judge(decodeHttpResponse(Buffer.concat(chunks), headerLength), variant, check));
        });
        stream.on('error', (e) => finish({ ok: false, error: `transport: ${errorCode(e)}` }));
        stream.on('close', () => finish({ ok: false, error: 'transport: stream closed' }));
        stream.end(prepared.body);
      });
    },
    async close(): Promise<void> {
      closed = true;
      await Promise.all(sessions.map((s) => (s && !s.closed ? new Promise<void>((r) => s.close(() => r())) : Promise.resolve())));
    },
  };
}
