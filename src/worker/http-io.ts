/**
 * The worker host's HTTP plumbing: reading a whole body under a limit, JSON answers, and frame answers
 * written in as few socket writes as their size allows.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BodyTooLarge, InvalidRequest } from '../core/errors.ts';
import { chunksByteLength } from './protocol.ts';

/** Answers up to this size are copied into one buffer so they leave in a single write. */
const COALESCE_BYTES = 1024 * 1024;

/**
 * A 200 answer of `chunks`. Every socket write wakes the gateway: a small answer goes out as one write,
 * a large one corked. Nothing is written to a response whose client has gone.
 */
export function sendFrame(res: ServerResponse, chunks: readonly Buffer[], contentType: string): void {
  if (res.destroyed) return;
  const length = chunksByteLength(chunks);
  res.writeHead(200, { 'content-type': contentType, 'content-length': length });
  if (length <= COALESCE_BYTES) {
    res.end(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, length));
  } else {
    res.cork();
    for (const c of chunks) res.write(c);
    res.end();
    res.uncork();
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Reads a whole body, refusing it as soon as it (or its declared length) passes `limit`. The result is
 * one Buffer.concat: from 4 KiB up it owns its ArrayBuffer, which can then move to the ORT thread.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > limit) {
      req.resume();
      reject(BodyTooLarge(limit));
      return;
    }
    const chunks: Buffer[] = [];
    let total = 0;
    req.on('data', (c: Buffer) => {
      total += c.byteLength;
      if (total > limit) {
        req.destroy();
        reject(BodyTooLarge(limit));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks, total)));
    req.on('error', (e) => reject(InvalidRequest(`request body could not be read: ${e.message}`)));
  });
}
