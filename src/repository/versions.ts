import type { Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { VERSION_PATTERN } from '../core/model.ts';
import type { VersionPolicy } from '../core/model.ts';

/** Numeric order; versions may exceed 2^53, so they compare as bigints. */
export function compareVersions(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * The version folders of a model, ascending. Other entries (files, folders with non-numeric names such
 * as an editor's backup) are not versions and are skipped, as Triton skips them.
 */
export async function listVersionFolders(modelDir: string): Promise<string[]> {
  const entries: Dirent[] = await readdir(modelDir, { withFileTypes: true });
  return entries
    .filter((e) => (e.isDirectory() || e.isSymbolicLink()) && VERSION_PATTERN.test(e.name))
    .map((e) => e.name)
    .sort(compareVersions);
}

/** The versions a policy serves out of those on disk, ascending; throws an Error when it serves none. */
export function selectVersions(available: readonly string[], policy: VersionPolicy): string[] {
  if (available.length === 0) throw new Error('no version folders: expected <model>/<version>/model.onnx with a numeric version such as 1');
  if ('latest' in policy) return available.slice(-policy.latest.numVersions);
  if ('all' in policy) return [...available];
  const wanted = policy.specific.versions.map(String);
  const missing = wanted.filter((v) => !available.includes(v));
  if (missing.length > 0) {
    throw new Error(`version_policy specific lists version${missing.length > 1 ? 's' : ''} ${missing.join(', ')}, which ${missing.length > 1 ? 'have' : 'has'} no folder (found: ${available.join(', ')})`);
  }
  return [...wanted].sort(compareVersions);
}
