import { readFileSync } from 'node:fs';

/** Protocol extensions sluice implements (GET /v2 and ServerMetadata report them). */
export const EXTENSIONS: readonly string[] = ['binary_tensor_data', 'statistics', 'model_configuration', 'model_repository', 'schedule_policy', 'trace', 'logging', 'classification'];

/** package.json's version, looked up from this file so it works from src/ (tsx) and dist/src/ (built). */
export function packageVersion(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'sluice' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not at this level: try the next one up
    }
  }
  return '0.0.0';
}

