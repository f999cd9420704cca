// The generator's command line: writes models (and the committed configs) into another folder, skips
// existing current files with --if-missing, and refuses what it does not know.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function generate(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'models/generate.ts', ...args], { cwd: ROOT, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

void test('generate --out writes the named models and copies their configs', (t) => {
  const out = mkdtempSync(join(tmpdir(), 'sluice-gen-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const first = generate('--out', out, 'simple', 'identity');
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stdout, /simple/);
  for (const name of ['simple', 'identity']) {
    assert.ok(readFileSync(join(out, name, '1', 'model.onnx')).equals(readFileSync(join(ROOT, 'models', name, '1', 'model.onnx'))), `${name} matches the sample`);
  }
  assert.equal(readFileSync(join(out, 'simple', 'config.pbtxt'), 'utf8'), readFileSync(join(ROOT, 'models', 'simple', 'config.pbtxt'), 'utf8'));
  assert.ok(existsSync(join(out, 'identity', 'config.json')));
  assert.ok(!existsSync(join(out, 'mlp')), 'only the named models');

  const before = statSync(join(out, 'simple', '1', 'model.onnx')).mtimeMs;
  const again = generate('--if-missing', '--out', out, 'simple', 'identity');
  assert.equal(again.status, 0, again.stderr);
  assert.equal(again.stdout, '', 'nothing to do, nothing said');
  assert.equal(statSync(join(out, 'simple', '1', 'model.onnx')).mtimeMs, before, 'existing file left alone');
});

void test('generate --if-missing rewrites a model left by an older revision of the generator', (t) => {
  const out = mkdtempSync(join(tmpdir(), 'sluice-gen-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  assert.equal(generate('--out', out, 'cnn').status, 0);
  const stamps = JSON.parse(readFileSync(join(out, '.generated.json'), 'utf8')) as Record<string, number>;
  assert.ok((stamps['cnn'] ?? 0) >= 2, 'the stamp records the revision written');
  // A file from an older checkout: other bytes, stamped with revision 1 (or not stamped at all).
  writeFileSync(join(out, 'cnn', '1', 'model.onnx'), 'stale');
  writeFileSync(join(out, '.generated.json'), JSON.stringify({ cnn: 1 }));
  const again = generate('--if-missing', '--out', out, 'cnn');
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /cnn/);
  assert.ok(readFileSync(join(out, 'cnn', '1', 'model.onnx')).equals(readFileSync(join(ROOT, 'models', 'cnn', '1', 'model.onnx'))), 'regenerated to the current graph');
  assert.equal(generate('--if-missing', '--out', out, 'cnn').stdout, '', 'and then left alone');
});

void test('generate refuses unknown options and models with a usage message', () => {
  const badOption = generate('--frobnicate');
  assert.equal(badOption.status, 2);
  assert.match(badOption.stderr, /unknown option '--frobnicate'/);
  assert.match(badOption.stderr, /usage:/);
  const badModel = generate('--out', join(tmpdir(), 'sluice-never-written'), 'resnet');
  assert.equal(badModel.status, 2);
  assert.match(badModel.stderr, /unknown model 'resnet'/);
  const noDir = generate('--out');
  assert.equal(noDir.status, 2);
  assert.match(noDir.stderr, /--out needs a folder/);
});
