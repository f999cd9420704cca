import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { startTestSluice } from '../helpers/sluice.ts';
import { connectGrpc, expectStatus, int32Bytes, int32Values, outputOf, range16, type Reply } from './client.ts';

const A = range16(1);
const B = range16(40);
const SUM = A.map((a, i) => a + B[i]!);
const DIFF = A.map((a, i) => a - B[i]!);

/** Triton's parameters for a tensor in a region (offset and byte size as int64_param, as its clients send them). */
function shm(region: string, byteSize: number, offset = 0): Record<string, unknown> {
  return {
    shared_memory_region: { string_param: region },
    shared_memory_byte_size: { int64_param: String(byteSize) },
    ...(offset === 0 ? {} : { shared_memory_offset: { int64_param: String(offset) } }),
  };
}

void test('system shared memory over gRPC: register, status, infer from and into regions, errors, unregister', { timeout: 60_000 }, async (t) => {
  const sluice = await startTestSluice(t);
  const c = connectGrpc(t, sluice.ports.grpc);
  const key = `/sluice_test_${process.pid}_grpc`;
  const path = `/dev/shm${key}`;
  // INPUT0 at 0, INPUT1 at 64, OUTPUT0 at 128, OUTPUT1 at 192.
  writeFileSync(path, Buffer.concat([int32Bytes(A), int32Bytes(B), Buffer.alloc(128)]));
  t.after(() => rmSync(path, { force: true }));

  await t.test('ServerMetadata declares the extension', async () => {
    const meta = await c.call('ServerMetadata');
    assert.ok((meta['extensions'] as string[]).includes('system_shared_memory'));
  });

  await t.test('register, and status with Triton\'s fields keyed by region name', async () => {
    assert.deepEqual(await c.call('SystemSharedMemoryRegister', { name: 'in', key, offset: 0, byte_size: 128 }), {});
    assert.deepEqual(await c.call('SystemSharedMemoryRegister', { name: 'out', key, offset: 128, byte_size: 128 }), {});
    const all = await c.call('SystemSharedMemoryStatus', {});
    assert.deepEqual(all['regions'], {
      in: { name: 'in', key, offset: '0', byte_size: '128' },
      out: { name: 'out', key, offset: '128', byte_size: '128' },
    });
    const one = await c.call('SystemSharedMemoryStatus', { name: 'out' });
    assert.deepEqual(Object.keys(one['regions'] as object), ['out']);
    await expectStatus(c.call('SystemSharedMemoryStatus', { name: 'nope' }), status.NOT_FOUND, "Unable to find system shared memory region: 'nope'");
  });

  await t.test('regions registered over REST are the same regions', async () => {
    const res = await fetch(`http://127.0.0.1:${sluice.ports.http}/v2/systemsharedmemory/region/in/status`);
    assert.deepEqual(await res.json(), [{ name: 'in', key, offset: 0, byte_size: 128 }]);
  });

  await t.test('ModelInfer reads inputs from a region and writes outputs into one', async () => {
    const reply: Reply = await c.call('ModelInfer', {
      model_name: 'simple',
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], parameters: shm('in', 64) },
        { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], parameters: shm('in', 64, 64) },
      ],
      outputs: [{ name: 'OUTPUT0', parameters: shm('out', 64) }, { name: 'OUTPUT1', parameters: shm('out', 64, 64) }],
    });
    const outputs = reply['outputs'] as { name: string; shape: string[]; parameters: Record<string, Record<string, unknown>> }[];
    assert.equal(outputs.length, 2);
    // As Triton: raw_output_contents keeps one (empty) entry per output in shared memory, so indexes line up.
    assert.deepEqual((reply['raw_output_contents'] as Buffer[]).map((b) => b.byteLength), [0, 0]);
    const o1 = outputs.find((o) => o.name === 'OUTPUT1')!;
    assert.deepEqual(o1.shape, ['1', '16']);
    assert.equal(o1.parameters['shared_memory_region']?.['string_param'], 'out');
    assert.equal(o1.parameters['shared_memory_byte_size']?.['int64_param'], '64');
    assert.equal(o1.parameters['shared_memory_offset']?.['int64_param'], '64');
    const bytes = readFileSync(path);
    assert.deepEqual(int32Values(bytes.subarray(128, 192)), SUM);
    assert.deepEqual(int32Values(bytes.subarray(192, 256)), DIFF);
  });

  await t.test('raw_input_contents carries the inputs that are not in shared memory', async () => {
    const reply = await c.call('ModelInfer', {
      model_name: 'simple',
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], parameters: shm('in', 64) },
        { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] },
      ],
      raw_input_contents: [int32Bytes(B)],
      outputs: [{ name: 'OUTPUT0' }, { name: 'OUTPUT1', parameters: shm('out', 64, 64) }],
    });
    assert.deepEqual(int32Values(outputOf(reply, 'OUTPUT0').raw), SUM);
  });

  await t.test('errors: register twice, bounds, sizes, unknown region, too-small output', async () => {
    await expectStatus(c.call('SystemSharedMemoryRegister', { name: 'in', key, offset: 0, byte_size: 8 }), status.ALREADY_EXISTS, "shared memory region 'in' already in manager");
    await expectStatus(c.call('SystemSharedMemoryRegister', { name: 'far', key, offset: 250, byte_size: 8 }), status.INVALID_ARGUMENT, 'offset 250 + byte_size 8 runs past the end', '(256 bytes)');
    await expectStatus(c.call('SystemSharedMemoryRegister', { name: 'ghost', key: `/sluice_test_${process.pid}_absent`, offset: 0, byte_size: 8 }), status.NOT_FOUND, 'no shared-memory object');
    await expectStatus(c.call('SystemSharedMemoryRegister', { name: 'esc', key: 'a/b', offset: 0, byte_size: 8 }), status.INVALID_ARGUMENT, "invalid shared-memory key 'a/b'");
    const infer = (p0: Record<string, unknown>, outputs: unknown[] = []): Promise<Reply> => c.call('ModelInfer', {
      model_name: 'simple',
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], parameters: p0 },
        { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], parameters: shm('in', 64, 64) },
      ],
      outputs,
    });
    await expectStatus(infer(shm('in', 128)), status.INVALID_ARGUMENT, "unexpected data size for tensor 'INPUT0'", 'shared_memory_byte_size 128');
    await expectStatus(infer(shm('in', 64, 96)), status.INVALID_ARGUMENT, "input 'INPUT0' in shared memory region 'in': offset 96 + byte_size 64 runs past the end of the region");
    await expectStatus(infer(shm('gone', 64)), status.NOT_FOUND, "Unable to find system shared memory region: 'gone'");
    await expectStatus(infer({ shared_memory_region: { int64_param: '1' }, shared_memory_byte_size: { int64_param: '64' } }), status.INVALID_ARGUMENT, 'shared_memory_region', 'string_param');
    await expectStatus(infer(shm('in', 64), [{ name: 'OUTPUT0', parameters: shm('in', 64, 32) }]), status.INVALID_ARGUMENT, "output 'OUTPUT0' would be written over", "input 'INPUT0'");
    await expectStatus(infer(shm('in', 64), [{ name: 'OUTPUT0', parameters: shm('out', 16) }]), status.INVALID_ARGUMENT, "output 'OUTPUT0' (16 bytes) should be at least 64 bytes");
  });

  await t.test('CUDA shared-memory methods stay UNIMPLEMENTED with a clear message', async () => {
    for (const method of ['CudaSharedMemoryStatus', 'CudaSharedMemoryRegister', 'CudaSharedMemoryUnregister']) {
      await expectStatus(c.call(method, {}), status.UNIMPLEMENTED, method, 'sluice serves no CUDA memory');
    }
  });

  await t.test('unregister an unused region, then inference naming it fails; unknown names and all-regions are no error', async () => {
    assert.deepEqual(await c.call('SystemSharedMemoryUnregister', { name: 'out' }), {});
    assert.deepEqual(Object.keys((await c.call('SystemSharedMemoryStatus', {}))['regions'] as object), ['in']);
    await expectStatus(c.call('ModelInfer', {
      model_name: 'simple',
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], parameters: shm('in', 64) },
        { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], parameters: shm('in', 64, 64) },
      ],
      outputs: [{ name: 'OUTPUT0', parameters: shm('out', 64) }],
    }), status.NOT_FOUND, "Unable to find system shared memory region: 'out'");
    assert.deepEqual(await c.call('SystemSharedMemoryUnregister', { name: 'never' }), {});
    assert.deepEqual(await c.call('SystemSharedMemoryUnregister', {}), {});
    assert.deepEqual((await c.call('SystemSharedMemoryStatus', {}))['regions'], {});
  });
});

void test('--shared-memory none: the system methods are UNIMPLEMENTED, and so is a tensor naming a region', { timeout: 60_000 }, async (t) => {
  const sluice = await startTestSluice(t, ['--shared-memory', 'none']);
  const c = connectGrpc(t, sluice.ports.grpc);
  for (const method of ['SystemSharedMemoryStatus', 'SystemSharedMemoryRegister', 'SystemSharedMemoryUnregister']) {
    await expectStatus(c.call(method, {}), status.UNIMPLEMENTED, method, '--shared-memory none');
  }
  await expectStatus(c.call('ModelInfer', {
    model_name: 'simple',
    inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 16], parameters: shm('r', 64) }, { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], contents: { int_contents: B } }],
  }), status.UNIMPLEMENTED, 'shared_memory_region', '--shared-memory none');
});
