/**
 * The front doors' certificate and key (--http-tls-*, --grpc-tls-*), read at start and again when the
 * files change or on SIGHUP, so that a renewed certificate (cert-manager, a Secret update) is served
 * without a restart. A pair that cannot be read, or whose key does not fit its certificate, is refused
 * and the pair in use stays: a half-written rotation never takes the port's TLS down.
 */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { watchFiles } from './watch-files.ts';

export interface ServerTlsPair {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** Reads and checks a pair; throws an Error naming the file or the mismatch (never the key's content). */
export function readServerTls(certFile: string, keyFile: string): ServerTlsPair {
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new Error(`${what} ${file} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
  };
  const pair = { cert: read(certFile, 'TLS certificate'), key: read(keyFile, 'TLS key') };
  try {
    createSecureContext(pair);
  } catch (e) {
    throw new Error(`TLS certificate ${certFile} and key ${keyFile} do not make a usable pair: ${(e as Error).message}`, { cause: e });
  }
  return pair;
}

/** Calls `onPair` with each new usable pair, `onError` for one that is not; returns the function that stops watching. */
export function watchServerTls(certFile: string, keyFile: string, onPair: (pair: ServerTlsPair, why: string) => void, onError: (err: Error, why: string) => void, pollMs?: number): () => void {
  return watchFiles([certFile, keyFile], (why) => {
    let pair: ServerTlsPair;
    try {
      pair = readServerTls(certFile, keyFile);
    } catch (e) {
      onError(e as Error, why);
      return;
    }
    onPair(pair, why);
  }, pollMs);
}
