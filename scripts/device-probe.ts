// Which ONNX Runtime execution providers load on this machine, and how the sample mlp and cnn run on each:
// the answers' largest difference from the CPU provider's, and the median and P99 time of one run at
// batch 1 and batch 32. Part of scripts/device-check.sh; runs anywhere (a provider that cannot load is
// reported with ONNX Runtime's own message).
// Usage: node --import tsx scripts/device-probe.ts --out DIR [--usable FILE] [--quick]
// (--usable FILE: the GPU providers on which both models loaded, space-separated, for the benchmarks)
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const PROVIDERS = ['cpu', 'webgpu', 'cuda'] as const;
const MODELS = ['mlp', 'cnn'] as const;
const BATCHES = [1, 32] as const;

type Provider = (typeof PROVIDERS)[number];

interface Timing {
  readonly batch: number;
  readonly runs: number;
  readonly medianUs: number;
  readonly p99Us: number;
  /** Largest absolute difference of any output element from the CPU provider's answer to the same input. */
  readonly maxAbsDiff: number;
}

interface ModelResult {
  readonly model: string;
  readonly loaded: boolean;
  readonly error?: string;
  readonly timings: Timing[];
}

interface ProviderResult {
  readonly provider: Provider;
  readonly bundled: boolean | undefined;
  readonly models: ModelResult[];
}

/** Seeded inputs (a 32-bit LCG), so every provider answers the same rows. */
function inputFor(meta: ort.InferenceSession.ValueMetadata, batch: number): ort.Tensor {
  if (!meta.isTensor || meta.type !== 'float32') throw new Error(`input ${meta.name}: the probe feeds float32 tensors only`);
  const shape = meta.shape.map((d) => (typeof d === 'number' && d > 0 ? d : batch));
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  let x = 12345;
  for (let i = 0; i < data.length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    data[i] = x / 2 ** 32;
  }
  return new ort.Tensor('float32', data, shape);
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

function options(provider: Provider): ort.InferenceSession.SessionOptions {
  return { executionProviders: [provider], graphOptimizationLevel: 'all' };
}

async function answers(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Promise<Float32Array[]> {
  const out = await session.run(feeds);
  return session.outputNames.map((n) => out[n]!.data as Float32Array);
}

function maxAbsDiff(a: readonly Float32Array[], b: readonly Float32Array[]): number {
  let worst = 0;
  a.forEach((x, i) => {
    const y = b[i]!;
    if (x.length !== y.length) worst = Infinity;
    for (let j = 0; j < Math.min(x.length, y.length); j++) worst = Math.max(worst, Math.abs(x[j]! - y[j]!));
  });
  return worst;
}

async function probeModel(provider: Provider, model: string, reference: Map<string, Float32Array[]>, runs: number): Promise<ModelResult> {
  const file = join(ROOT, 'models', model, '1', 'model.onnx');
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(file, options(provider));
  } catch (e) {
    return { model, loaded: false, error: (e as Error).message.split('\n')[0]!, timings: [] };
  }
  const timings: Timing[] = [];
  try {
    for (const batch of BATCHES) {
      const meta = session.inputMetadata[0]!;
      const feeds = { [meta.name]: inputFor(meta, batch) };
      const first = await answers(session, feeds);
      const key = `${model}/${batch}`;
      if (!reference.has(key)) reference.set(key, first);
      for (let i = 0; i < 5; i++) await session.run(feeds);
      const times: number[] = [];
      // At most `runs` runs or 10 s, whichever ends first: a slow provider cannot stall the check.
      const stop = performance.now() + 10_000;
      for (let i = 0; i < runs && performance.now() < stop; i++) {
        const t0 = performance.now();
        await session.run(feeds);
        times.push((performance.now() - t0) * 1000);
      }
      times.sort((a, b) => a - b);
      timings.push({ batch, runs: times.length, medianUs: quantile(times, 0.5), p99Us: quantile(times, 0.99), maxAbsDiff: maxAbsDiff(first, reference.get(key)!) });
    }
  } finally {
    await session.release();
  }
  return { model, loaded: true, timings };
}

function markdown(results: readonly ProviderResult[]): string {
  const lines = [
    `# ONNX Runtime providers on this machine (onnxruntime-node ${ort.env.versions.node ?? ''}, Node.js ${process.version})`,
    '',
    '| provider | bundled | model | loaded | batch | runs | median us | P99 us | max abs diff from CPU |',
    '| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const p of results) {
    for (const m of p.models) {
      if (!m.loaded) lines.push(`| ${p.provider} | ${p.bundled ?? '?'} | ${m.model} | no: ${m.error?.replaceAll('|', '/') ?? ''} | | | | | |`);
      for (const t of m.timings) lines.push(`| ${p.provider} | ${p.bundled ?? '?'} | ${m.model} | yes | ${t.batch} | ${t.runs} | ${t.medianUs.toFixed(0)} | ${t.p99Us.toFixed(0)} | ${t.maxAbsDiff.toExponential(2)} |`);
    }
  }
  return `${lines.join('\n')}\n`;
}

const { values } = parseArgs({ options: { out: { type: 'string' }, usable: { type: 'string' }, quick: { type: 'boolean' } } });
if (!values.out) throw new Error('usage: device-probe.ts --out DIR [--quick]');
const backends = new Map(ort.listSupportedBackends().map((b) => [b.name, b.bundled]));
// The CPU's answers come first: every other provider is compared with them.
const reference = new Map<string, Float32Array[]>();
const results: ProviderResult[] = [];
ort.env.logLevel = 'fatal';
for (const provider of PROVIDERS) {
  const models: ModelResult[] = [];
  for (const model of MODELS) models.push(await probeModel(provider, model, reference, values.quick ? 20 : 200));
  results.push({ provider, bundled: backends.get(provider), models });
}
await mkdir(values.out, { recursive: true });
await writeFile(join(values.out, 'providers.json'), `${JSON.stringify(results, null, 2)}\n`);
await writeFile(join(values.out, 'providers.md'), markdown(results));
process.stdout.write(markdown(results));
if (values.usable) {
  const usable = results.filter((p) => p.provider !== 'cpu' && p.models.every((m) => m.loaded)).map((p) => p.provider);
  await writeFile(values.usable, usable.join(' '));
}
