// The GPU check's bundle: scripts/device-bundle.mjs packs Node.js 24, the production node_modules and the
// Vulkan loader; with the repository's tracked files it must stay within the 64 MiB that travel to a GPU
// machine. Then scripts/device-check.sh runs here from that bundle alone, in a scratch copy of the
// sources without node_modules: the bundled Node answers, the probe reports every provider (the CPU runs
// both models; a GPU provider that cannot load says why), and the CPU benchmarks (a) and (c) complete.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ROOT } from './manifests.ts';

const LIMIT = 64 * 2 ** 20;
const scratch = mkdtempSync(join(tmpdir(), 'sluice-device-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

interface Manifest {
  node: string;
  vulkanLoader: boolean;
  archiveBytes: number;
  trackedBytes: number;
  onnxruntimeFiles: string[];
}

interface ProbeModel {
  model: string;
  loaded: boolean;
  error?: string;
  timings: { batch: number; runs: number; medianUs: number; maxAbsDiff: number }[];
}

test('the device bundle fits in 64 MiB with the sources, and the check runs from it alone', { timeout: 600_000 }, (t) => {
  const bundle = join(scratch, 'bundle');
  // The downloads (Node.js from npm, libvulkan1 from Debian) are cached in .device-cache, as for a user.
  const built = spawnSync(process.execPath, [join(ROOT, 'scripts', 'device-bundle.mjs'), '--out', bundle], { cwd: ROOT, encoding: 'utf8', timeout: 400_000 });
  assert.equal(built.status, 0, `device-bundle.mjs failed:\n${built.stderr}`);
  const manifest = JSON.parse(readFileSync(join(bundle, 'manifest.json'), 'utf8')) as Manifest;
  assert.match(manifest.node, /^24\./, 'Node.js 24 travels');
  // Debian's mirror is a second network dependency of the build; without it the bundle still works
  // where the machine has its own loader, and the builder says so.
  if (manifest.vulkanLoader) t.diagnostic('libvulkan1 travels');
  else assert.match(built.stderr, /could not download libvulkan1/, 'a bundle without the Vulkan loader says why');
  assert.ok(manifest.onnxruntimeFiles.includes('libonnxruntime.so.1') && manifest.onnxruntimeFiles.includes('onnxruntime_binding.node'), `the linux x64 binding travels: ${manifest.onnxruntimeFiles.join(', ')}`);
  assert.ok(manifest.archiveBytes + manifest.trackedBytes <= LIMIT, `bundle ${manifest.archiveBytes} + tracked ${manifest.trackedBytes} bytes exceed ${LIMIT}`);

  const out = join(scratch, 'out');
  const check = spawnSync('bash', [join(ROOT, 'scripts', 'device-check.sh'), out, '--quick'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 300_000,
    // The check calls the bundled node by path (machine.txt below shows which one ran) and its sources find
    // only the bundled node_modules (the scratch copy has none).
    env: { ...process.env, PATH: '/usr/sbin:/usr/bin:/sbin:/bin', SLUICE_DEVICE_BUNDLE: join(bundle, 'sluice-device.tar.xz'), DEVICE_CHECK_BUDGET_S: '240' },
  });
  const log = `${check.stdout}\n${check.stderr}`;
  assert.equal(check.status, 0, `device-check.sh failed:\n${log.slice(-4000)}`);
  assert.match(readFileSync(join(out, 'machine.txt'), 'utf8'), new RegExp(`node: v${manifest.node.replaceAll('.', '\\.')}`), 'the bundled Node.js ran the check');

  const providers = JSON.parse(readFileSync(join(out, 'providers.json'), 'utf8')) as { provider: string; models: ProbeModel[] }[];
  assert.deepEqual(providers.map((p) => p.provider), ['cpu', 'webgpu', 'cuda']);
  for (const p of providers) {
    assert.deepEqual(p.models.map((m) => m.model), ['mlp', 'cnn']);
    for (const m of p.models) {
      if (p.provider === 'cpu') assert.ok(m.loaded, `cpu ${m.model} loads: ${m.error ?? ''}`);
      if (!m.loaded) {
        assert.ok((m.error ?? '').length > 10, `${p.provider} ${m.model}: a provider that cannot load says why`);
        continue;
      }
      assert.deepEqual(m.timings.map((t) => t.batch), [1, 32]);
      for (const t of m.timings) {
        assert.ok(t.runs > 0 && t.medianUs > 0, `${p.provider} ${m.model} batch ${t.batch} was timed`);
        assert.ok(t.maxAbsDiff < 1e-3, `${p.provider} ${m.model} batch ${t.batch} answers as the CPU does (max diff ${t.maxAbsDiff})`);
      }
    }
  }
  const bench = readFileSync(join(out, 'bench-cpu.md'), 'utf8');
  assert.match(bench, /## \(a\) Dynamic batching/);
  assert.match(bench, /## \(c\) Worker busy fraction/);
  assert.match(readFileSync(join(out, 'summary.md'), 'utf8'), /bench cpu: exit 0/);
  assert.ok(!existsSync(join(out, 'gpu-providers.txt')), 'only the report travels back');
});
