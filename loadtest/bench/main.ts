import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem, type as osType, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { parseDuration } from '../options.ts';
import { modelMetadata } from '../prepare.ts';
import { generateVariants } from '../workload.ts';
import { DEVICES, isGpu, providerLabel, type Device } from '../../src/core/device.ts';
import { latencyFloor } from './floor.ts';
import type { Section } from './markdown.ts';
import type { BenchTiming, ModelWorkload } from './measure.ts';
import { fairnessComparison, FAIRNESS_FLAGS, FAIRNESS_MODEL_CONFIG, writeFairnessAuth } from './fairness.ts';
import { QUEUE_BUDGET_CONFIG } from './overload.ts';
import { sharedWorkersComparison } from './gateways.ts';
import { generationComparison, tinyLmRepository, type GenerationServer } from './generation.ts';
import { startServerProcess, type ServerProcess } from './processes.ts';
import { batchingThroughput, oneClientLatency, overhead, protocols, workerBusy, type BenchEnv } from './sections.ts';
import { sloSearch } from './slo.ts';
import { traceFlags } from './stages.ts';
import { warmUp } from './warmup.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SECTIONS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'] as const;

const USAGE = `Usage: npm run bench [-- --quick] [--repeats N] [--duration T] [--warmup T] [--only a,b,...] [--device D] [--out FILE]

Runs every benchmark comparison side by side (medians of repeated runs) and writes docs/benchmarks.md:
(a) batching on vs max batch size 1 vs a naive server, (b) P50 at one client, (c) worker busy fraction,
(d) REST JSON vs binary vs gRPC, (e) sluice vs bare Fastify / grpc-js echo, (f) highest rate with P99 < 10 ms,
(g) the latency floor: sluice vs the naive server vs a bare echo (REST JSON, binary, gRPC), open loop, with server
CPU per request and sluice's per-stage breakdown from its traces; a neighbour sending 60 MB bodies; overload at 3x,
(h) fair queuing: a steady tenant's P99 alone and beside a tenant flooding at 5x its share, with and without fair queuing,
(i) generation: continuous batching vs one sequence at a time (32 conversations), and a second turn's time to first token,
(j) two gateways sharing two worker hosts vs one gateway over both: throughput, and the most each host held against its bound.
--quick: one repeat of short steps (about a minute), marked as a smoke run in the output.
--only g: that section alone (any comma-separated list of a..j); the file then holds only those
  (give --out FILE to leave docs/benchmarks.md as it is).
--device cuda|webgpu: sluice's workers run on that provider, and fail rather than fall back to the CPU
  (the naive server stays on the CPU: it is the baseline).
`;

function machine(): string {
  const cpu = cpus();
  let commit = 'unknown';
  let dirty = false;
  try {
    const git = (...args: string[]): string => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    commit = git('rev-parse', '--short', 'HEAD');
    // Tracked changes outside docs/ (which cannot move a number) mean the numbers are not the commit's alone.
    dirty = git('status', '--porcelain', '--untracked-files=no').split('\n').some((line) => line !== '' && !line.slice(3).startsWith('docs/'));
  } catch {
    // Not a git checkout: the commit stays unknown.
  }
  return `${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${osType()} ${release()}, Node.js ${process.version}, sluice commit ${commit}${dirty ? ' plus uncommitted changes' : ''}`;
}

/** A repository of the sample mlp file alone under its own config: the same model, another gateway setting. */
async function mlpRepository(config: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-bench-repo-'));
  await mkdir(join(dir, 'mlp', '1'), { recursive: true });
  // A copy, not a link: sluice serves no file that a link takes outside its repository.
  await copyFile(join(ROOT, 'models', 'mlp', '1', 'model.onnx'), join(dir, 'mlp', '1', 'model.onnx'));
  await writeFile(join(dir, 'mlp', 'config.pbtxt'), config);
  return dir;
}

/** Batches capped at one row: "the same gateway with batching off". */
const UNBATCHED_CONFIG = 'name: "mlp"\nmax_batch_size: 1\n';

const sluiceFlagsOn = (device: Device, repo: string): string[] => [
  ...['--host', '127.0.0.1', '--http-port', '0', '--grpc-port', '0', '--metrics-port', '0', '--model-repository', repo, '--log-level', 'warn'],
  ...(isGpu(device) ? ['--device', device, '--cuda-fallback', 'fail'] : []),
];

/** `npm run bench [-- flags]`: starts the servers, runs the comparisons, writes the markdown. */
export async function runBench(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { quick: { type: 'boolean' }, repeats: { type: 'string' }, duration: { type: 'string' }, warmup: { type: 'string' }, only: { type: 'string' }, device: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean' } } });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const quick = values.quick === true;
  if (values.device !== undefined && !(DEVICES as readonly string[]).includes(values.device)) throw new Error(`--device ${values.device}: the devices are ${DEVICES.join(', ')}`);
  const device = (values.device ?? 'cpu') as Device;
  const sluiceFlags = (repo: string): string[] => sluiceFlagsOn(device, repo);
  const only = new Set((values.only ?? SECTIONS.join(',')).split(',').map((s) => s.trim()));
  const unknown = [...only].filter((id) => !(SECTIONS as readonly string[]).includes(id));
  if (unknown.length > 0) throw new Error(`--only ${unknown.join(',')}: the sections are ${SECTIONS.join(', ')}`);
  const timing: BenchTiming = {
    repeats: Number(values.repeats ?? (quick ? 1 : 3)),
    durationMs: parseDuration('duration', values.duration ?? (quick ? '1s' : '5s'), 600_000),
    warmupMs: parseDuration('warmup', values.warmup ?? (quick ? '500ms' : '1500ms'), 600_000),
    log: (line) => process.stderr.write(`${line}\n`),
  };
  if (!Number.isInteger(timing.repeats) || timing.repeats < 1 || timing.repeats > 20) throw new Error('--repeats must be an integer from 1 to 20');
  const out = values.out ?? join(ROOT, 'docs', 'benchmarks.md');
  const started = new Date();
  const servers: ServerProcess[] = [];
  const temporary: string[] = [];
  const sections: Section[] = [];
  try {
    const run = async (id: string, title: string, fn: () => Promise<Section>): Promise<void> => {
      if (!only.has(id)) return;
      timing.log(`(${id}) ${title}`);
      sections.push(await fn());
    };
    // Sections a..g share these servers; (h), (i) and (j) start their own and run without them.
    if ([...only].some((id) => !['h', 'i', 'j'].includes(id))) {
      const repo = await mlpRepository(UNBATCHED_CONFIG);
      temporary.push(repo);
      const budgetRepo = await mlpRepository(QUEUE_BUDGET_CONFIG);
      temporary.push(budgetRepo);
      const traceDir = await mkdtemp(join(tmpdir(), 'sluice-bench-trace-'));
      temporary.push(traceDir);
      const traceFile = join(traceDir, 'trace.json');
      timing.log('starting servers: sluice (traced), sluice with max batch size 1, sluice with a queue budget, naive server (with and without inference), Fastify echo, grpc-js echo');
      const a = await startServerProcess('sluice', 'sluice', [...sluiceFlags(join(ROOT, 'models')), ...traceFlags(traceFile)]);
      servers.push(a);
      const b = await startServerProcess('sluice (max batch size 1)', 'sluice', sluiceFlags(repo));
      servers.push(b);
      const c = await startServerProcess('sluice (queue budget)', 'sluice', sluiceFlags(budgetRepo));
      servers.push(c);
      const sluiceUrl = `http://127.0.0.1:${a.ports['http']}`;
      const workloads = new Map<string, Promise<ModelWorkload>>();
      const workload = (model: string): Promise<ModelWorkload> => {
        let w = workloads.get(model);
        if (!w) {
          w = modelMetadata({ protocol: 'json', url: sluiceUrl, grpcUrl: undefined, model, version: '', timeoutMs: 30_000 })
            .then((meta) => ({ meta, variants: generateVariants(meta, { seed: 1, variants: 8, batch: 1, shapes: {} }) }));
          workloads.set(model, w);
        }
        return w;
      };
      const mlp = await workload('mlp');
      const naive = await startServerProcess('naive server', 'naive', ['--model-file', join(ROOT, 'models', 'mlp', '1', 'model.onnx'), '--model', 'mlp', '--input-name', mlp.meta.inputs[0]!.name]);
      servers.push(naive);
      const ceiling = await startServerProcess('naive server without inference', 'naive', ['--model-file', join(ROOT, 'models', 'mlp', '1', 'model.onnx'), '--model', 'mlp', '--input-name', mlp.meta.inputs[0]!.name, '--skip-inference']);
      servers.push(ceiling);
      const echoHttp = await startServerProcess('Fastify echo', 'echo-http', []);
      servers.push(echoHttp);
      const echoGrpc = await startServerProcess('grpc-js echo', 'echo-grpc', []);
      servers.push(echoGrpc);
      const env: BenchEnv = {
        sluice: { http: sluiceUrl, grpc: `127.0.0.1:${a.ports['grpc']}`, metrics: `http://127.0.0.1:${a.ports['metrics']}/metrics`, traceFile },
        unbatched: { http: `http://127.0.0.1:${b.ports['http']}`, metrics: `http://127.0.0.1:${b.ports['metrics']}/metrics` },
        overload: { http: `http://127.0.0.1:${c.ports['http']}`, metrics: `http://127.0.0.1:${c.ports['metrics']}/metrics` },
        naive: `http://127.0.0.1:${naive.ports['http']}`,
        naiveWithoutInference: `http://127.0.0.1:${ceiling.ports['http']}`,
        echoHttp: `http://127.0.0.1:${echoHttp.ports['http']}`,
        echoGrpc: `127.0.0.1:${echoGrpc.ports['grpc']}`,
        pids: { sluice: [a.pid], overload: [c.pid], naive: [naive.pid], echoHttp: [echoHttp.pid], echoGrpc: [echoGrpc.pid] },
        workload,
      };
      await warmUp(env, timing, quick ? 2000 : 10_000);
      await run('a', 'batching on vs off vs naive', async () => (await batchingThroughput(env, timing)).section);
      await run('b', 'P50 at one client', () => oneClientLatency(env, timing));
      await run('c', 'worker busy fraction', () => workerBusy(env, timing));
      await run('d', 'protocols', () => protocols(env, timing));
      await run('e', 'sluice vs bare echo servers', () => overhead(env, timing));
      await run('f', 'SLO search', () => sloSearch(env, timing, quick ? 5 : 10));
      await run('g', 'the latency floor: sluice vs naive vs bare echo, stages, a 60 MB neighbour, overload', () => latencyFloor(env, timing, quick ? 6 : 10));
    }
    await run('h', 'fair queuing between tenants', async () => {
      const fairRepo = await mlpRepository(FAIRNESS_MODEL_CONFIG);
      temporary.push(fairRepo);
      const auth = await writeFairnessAuth();
      temporary.push(dirname(auth.file));
      const fair = await startServerProcess('sluice (fair queuing)', 'sluice', [...sluiceFlags(fairRepo), '--auth-config', auth.file, ...FAIRNESS_FLAGS]);
      servers.push(fair);
      const unfair = await startServerProcess('sluice (--fair-queuing false)', 'sluice', [...sluiceFlags(fairRepo), '--auth-config', auth.file, '--fair-queuing', 'false', ...FAIRNESS_FLAGS]);
      servers.push(unfair);
      const servers2 = { fair: { http: `http://127.0.0.1:${fair.ports['http']}`, pids: [fair.pid] }, unfair: { http: `http://127.0.0.1:${unfair.ports['http']}`, pids: [unfair.pid] }, auth };
      const meta = await modelMetadata({ protocol: 'json', url: servers2.fair.http, grpcUrl: undefined, model: 'mlp', version: '', timeoutMs: 30_000, headers: { authorization: `Bearer ${auth.steady}` } });
      const w: ModelWorkload = { meta, variants: generateVariants(meta, { seed: 1, variants: 8, batch: 1, shapes: {} }) };
      return { title: 'Fair queuing between tenants', body: await fairnessComparison(servers2, w, timing) };
    });
    await run('i', 'generation: continuous batching vs one sequence at a time', async () => {
      const servers3: GenerationServer[] = [];
      for (const [name, max] of [['sluice, continuous batching (32 sequences)', 32], ['sluice, one sequence at a time', 1]] as const) {
        const repo = await tinyLmRepository(ROOT, { maxActiveSequences: max });
        temporary.push(repo);
        const p = await startServerProcess(name, 'sluice', sluiceFlags(repo));
        servers.push(p);
        servers3.push({ name, url: `http://127.0.0.1:${p.ports['http']}`, pids: [p.pid] });
      }
      return { title: '(i) Generation: continuous batching vs one sequence at a time, and prefix reuse', body: await generationComparison(servers3[0]!, servers3[1]!, timing) };
    });
    await run('j', 'two gateways sharing two worker hosts', async () => ({
      title: '(j) Many gateways, one worker pool: two gateways sharing two worker hosts vs one gateway (mlp, REST JSON)',
      body: await sharedWorkersComparison(join(ROOT, 'models'), sluiceFlags, timing),
    }));
  } finally {
    for (const s of servers.reverse()) await s.stop();
    for (const dir of temporary) await rm(dir, { recursive: true, force: true });
  }
  const seconds = (Date.now() - started.getTime()) / 1000;
  const command = `npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`;
  const doc = [
    '# Benchmarks',
    '',
    quick
      ? '> **Smoke run** (`--quick`: one repeat of 1 s steps) on a machine shared with other work at the time. These numbers show that the suite runs end to end; they are not a measure of sluice. `npm run bench` (3 repeats of 5 s steps, about 10 minutes) on a quiet machine replaces this file.\n'
      : '',
    `- Machine: ${machine()}`,
    ...(isGpu(device) ? [`- Device: sluice's workers on the ${providerLabel(device)} provider (--cuda-fallback fail); the naive server on the CPU`] : []),
    `- Command: \`${command}\``,
    `- Date: ${started.toISOString()}; the run took ${seconds.toFixed(0)} s`,
    '- What these numbers mean, where the time goes and what limits them on this machine: [performance.md](performance.md) (written by hand, not by the suite).',
    `- Method: each comparison runs its contenders side by side in one run, interleaved, ${timing.repeats} repeat(s) of ${timing.warmupMs / 1000} s warm-up + ${timing.durationMs / 1000} s measured; tables show medians. Latencies are client-side (HDR histogram, microsecond resolution), open-loop latencies counted from each request's intended send time. Before the first comparison every server takes ${quick ? 2 : 10} s of load per protocol, not measured (warmup.ts: V8 keeps compiling sluice's request path for about 15 s). Every server runs in its own process (sluice with its default local worker: ONNX Runtime on the gateway's event loop, what --worker-isolation auto picks on the CPU), and all of them share the machine's cores with the load generator (\`sluice loadtest\`'s drivers: autocannon for HTTP/1.1 closed loops, a driver process of its own over raw keep-alive sockets for HTTP/1.1 open loops, grpc-js for gRPC).`,
    '',
    ...sections.flatMap((s) => [`## ${s.title}`, '', s.body, '']),
  ].join('\n');
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, doc);
  timing.log(`wrote ${out} (${seconds.toFixed(0)} s)`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runBench(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
