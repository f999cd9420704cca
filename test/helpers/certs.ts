// Throwaway certificates for the sealed worker link tests, made with the openssl CLI at test time: a CA,
// a server certificate for 127.0.0.1 and a client certificate signed by it, and an unrelated CA with a
// client certificate of its own (which a host trusting the first CA must refuse).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** PEM file paths (all in one temporary folder). */
export interface TestPki {
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** A server certificate for the DNS name workers.sluice.test only (no IP): a host found by discovery. */
  readonly namedCert: string;
  readonly namedKey: string;
  /** A client certificate of another CA, and that CA. */
  readonly strangerCert: string;
  readonly strangerKey: string;
  readonly strangerCaCert: string;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(args: readonly string[]): void {
  execFileSync('openssl', args, { stdio: 'pipe' });
}

function makeCa(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  openssl(['req', '-x509', ...EC, '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${name}`]);
  return { cert, key };
}

function issue(dir: string, name: string, ca: { cert: string; key: string }, extensions: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, extensions);
  openssl(['req', ...EC, '-keyout', key, '-out', csr, '-subj', `/CN=${name}`]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', cert, '-days', '1', '-extfile', ext]);
  return { cert, key };
}

/** Makes the certificates in `dir`; undefined when openssl is not installed (the caller skips). */
export function makeTestPki(dir: string): TestPki | undefined {
  try {
    openssl(['version']);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const ca = makeCa(dir, 'link-ca');
  const server = issue(dir, 'worker-host', ca, 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  const client = issue(dir, 'gateway', ca, 'extendedKeyUsage=clientAuth\n');
  const named = issue(dir, 'named-worker-host', ca, 'subjectAltName=DNS:workers.sluice.test\nextendedKeyUsage=serverAuth\n');
  const otherCa = makeCa(dir, 'stranger-ca');
  const stranger = issue(dir, 'stranger', otherCa, 'extendedKeyUsage=clientAuth\n');
  return {
    caCert: ca.cert, serverCert: server.cert, serverKey: server.key, clientCert: client.cert, clientKey: client.key, namedCert: named.cert, namedKey: named.key,
    strangerCert: stranger.cert, strangerKey: stranger.key, strangerCaCert: otherCa.cert,
  };
}
