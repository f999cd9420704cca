import type { HttpBody } from './http-codec.ts';

/**
 * The whole bytes of one HTTP/1.1 POST (request line, headers, body), built once per input set so
 * that sending is a single socket write. HTTP/1.1 is keep-alive unless a side says otherwise.
 */
export function requestBytes(base: URL, path: string, body: HttpBody): Buffer {
  const lines = [`POST ${path} HTTP/1.1`, `Host: ${base.host}`];
  for (const [k, v] of Object.entries(body.headers)) lines.push(`${k}: ${v}`);
  lines.push(`Content-Length: ${body.body.length}`, '', '');
  return Buffer.concat([Buffer.from(lines.join('\r\n'), 'latin1'), body.body]);
}

/** One response as the open loop needs it: status, the body only when it was asked to keep it. */
export interface RawResponse {
  readonly status: number;
  /** The body, when the parser was reset with `keep` (a sampled response, checked later). */
  readonly body: Buffer | undefined;
  /** Inference-Header-Content-Length of a binary-extension response, when the body was kept. */
  readonly inferHeaderLength: number | undefined;
  /** The server will close the connection (Connection: close, or HTTP/1.0). */
  readonly close: boolean;
}

/** A response that is not HTTP/1.1 as this parser reads it; the connection is unusable after it. */
export class ProtocolError extends Error {
  readonly code = 'EPROTO';
}

const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const CRLF = Buffer.from('\r\n', 'latin1');
/** Headers longer than this are a broken server, not a slow one. */
const MAX_HEAD = 64 * 1024;

type BodyMode = 'length' | 'chunked' | 'until-close';

/**
 * A minimal response parser for one request in flight per connection: it finds the end of the head,
 * reads the status and the few headers that delimit the body (Content-Length, Transfer-Encoding:
 * chunked, Connection), and counts body bytes. Only a sampled response's body is copied; every other
 * body is skipped by length, so the hot path allocates nothing per response but the head's string.
 */
export class ResponseParser {
  #head: Buffer | undefined;
  #inHead = true;
  #keep = false;
  #status = 0;
  #close = false;
  #inferLength: number | undefined;
  #mode: BodyMode = 'length';
  #remaining = 0;
  #chunks: Buffer[] = [];
  /** Chunked bodies: bytes not yet parsed (a size line may straddle two reads). */
  #pending: Buffer | undefined;
  #chunkLeft = 0;
  #chunkState: 'size' | 'data' | 'data-crlf' | 'trailer' = 'size';

  /** Prepares for the next response; `keep` copies its body (for a check after the step). */
  reset(keep: boolean): void {
    this.#head = undefined;
    this.#inHead = true;
    this.#keep = keep;
    this.#status = 0;
    this.#close = false;
    this.#inferLength = undefined;
    this.#mode = 'length';
    this.#remaining = 0;
    this.#chunks = [];
    this.#pending = undefined;
    this.#chunkLeft = 0;
    this.#chunkState = 'size';
  }

  /** Feeds bytes from the socket; returns the response once it is complete. Throws ProtocolError. */
  push(data: Buffer): RawResponse | undefined {
    let body = data;
    if (this.#inHead) {
      const head = this.#head ? Buffer.concat([this.#head, data]) : data;
      const end = head.indexOf(HEAD_END);
      if (end < 0) {
        if (head.length > MAX_HEAD) throw new ProtocolError('response head too long');
        this.#head = head;
        return undefined;
      }
      this.#readHead(head.toString('latin1', 0, end));
      this.#inHead = false;
      this.#head = undefined;
      body = head.subarray(end + 4);
      if (this.#mode === 'length' && this.#remaining === 0) return this.#done();
    }
    if (this.#mode === 'length') {
      const take = Math.min(body.length, this.#remaining);
      if (this.#keep && take > 0) this.#chunks.push(Buffer.from(body.subarray(0, take)));
      this.#remaining -= take;
      return this.#remaining === 0 ? this.#done() : undefined;
    }
    if (this.#mode === 'until-close') {
      if (this.#keep && body.length > 0) this.#chunks.push(Buffer.from(body));
      return undefined;
    }
    return this.#chunked(body);
  }

  /** The connection ended: completes a body delimited by the close, or says the response was cut off. */
  end(): RawResponse | undefined {
    return !this.#inHead && this.#mode === 'until-close' ? this.#done() : undefined;
  }

  /** Whether part of a response has arrived (a close now cuts a response off rather than ending idle). */
  get started(): boolean {
    return !this.#inHead || this.#head !== undefined;
  }

  #readHead(text: string): void {
    const lines = text.split('\r\n');
    const m = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0] ?? '');
    if (!m) throw new ProtocolError(`not an HTTP/1.x status line: ${JSON.stringify((lines[0] ?? '').slice(0, 40))}`);
    this.#status = Number(m[2]);
    this.#close = m[1] === '0';
    let length: number | undefined;
    let chunked = false;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === 'content-length') length = Number(value);
      else if (name === 'transfer-encoding') chunked = value.toLowerCase().includes('chunked');
      else if (name === 'connection') this.#close = value.toLowerCase() === 'close' || (this.#close && value.toLowerCase() !== 'keep-alive');
      else if (name === 'inference-header-content-length' && this.#keep) this.#inferLength = Number(value);
    }
    // 1xx, 204 and 304 have no body whatever their headers say (RFC 9112 6.3).
    if (this.#status < 200 || this.#status === 204 || this.#status === 304) {
      this.#mode = 'length';
      this.#remaining = 0;
    } else if (chunked) {
      this.#mode = 'chunked';
    } else if (length !== undefined) {
      if (!Number.isSafeInteger(length) || length < 0) throw new ProtocolError(`bad Content-Length ${length}`);
      this.#mode = 'length';
      this.#remaining = length;
    } else {
      this.#mode = 'until-close';
      this.#close = true;
    }
  }

  #chunked(data: Buffer): RawResponse | undefined {
    let buf = this.#pending ? Buffer.concat([this.#pending, data]) : data;
    this.#pending = undefined;
    for (;;) {
      if (this.#chunkState === 'data') {
        const take = Math.min(buf.length, this.#chunkLeft);
        if (this.#keep && take > 0) this.#chunks.push(Buffer.from(buf.subarray(0, take)));
        this.#chunkLeft -= take;
        buf = buf.subarray(take);
        if (this.#chunkLeft > 0) return undefined;
        this.#chunkState = 'data-crlf';
      }
      const eol = buf.indexOf(CRLF);
      if (eol < 0) {
        if (buf.length > MAX_HEAD) throw new ProtocolError('chunk line too long');
        if (buf.length > 0) this.#pending = Buffer.from(buf);
        return undefined;
      }
      const line = buf.toString('latin1', 0, eol);
      buf = buf.subarray(eol + 2);
      if (this.#chunkState === 'data-crlf') {
        this.#chunkState = 'size';
      } else if (this.#chunkState === 'trailer') {
        // An empty line ends the trailers, and with them the response.
        if (line === '') return this.#done();
      } else {
        const size = parseInt(line, 16);
        if (!Number.isSafeInteger(size) || size < 0) throw new ProtocolError(`bad chunk size ${JSON.stringify(line.slice(0, 20))}`);
        if (size === 0) this.#chunkState = 'trailer';
        else {
          this.#chunkLeft = size;
          this.#chunkState = 'data';
        }
      }
    }
  }

  #done(): RawResponse {
    const body = this.#keep ? Buffer.concat(this.#chunks) : undefined;
    const r: RawResponse = { status: this.#status, body, inferHeaderLength: this.#inferLength, close: this.#close };
    this.reset(false);
    return r;
  }
}
