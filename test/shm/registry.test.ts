import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { isSluiceError } from '../../src/core/errors.ts';
import { SystemSharedMemory } from '../../src/shm/registry.ts';
import { SharedMemoryIo } from '../../src/shm/tensors.ts';

/** A registry over a folder of its own, standing in for /dev/shm. */
function setup(t: TestContext): { memory: SystemSharedMemory; root: string } {
  const root = mkdtempSync(join(tmpdir(), 'sluice-shm-'));
  const memory = new SystemSharedMemory({ root });
  t.after(async () => {
    await memory.close();
    rmSync(root, { recursive: true, force: true });
  });
  return { memory, root };
}

function code(e: unknown): string {
  assert.ok(isSluiceError(e), String(e));
  return e.code;
}

void test('an unregister while a request holds the region waits for it: the lease still reads and writes', async (t) => {
  const { memory, root } = setup(t);
  writeFileSync(join(root, 'obj'), Buffer.from([1, 2, 3, 4, 0, 0, 0, 0]));
  await memory.register('r', '/obj', 0, 8);
  const input = memory.acquire({ region: 'r', offset: 0, byteSize: 4 }, "input 'X'");
  const output = memory.acquire({ region: 'r', offset: 4, byteSize: 4 }, "output 'Y'");
  await memory.unregister('r');
  assert.deepEqual(memory.status(), []);
  assert.throws(() => memory.acquire({ region: 'r', offset: 0, byteSize: 4 }, "input 'X'"), (e) => code(e) === 'SLUICE_SHM_REGION_NOT_FOUND');
  assert.deepEqual([...(await input.read())], [1, 2, 3, 4]);
  await output.write(Buffer.from([9, 8, 7, 6]));
  input.release();
  output.release();
  output.release();
  assert.deepEqual([...readFileSync(join(root, 'obj'))], [1, 2, 3, 4, 9, 8, 7, 6]);
  // The name is free again.
  await memory.register('r', 'obj', 4, 4);
  assert.deepEqual(memory.status(), [{ name: 'r', key: 'obj', offset: 4, byteSize: 4 }]);
});

void test('two registers of one name at once: one wins, the other is refused', async (t) => {
  const { memory, root } = setup(t);
  writeFileSync(join(root, 'obj'), Buffer.alloc(16));
  const results = await Promise.allSettled([memory.register('r', 'obj', 0, 8), memory.register('r', 'obj', 8, 8)]);
  assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected']);
  assert.equal(code((results[1] as PromiseRejectedResult).reason), 'SLUICE_SHM_REGION_EXISTS');
});

void test('an object that shrank after register fails the read with a clear error', async (t) => {
  const { memory, root } = setup(t);
  writeFileSync(join(root, 'obj'), Buffer.alloc(64));
  await memory.register('r', 'obj', 0, 64);
  truncateSync(join(root, 'obj'), 16);
  const io = SharedMemoryIo.open(memory, { inputs: [{ index: 0, name: 'X', datatype: 'UINT8', count: 64, range: { region: 'r', offset: 0, byteSize: 64 } }], outputs: [] });
  await assert.rejects(io.readInputs([{ name: 'X', datatype: 'UINT8', shape: [64], data: new Uint8Array(0) }]), (e) => code(e) === 'SLUICE_SHM_IO_FAILED' && /shrank/.test((e as Error).message));
  io.release();
});

void test('a plan naming an unknown region is refused before any I/O', async (t) => {
  const { memory, root } = setup(t);
  writeFileSync(join(root, 'obj'), Buffer.alloc(64));
  await memory.register('r', 'obj', 0, 64);
  assert.throws(() => SharedMemoryIo.open(memory, {
    inputs: [{ index: 0, name: 'X', datatype: 'INT32', count: 4, range: { region: 'r', offset: 0, byteSize: 16 } }],
    outputs: [{ name: 'Y', range: { region: 'missing', offset: 0, byteSize: 16 } }],
  }), (e) => code(e) === 'SLUICE_SHM_REGION_NOT_FOUND');
});
