/**
 * The worker host's HTTP plumbing: reading a whole body under a limit, and JSON answers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BodyTooLarge, InvalidRequest } from '../core/errors.ts';

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
