/**
 * The gRPC port's TLS: grpc-js takes its certificate from a CertificateProvider and sets it on its
 * server whenever the provider announces a new one. This provider announces the pair read at start,
 * then each usable pair read again when the files change or on SIGHUP (src/config/server-tls.ts); a
 * pair that cannot be used is never announced, so the one in use stays.
 */
import { experimental, type ServerCredentials } from '@grpc/grpc-js';
import { readServerTls, watchServerTls } from '../../config/server-tls.ts';
import type { Logger } from '../../telemetry/logger.ts';

type IdentityListener = Parameters<experimental.CertificateProvider['addIdentityCertificateListener']>[0];

class RotatingIdentity implements experimental.CertificateProvider {
  #pair: { certificate: Buffer; privateKey: Buffer };
  readonly #listeners = new Set<IdentityListener>();

  constructor(cert: Buffer, key: Buffer) {
    this.#pair = { certificate: cert, privateKey: key };
  }

  update(cert: Buffer, key: Buffer): void {
    this.#pair = { certificate: cert, privateKey: key };
    for (const l of this.#listeners) l(this.#pair);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.#listeners.add(listener);
    // After the caller returns: grpc-js registers the server's watcher only once this call is done,
    // and a pair announced before that would never reach the server.
    queueMicrotask(() => {
      if (this.#listeners.has(listener)) listener(this.#pair);
    });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.#listeners.delete(listener);
  }

  // This provider holds no CA: the gRPC port asks no client for a certificate.
  addCaCertificateListener(): void {}

  removeCaCertificateListener(): void {}
}

/** Server credentials whose certificate follows its files; `stop` ends the watching. */
export function rotatingServerCredentials(certFile: string, keyFile: string, logger: Logger): { readonly credentials: ServerCredentials; stop(): void } {
  const first = readServerTls(certFile, keyFile);
  const identity = new RotatingIdentity(first.cert, first.key);
  const stop = watchServerTls(certFile, keyFile, (pair, why) => {
    identity.update(pair.cert, pair.key);
    logger.info({ why, cert: certFile }, 'gRPC TLS certificate rotated');
  }, (err, why) => logger.error({ why, err: err.message }, 'gRPC TLS certificate not rotated; the one in use stays'));
  // grpc-js 1.14 hands its first argument to the credentials as the identity provider and its second as
  // the CA provider (test/http/tls-rotation.test.ts holds it to that): no CA, no client certificates.
  return { credentials: experimental.createCertificateProviderServerCredentials(identity, null, false), stop };
}
