/**
 * The settings of the sealed worker link (docs/worker-protocol.md, Authentication of the link): the
 * shared token and the TLS files the gateway presents to remote worker hosts. Read at configuration
 * load so that a missing or empty file stops start-up with a message naming the setting, not a stack
 * trace from the first health probe; the secrets themselves never enter the (loggable) Config.
 */
import { readFileSync } from 'node:fs';
import type { Config } from './schema.ts';

/**
 * Reads a shared-token file: one token per line, without surrounding whitespace (an editor's trailing
 * newline is not part of a token), blank lines skipped. A worker host accepts every token of its file
 * and a gateway presents the first of its own, so a token is rotated without a refused request: add the
 * new one to the hosts' files as a second line, put it first in the gateways' files, then drop the old
 * line from the hosts' files. Throws an Error naming `setting` when the file cannot be read or holds no
 * token; the message never contains the file's content.
 */
export function readTokenFile(file: string, setting: string): readonly [string, ...string[]] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${setting}: cannot read token file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  const tokens = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  const [first, ...rest] = tokens;
  if (first === undefined) throw new Error(`${setting}: token file ${file} is empty`);
  // A header value cannot carry control characters: such a token could never be presented.
  if (tokens.some((tk) => [...tk].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f))) throw new Error(`${setting}: token file ${file} holds a token with a control character`);
  return [first, ...rest];
}

/** Reads a PEM file named by a setting; throws an Error naming the setting when it cannot. */
export function readPemFile(file: string, setting: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new Error(`${setting}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
}

/** Whether the link to remote workers is TLS (any --worker-tls-* is set): then it dials https. */
export function linkUsesTls(c: Config): boolean {
  const { link } = c.workers;
  return link.tlsCaFile !== '' || link.tlsCertFile !== '' || link.tlsKeyFile !== '';
}

/** What is wrong with the link settings of `c`, or undefined when nothing is. */
export function workerLinkProblem(c: Config): string | undefined {
  const { link, remote } = c.workers;
  const tls = linkUsesTls(c);
  if ((link.tlsCertFile === '') !== (link.tlsKeyFile === '')) return '--worker-tls-cert and --worker-tls-key must be given together';
  // TLS settings beside a cleartext URL would leave that worker unsealed while the operator thinks otherwise.
  const cleartext = remote.find((url) => url.startsWith('http:'));
  if (tls && cleartext !== undefined) return `--worker: '${cleartext}' is cleartext http: but --worker-tls-* is set; use https://`;
  try {
    if (link.tokenFile !== '') readTokenFile(link.tokenFile, '--worker-token-file');
    if (link.tlsCaFile !== '') readPemFile(link.tlsCaFile, '--worker-tls-ca');
    if (link.tlsCertFile !== '') readPemFile(link.tlsCertFile, '--worker-tls-cert');
    if (link.tlsKeyFile !== '') readPemFile(link.tlsKeyFile, '--worker-tls-key');
  } catch (e) {
    return (e as Error).message;
  }
  return undefined;
}
