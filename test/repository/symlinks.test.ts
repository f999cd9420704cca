// Links that leave the repository are not followed: model and version folders, configs and model
// files must resolve inside it; hidden folders are no models, by scan or by name.
import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isSluiceError } from '../../src/core/errors.ts';
import { readModelEntry, scanRepository } from '../../src/repository/repository.ts';
import { simpleBytes, tempRepo, writeConfig, writeVersion } from './fixtures.ts';

const CONFIG = 'name: "m"\nmax_batch_size: 8\n';

void test('a model folder, version folder, config or model file linked outside the repository is refused without saying where it points', async (t) => {
  const outside = await tempRepo(t);
  await writeVersion(outside, 'elsewhere', '1', simpleBytes());
  await writeFile(join(outside, 'secret.txt'), 'root:x:0:0:root:/root:/bin/bash\n');
  const root = await tempRepo(t);
  // A whole model folder that is a link to another folder.
  await symlink(join(outside, 'elsewhere'), join(root, 'linked_folder'));
  // A config that is a link to a file outside.
  await writeVersion(root, 'linked_config', '1', simpleBytes());
  await symlink(join(outside, 'secret.txt'), join(root, 'linked_config', 'config.pbtxt'));
  // A version folder, and a model file, that are links outside.
  await mkdir(join(root, 'linked_version'));
  await symlink(join(outside, 'elsewhere', '1'), join(root, 'linked_version', '1'));
  await mkdir(join(root, 'linked_file', '1'), { recursive: true });
  await symlink(join(outside, 'elsewhere', '1', 'model.onnx'), join(root, 'linked_file', '1', 'model.onnx'));
  // Links that stay inside are fine: version 2 is version 1's folder.
  await writeVersion(root, 'inside', '1', simpleBytes());
  await writeConfig(root, 'inside', 'config.pbtxt', CONFIG.replace('"m"', '"inside"') + 'version_policy: { all: {} }\n');
  await symlink(join(root, 'inside', '1'), join(root, 'inside', '2'));
  // A hidden folder holding a usable model.
  await writeVersion(root, '.git', '1', simpleBytes());

  const repo = await scanRepository(root);
  const reasons: Record<string, string> = {};
  for (const name of ['linked_folder', 'linked_config', 'linked_version', 'linked_file']) {
    const e = repo.get(name);
    assert.ok(e, name);
    assert.equal(e.config, undefined, `${name} is not served`);
    assert.match(e.error, /is a link that leaves the model repository/, name);
    reasons[name] = e.error;
  }
  assert.match(reasons['linked_folder']!, /the model folder/);
  assert.match(reasons['linked_config']!, /config\.pbtxt/);
  assert.match(reasons['linked_file']!, /version 1: model\.onnx/);
  for (const r of Object.values(reasons)) {
    assert.doesNotMatch(r, /root:|secret|elsewhere/, 'no trace of the link target or its contents');
    assert.ok(!r.includes(outside), 'no outside path');
  }
  const inside = repo.get('inside');
  assert.equal(inside?.error, '', inside?.error);
  assert.deepEqual(inside?.versions.map((v) => v.version), ['1', '2']);
  assert.equal(repo.has('.git'), false, 'the scan skips hidden folders');
  // The explicit load API reads by name: the same rules.
  await assert.rejects(readModelEntry(root, '.git'), (e: unknown) => isSluiceError(e) && e.kind === 'NOT_FOUND');
  assert.match((await readModelEntry(root, 'linked_config')).error, /is a link that leaves the model repository/);
});
