import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { findExecutable, parseNvidiaSmi, startGpuSampler } from '../../src/telemetry/gpu.ts';
import { Metrics } from '../../src/telemetry/metrics.ts';

const MIB = 1024 * 1024;

// Shape of real output of the sampler's query on a two-GPU host (values in MiB and percent).
const TWO_GPUS = '0, 1187, 81559, 37\n1, 0, 81559, 0\n';

void test('parseNvidiaSmi converts MiB to bytes and percent to a 0..1 ratio', () => {
  assert.deepEqual(parseNvidiaSmi(TWO_GPUS), [
    { gpu: '0', memoryUsedBytes: 1187 * MIB, memoryTotalBytes: 81559 * MIB, utilization: 0.37 },
    { gpu: '1', memoryUsedBytes: 0, memoryTotalBytes: 81559 * MIB, utilization: 0 },
  ]);
});

void test('parseNvidiaSmi turns unsupported fields into NaN and skips lines that are not GPU rows', () => {
  const text = [
    '',
    'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.',
    '0, 512, 40960, [N/A]',
    '2, [Not Supported], 16384, 5',
    'x, 1, 2, 3',
    '3, 1, 2',
    '4,10,20,100\r',
  ].join('\n');
  const gpus = parseNvidiaSmi(text);
  assert.deepEqual(gpus.map((g) => g.gpu), ['0', '2', '4']);
  assert.equal(gpus[0]!.memoryUsedBytes, 512 * MIB);
  assert.ok(Number.isNaN(gpus[0]!.utilization));
  assert.ok(Number.isNaN(gpus[1]!.memoryUsedBytes));
  assert.equal(gpus[1]!.utilization, 0.05);
  assert.deepEqual(gpus[2], { gpu: '4', memoryUsedBytes: 10 * MIB, memoryTotalBytes: 20 * MIB, utilization: 1 });
});

void test('without nvidia-smi the sampler is disabled and reports no GPU', () => {
  const sampler = startGpuSampler({ command: 'sluice-no-such-nvidia-smi' });
  assert.equal(sampler.enabled, false);
  assert.deepEqual(sampler.snapshot(), []);
  sampler.stop();
  assert.equal(findExecutable('sluice-no-such-nvidia-smi'), undefined);
});

void test('the sampler runs the executable with the query, exports its GPUs, and drops them when it fails', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-gpu-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // A stand-in nvidia-smi: checks it was asked the sampler's query, then answers from a file the test controls.
  const answer = join(dir, 'answer');
  const fake = join(dir, 'nvidia-smi');
  writeFileSync(answer, TWO_GPUS);
  writeFileSync(fake, `#!/bin/sh\n[ "$1" = "--query-gpu=index,memory.used,memory.total,utilization.gpu" ] || exit 9\n[ "$2" = "--format=csv,noheader,nounits" ] || exit 9\n[ -f '${answer}' ] || exit 3\ncat '${answer}'\n`);
  chmodSync(fake, 0o755);

  const sampler = startGpuSampler({ command: fake, intervalMs: 100 });
  t.after(() => sampler.stop());
  assert.equal(sampler.enabled, true);
  await waitFor(() => sampler.snapshot().length === 2, 'first poll');

  const metrics = new Metrics({ defaultMetrics: false });
  metrics.sources.gpus = () => sampler.snapshot();
  const text = await metrics.registry.metrics();
  assert.match(text, new RegExp(`^sluice_gpu_memory_used_bytes\\{gpu="0"\\} ${1187 * MIB}$`, 'm'));
  assert.match(text, new RegExp(`^sluice_gpu_memory_total_bytes\\{gpu="1"\\} ${81559 * MIB}$`, 'm'));
  assert.match(text, /^sluice_gpu_utilization_ratio\{gpu="0"\} 0\.37$/m);

  writeFileSync(answer, '0, 2048, 81559, [N/A]\n');
  await waitFor(() => sampler.snapshot()[0]?.memoryUsedBytes === 2048 * MIB, 'second poll');
  const after = await metrics.registry.metrics();
  assert.doesNotMatch(after, /^sluice_gpu_utilization_ratio\{/m, 'an unsupported field is left out, not exported as 0');
  assert.doesNotMatch(after, /gpu="1"/, 'a GPU that disappeared is no longer exported');

  rmSync(answer);
  await waitFor(() => sampler.snapshot().length === 0, 'failed poll');
  assert.doesNotMatch(await metrics.registry.metrics(), /^sluice_gpu_memory_used_bytes\{/m);

  sampler.stop();
  assert.deepEqual(sampler.snapshot(), []);
});

void test('the sampler rejects a poll interval that would hammer nvidia-smi', () => {
  assert.throws(() => startGpuSampler({ intervalMs: 5 }), /intervalMs must be >= 100/);
});

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

void test('on a host with nvidia-smi the sampler reports every GPU with its memory', { skip: findExecutable('nvidia-smi') === undefined ? 'no nvidia-smi on this host' : false }, async (t) => {
  const sampler = startGpuSampler({ intervalMs: 1000 });
  t.after(() => sampler.stop());
  await waitFor(() => sampler.snapshot().length > 0, 'nvidia-smi');
  for (const g of sampler.snapshot()) {
    assert.match(g.gpu, /^\d+$/);
    assert.ok(g.memoryTotalBytes > 0 && g.memoryUsedBytes >= 0 && g.memoryUsedBytes <= g.memoryTotalBytes, JSON.stringify(g));
  }
});
