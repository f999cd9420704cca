import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { gunzip, inflate, inflateRaw } from 'node:zlib';
import { BodyTooLarge, InvalidRequest, RequestCancelled, SluiceError, UnsupportedEncoding } from '../../core/errors.ts';

const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);
const inflateRawAsync = promisify(inflateRaw);

type Headers = Readonly<Record<string, string | string[] | undefined>>;

function single(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h.join(',') : h;
}

/** The error of a body over its limit; `size` is the declared length, or "more than N" once cut off. */
export type TooLarge = (size: string) => SluiceError;

/** Rejects a body whose declared length is already over the limit, before reading a byte of it. */
export function checkDeclaredLength(headers: Headers, limit: number, tooLarge?: TooLarge): void {
  const declared = single(headers['content-length']);
  if (declared !== undefined && /^\d+$/.test(declared.trim()) && Number(declared) > limit) throw tooLarge ? tooLarge(declared.trim()) : BodyTooLarge(limit);
}

/**
 * Reads a request body into one Buffer, never holding more than `limit` bytes: reading stops (and the
 * error is thrown) as soon as the body goes past the limit. The stream is paused, not destroyed, so that
 * the 413 can still be written; the caller closes the connection after it.
 */
export function readBody(stream: Readable, headers: Headers, limit: number, tooLarge?: TooLarge): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    checkDeclaredLength(headers, limit, tooLarge);
    const chunks: Buffer[] = [];
    let total = 0;
    const cleanup = (): void => {
      stream.removeListener('data', onData);
      stream.removeListener('end', onEnd);
      stream.removeListener('error', onError);
      stream.removeListener('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      total += chunk.byteLength;
      if (total > limit) {
        cleanup();
        stream.pause();
        reject(tooLarge ? tooLarge(`more than ${limit}`) : BodyTooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total));
    };
    const onError = (e: Error): void => {
      cleanup();
      reject(InvalidRequest(`failed to read the request body: ${e.message}`));
    };
    const onClose = (): void => {
      cleanup();
      reject(new SluiceError(RequestCancelled.code, RequestCancelled.kind, 'the client went away before sending the whole request body'));
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onError);
    stream.once('close', onClose);
  });
}

function decompressError(encoding: string, limit: number, e: unknown): SluiceError {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
    return new SluiceError(BodyTooLarge.code, BodyTooLarge.kind, `request body exceeds the limit of ${limit} bytes once ${encoding}-decompressed`);
  }
  return InvalidRequest(`failed to decompress the ${encoding} request body: ${err.message}`);
}

/**
 * Undoes a gzip or deflate Content-Encoding. The decompressed size is bounded by the same limit as the
 * body (zlib stops at maxOutputLength), so a small bomb cannot inflate into a huge allocation.
 */
export async function decodeContentEncoding(body: Buffer, headers: Headers, limit: number): Promise<Buffer> {
  const raw = single(headers['content-encoding'])?.trim().toLowerCase();
  if (raw === undefined || raw === '' || raw === 'identity') return body;
  const opts = { maxOutputLength: limit };
  if (raw === 'gzip' || raw === 'x-gzip') {
    try {
      return await gunzipAsync(body, opts);
    } catch (e) {
      throw decompressError('gzip', limit, e);
    }
  }
  if (raw === 'deflate') {
    try {
      return await inflateAsync(body, opts);
    } catch (e) {
      // HTTP's deflate is zlib-wrapped, but some clients send a bare deflate stream: accept both.
      if ((e as NodeJS.ErrnoException).code !== 'Z_DATA_ERROR') throw decompressError('deflate', limit, e);
      try {
        return await inflateRawAsync(body, opts);
      } catch (e2) {
        throw decompressError('deflate', limit, e2);
      }
    }
  }
  throw UnsupportedEncoding(raw.slice(0, 40));
}
