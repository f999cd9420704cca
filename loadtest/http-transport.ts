import { Pool } from 'undici';
import { decodeHttpResponse, httpErrorKind, INFER_HEADER, type HttpBody } from './http-codec.ts';
import { errorCode, judge, type Transport } from './transport.ts';
import type { Outcome } from './types.ts';

/** Where to send REST inference requests and with what bodies (one per input set). */
export interface HttpTarget {
  /** Base URL of the server, e.g. http://127.0.0.1:8000 (a path prefix is kept). */
  readonly url: string;
  readonly model: string;
  /** '' = the server's default version. */
  readonly version: string;
  readonly bodies: readonly HttpBody[];
}

/** The infer path of a model under a base URL's path prefix. */
export function inferPath(base: URL, model: string, version: string): string {
  const prefix = base.pathname.replace(/\/+$/, '');
  const v = version !== '' ? `/versions/${encodeURIComponent(version)}` : '';
  return `${prefix}/v2/models/${encodeURIComponent(model)}${v}/infer`;
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/** Reads the whole body (for a check) or drains it chunk by chunk (so the connection is reusable). */
async function readBody(body: AsyncIterable<Buffer>, keep: boolean): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) if (keep) chunks.push(chunk);
  return keep ? Buffer.concat(chunks) : Buffer.alloc(0);
}

/**
 * REST over HTTP/1.1 with undici: a pool of keep-alive connections, one request per connection at a
 * time (no pipelining, as real clients). Used by the open loop and for reference requests.
 */
export function httpTransport(target: HttpTarget, opts: { connections: number; timeoutMs: number }): Transport {
  const base = new URL(target.url);
  const path = inferPath(base, target.model, target.version);
  const pool = new Pool(base.origin, { connections: opts.connections, pipelining: 1, keepAliveTimeout: 30_000, headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs });
  return {
    async send(variant, check, signal): Promise<Outcome> {
      const prepared = target.bodies[variant];
      if (!prepared) throw new Error(`no request body for input set ${variant}`);
      try {
        const res = await pool.request({ path, method: 'POST', headers: prepared.headers, body: prepared.body, signal });
        const ok = res.statusCode >= 200 && res.statusCode < 300;
        const body = await readBody(res.body, ok && check !== undefined);
        if (!ok) return { ok: false, error: httpErrorKind(res.statusCode) };
        if (!check) return { ok: true };
        const header = res.headers[INFER_HEADER];
        const headerLength = typeof header === 'string' ? Number(header) : undefined;
        return judge(decodeHttpResponse(body, headerLength), variant, check);
      } catch (e) {
        if (signal.aborted) return { ok: false, error: 'aborted' };
        const code = errorCode(e);
        return { ok: false, error: TIMEOUT_CODES.has(code) ? 'timeout' : `transport: ${code}` };
      }
    },
    async close(): Promise<void> {
      await pool.destroy();
    },
  };
}
