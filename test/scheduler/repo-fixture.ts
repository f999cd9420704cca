// A throwaway model repository for service tests, built from the sample models: `simple`, `multi`
// (simple's graph under two versions, all served) and `broken` (a config whose model file is garbage).
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { MODELS_ROOT } from './ort-executor.ts';

const SIMPLE_CONFIG = readFileSync(join(MODELS_ROOT, 'simple', 'config.pbtxt'), 'utf8');

/** simple's config under another name and version policy. */
function simpleLike(name: string, versionPolicy: string): string {
  return SIMPLE_CONFIG.replace('name: "simple"', `name: "${name}"`).replace(/version_policy:.*\n/, `version_policy: ${versionPolicy}\n`);
}

/** Adds a model running simple's graph; versions as given. */
export function addSimpleLike(root: string, name: string, versions: readonly string[], versionPolicy = '{ latest: { num_versions: 1 } }'): void {
  mkdirSync(join(root, name), { recursive: true });
  writeFileSync(join(root, name, 'config.pbtxt'), simpleLike(name, versionPolicy));
  for (const v of versions) {
    mkdirSync(join(root, name, v), { recursive: true });
    copyFileSync(join(MODELS_ROOT, 'simple', '1', 'model.onnx'), join(root, name, v, 'model.onnx'));
  }
}

export function makeRepository(t: TestContext): string {
  const root = mkdtempSync(join(tmpdir(), 'sluice-sched-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  addSimpleLike(root, 'simple', ['1']);
  addSimpleLike(root, 'multi', ['1', '2'], '{ all: {} }');
  mkdirSync(join(root, 'broken', '1'), { recursive: true });
  writeFileSync(join(root, 'broken', '1', 'model.onnx'), 'this is not an ONNX file');
  return root;
}

export function serviceConfig(root: string, flags: readonly string[] = []): Config {
  return loadConfig({ argv: ['--model-repository', root, '--log-level', 'fatal', ...flags], env: {} });
}
