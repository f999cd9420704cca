import type { ModelConfig } from '../core/model.ts';
import type { ModelEntry } from '../repository/repository.ts';

// What the model table derives from a repository entry: the fingerprints that decide whether a poll
// reloads a model, and why an entry cannot serve.

/** Fingerprint of an entry: a poll reloads the model only when it changes. */
export function fingerprintOf(entry: ModelEntry): string {
  return JSON.stringify({ config: entry.config, versions: entry.versions, error: entry.error });
}

export function configFingerprintOf(entry: ModelEntry | undefined): string {
  return entry ? JSON.stringify({ config: entry.config, error: entry.error }) : '';
}

/** Why an entry cannot serve ('' when it can). */
export function unusableReason(entry: ModelEntry, want: readonly string[]): string {
  if (entry.error) return entry.error;
  if (!entry.config) return 'the model has no usable configuration';
  return want.length === 0 ? 'no version is available under the version policy' : '';
}

/**
 * Whether two configs differ only in what the gateway alone uses to schedule (dynamic batching, queue
 * policy, version policy): such a change needs new batchers, not new sessions in the workers.
 */
export function sameExceptScheduling(a: ModelConfig, b: ModelConfig): boolean {
  // The response cache is the gateway's too: turning it on or off keeps the sessions.
  const rest = (c: ModelConfig): string => JSON.stringify({ ...c, dynamicBatching: undefined, versionPolicy: undefined, responseCache: undefined, unknownFields: undefined, source: undefined });
  return rest(a) === rest(b);
}

export function fileFingerprintOf(entry: ModelEntry, version: string): string {
  const v = entry.versions.find((x) => String(x.version) === version);
  return v ? `${v.file}:${v.byteSize}:${v.mtimeMs}` : '';
}

export function versionStrings(entry: ModelEntry): string[] {
  return entry.versions.map((v) => String(v.version));
}

