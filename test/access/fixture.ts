// Auth configs for the access tests: real files in a temp folder, keys made as a user makes them.
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { newKey } from '../../src/access/keygen.ts';

export interface TestKey {
  readonly key: string;
  readonly sha256: string;
}

export function keys<N extends string>(...names: N[]): Record<N, TestKey> {
  const out = {} as Record<N, TestKey>;
  for (const n of names) out[n] = newKey();
  return out;
}

/** A temp folder removed when the test ends. */
export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-auth-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `text` to `file` as an editor or a Secret update does: a new file renamed over the old one. */
export function replaceFile(file: string, text: string): void {
  const tmp = `${file}.new`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

export function bearer(k: TestKey): Record<string, string> {
  return { authorization: `Bearer ${k.key}` };
}
