import http2 from 'node:http2';
import { Agent, request } from 'undici';

/** One HTTP response as the tests look at it: status, lower-case headers, the raw body bytes. */
export interface HttpResult {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  text(): string;
  json(): any; // eslint-disable-line @typescript-eslint/no-explicit-any -- tests index parsed JSON freely
}

export interface CallOptions {
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Uint8Array;
}

/** A client speaking one transport (HTTP/1.1 or HTTP/2, cleartext or TLS) to one origin. */
export interface HttpClient {
  readonly name: string;
  call(method: string, path: string, opts?: CallOptions): Promise<HttpResult>;
  close(): Promise<void>;
}

function result(status: number, headers: Record<string, string>, body: Buffer): HttpResult {
  return {
    status,
    headers,
    body,
    text: () => body.toString('utf8'),
    json: () => JSON.parse(body.toString('utf8')) as unknown,
  };
}

function flatHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !k.startsWith(':')) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/** HTTP/1.1 over undici (keep-alive pool), optionally TLS with a trusted CA. */
export function h1Client(origin: string, opts: { ca?: Buffer; name?: string } = {}): HttpClient {
  const agent = new Agent({ connect: opts.ca ? { ca: opts.ca } : {}, keepAliveTimeout: 10_000 });
  return {
    name: opts.name ?? 'HTTP/1.1',
    async call(method, path, o = {}) {
      const res = await request(`${origin}${path}`, { method: method as 'GET', headers: o.headers, body: o.body, dispatcher: agent });
      const body = Buffer.from(await res.body.arrayBuffer());
      return result(res.statusCode, flatHeaders(res.headers), body);
    },
    close: () => agent.close(),
  };
}

/** HTTP/2 over one node:http2 session: h2c with prior knowledge, or h2 over TLS (ALPN). */
export function h2Client(origin: string, opts: { ca?: Buffer; name?: string } = {}): HttpClient & { session: http2.ClientHttp2Session } {
  const session = http2.connect(origin, opts.ca ? { ca: opts.ca } : {});
  session.on('error', () => undefined);
  return {
    name: opts.name ?? 'h2c',
    session,
    call(method, path, o = {}) {
      return new Promise<HttpResult>((resolve, reject) => {
        const stream = session.request({ ':method': method, ':path': path, ...o.headers });
        const chunks: Buffer[] = [];
        let status = 0;
        let headers: Record<string, string> = {};
        stream.on('response', (h) => {
          status = Number(h[':status']);
          headers = flatHeaders(h);
        });
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => resolve(result(status, headers, Buffer.concat(chunks))));
        stream.on('error', reject);
        stream.end(o.body === undefined ? undefined : Buffer.from(o.body));
      });
    },
    close: () => new Promise<void>((resolve) => {
      if (session.closed || session.destroyed) resolve();
      else session.close(() => resolve());
    }),
  };
}

/** An infer request body with binary tensors after the JSON header (the binary tensor data extension). */
export function binaryBody(header: unknown, tensors: readonly Uint8Array[]): { body: Buffer; headers: Record<string, string> } {
  const json = Buffer.from(JSON.stringify(header));
  return {
    body: Buffer.concat([json, ...tensors]),
    headers: { 'inference-header-content-length': String(json.byteLength), 'content-type': 'application/octet-stream' },
  };
}

/** Splits a response into its JSON header and binary section. */
export function splitResponse(res: HttpResult): { json: any; binary: Buffer } { // eslint-disable-line @typescript-eslint/no-explicit-any
  const len = res.headers['inference-header-content-length'];
  const end = len === undefined ? res.body.byteLength : Number(len);
  return { json: JSON.parse(res.body.subarray(0, end).toString('utf8')) as unknown, binary: res.body.subarray(end) };
}

/** The `simple` model's request: INPUT0 = 0..15, INPUT1 = 1s, one row. */
export function simpleRequest(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const a = Array.from({ length: 16 }, (_, i) => i);
  return {
    inputs: [
      { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: a },
      { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: a.map(() => 1) },
    ],
    ...extra,
  };
}
