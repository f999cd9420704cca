import { createHash, randomBytes } from 'node:crypto';

/** A new API key (32 random bytes, base64url) and the SHA-256 digest the auth config stores for it. */
export function newKey(): { key: string; sha256: string } {
  const key = `sk-${randomBytes(32).toString('base64url')}`;
  return { key, sha256: digestOf(key) };
}

/** The digest the auth config stores for a key. */
export function digestOf(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** `sluice keygen [--key K]`: prints a new key (or digests the given one) for the auth config. */
export function runKeygen(argv: readonly string[], out: NodeJS.WritableStream): number {
  const at = argv.indexOf('--key');
  if (argv.length > 0 && (at !== 0 || argv.length !== 2)) {
    out.write('usage: sluice keygen [--key KEY]   prints a new API key and its sha256, or the sha256 of KEY\n');
    return 1;
  }
  const pair = at === 0 ? { key: argv[1]!, sha256: digestOf(argv[1]!) } : newKey();
  out.write(`key: ${pair.key}\nsha256: ${pair.sha256}\n`);
  return 0;
}
