/**
 * The worker process: `node --import tsx src/worker/main.ts --listen unix:/tmp/w0.sock ...` when the
 * gateway forks a local worker, or `sluice worker --listen 0.0.0.0:9000` on a remote worker host.
 * When forked with an IPC channel it reports {type:'ready', address} once listening and models named by
 * --load-model are loaded; SIGTERM, SIGINT or the parent going away drain it and exit 0.
 */
import { hostname } from 'node:os';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { DEVICES } from '../core/device.ts';
import { createLogger } from '../telemetry/logger.ts';
import { readPemFile, readTokenFile } from '../config/worker-link.ts';
import { watchFiles } from '../config/watch-files.ts';
import { startWorkerHost } from './host.ts';
import type { WorkerHostOptions } from './host-options.ts';
import type { WorkerHostTls } from './link-auth.ts';
import { isLocalOnly, parseListen } from './listen.ts';

/** The IPC message a forked worker sends once it serves. */
export interface WorkerReadyMessage {
  readonly type: 'ready';
  readonly address: string;
}

const HELP = `Usage: sluice worker [flags]

Runs a worker host: ONNX Runtime sessions behind the worker protocol (docs/worker-protocol.md), for a
gateway started with --worker http://HOST:PORT, https://HOST:PORT (with --tls-cert) or unix:/path.sock.

Flags:
  --listen ADDR             host:port or unix:/path.sock (default 127.0.0.1:9000: this machine only;
                            without --token-file or --tls-ca any peer may run batches, so listen wider,
                            e.g. 0.0.0.0:9000, only sealed or on a network of the gateways' own)
  --token-file FILE         refuse (401) every request without Authorization: Bearer <a line of the
                            file>; the gateway's --worker-token-file [SLUICE_WORKER_TOKEN_FILE]
                            (token and TLS files are read again on SIGHUP and when they change)
  --tls-cert FILE           PEM certificate: serve HTTPS (the gateway then uses https://)
  --tls-key FILE            PEM private key for --tls-cert
  --tls-ca FILE             PEM CA: refuse at the TLS handshake every peer without a client
                            certificate it signed (mutual TLS; the gateway's --worker-tls-cert)
  --model-repository DIR    model repository in Triton layout (default ./models)
  --device cpu|cuda|webgpu  execution provider (default cpu); webgpu is bundled (Dawn over Vulkan)
  --device-id N             GPU device id for --device cuda (default 0)
  --cuda-fallback cpu|fail  when the GPU provider (cuda, webgpu) cannot load: run on cpu, or fail models
                            (default cpu)
  --intra-op-threads N      ONNX Runtime threads per session; 0 = every core (default 0)
  --memory-budget SIZE      hot-model cache budget, e.g. 2gb (default 2gb)
  --max-queued-batches N    batches that may wait behind the running one, from every gateway together;
                            past them /infer answers busy (503 SLUICE_WORKER_BUSY) and the gateway keeps
                            the batch queued or sends it to another worker (default 8)
  --load-model NAME         load the latest version of NAME at start (repeatable)
  --id NAME                 worker name in logs and /health (default host-pid)
  --log-level LEVEL         fatal|error|warn|info|debug|trace (default info)
  --help                    this text
`;

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3 };

function parseSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([a-z]*)$/i.exec(text.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) return undefined;
  const n = Math.floor(Number(m[1]) * unit);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

function choice<T extends string>(flag: string, value: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) throw new RangeError(`--${flag}: '${value}' is not one of ${choices.join(', ')}`);
  return value as T;
}

function int(flag: string, value: string, min: number): number {
  if (!/^\d+$/.test(value) || Number(value) < min) throw new RangeError(`--${flag}: '${value}' is not an integer >= ${min}`);
  return Number(value);
}

/** The worker's flags: host options, plus the files of the link's secrets (read by readLinkSecrets). */
type ParsedOptions = Omit<WorkerHostOptions, 'logger' | 'token' | 'tls'> & {
  readonly logLevel: string;
  readonly link: LinkFiles;
};

/** Files of the link's secrets, as the flags name them. */
interface LinkFiles {
  readonly tokenFile: string | undefined;
  readonly tlsCertFile: string | undefined;
  readonly tlsKeyFile: string | undefined;
  readonly tlsCaFile: string | undefined;
}

/**
 * Parses worker flags (and SLUICE_WORKER_TOKEN_FILE, which --token-file overrides); throws RangeError
 * (or parseArgs' TypeError) naming the bad flag.
 */
export function parseWorkerArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = process.env): ParsedOptions {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      listen: { type: 'string', default: '127.0.0.1:9000' },
      'model-repository': { type: 'string', default: './models' },
      device: { type: 'string', default: 'cpu' },
      'device-id': { type: 'string', default: '0' },
      'cuda-fallback': { type: 'string', default: 'cpu' },
      'intra-op-threads': { type: 'string', default: '0' },
      'memory-budget': { type: 'string', default: '2gb' },
      'max-queued-batches': { type: 'string', default: '8' },
      'load-model': { type: 'string', multiple: true, default: [] },
      id: { type: 'string', default: `${hostname()}-${process.pid}` },
      'log-level': { type: 'string', default: 'info' },
      'token-file': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-ca': { type: 'string' },
    },
  });
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) throw new RangeError('--tls-cert and --tls-key must be given together');
  if (values['tls-ca'] !== undefined && values['tls-cert'] === undefined) throw new RangeError('--tls-ca checks client certificates over TLS: it needs --tls-cert and --tls-key');
  const tokenFile = values['token-file'] ?? (env['SLUICE_WORKER_TOKEN_FILE'] || undefined);
  const budget = parseSize(values['memory-budget']);
  if (budget === undefined) throw new RangeError(`--memory-budget: '${values['memory-budget']}' is not a size (e.g. 2147483648, 512mb, 2gb)`);
  return {
    listen: values.listen,
    modelRepository: values['model-repository'],
    id: values.id,
    device: choice('device', values.device, DEVICES),
    deviceId: int('device-id', values['device-id'], 0),
    cudaFallback: choice('cuda-fallback', values['cuda-fallback'], ['cpu', 'fail'] as const),
    intraOpThreads: int('intra-op-threads', values['intra-op-threads'], 0),
    memoryBudgetBytes: budget,
    maxQueuedBatches: int('max-queued-batches', values['max-queued-batches'], 1),
    loadModels: values['load-model'].flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== ''),
    logLevel: choice('log-level', values['log-level'], ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const),
    link: { tokenFile, tlsCertFile: values['tls-cert'], tlsKeyFile: values['tls-key'], tlsCaFile: values['tls-ca'] },
  };
}

/** Reads the files named by the link flags; throws an Error naming the flag when one is missing or empty. */
export function readLinkSecrets(p: LinkFiles): { token?: readonly string[]; tls?: WorkerHostTls } {
  const token = p.tokenFile === undefined ? undefined : readTokenFile(p.tokenFile, '--token-file');
  let tls: WorkerHostTls | undefined;
  if (p.tlsCertFile !== undefined && p.tlsKeyFile !== undefined) {
    const cert = readPemFile(p.tlsCertFile, '--tls-cert');
    const key = readPemFile(p.tlsKeyFile, '--tls-key');
    tls = p.tlsCaFile === undefined ? { cert, key } : { cert, key, ca: readPemFile(p.tlsCaFile, '--tls-ca') };
  }
  return { ...(token === undefined ? {} : { token }), ...(tls === undefined ? {} : { tls }) };
}

/** Runs a worker until a signal (or the parent's exit) drains it; resolves with the exit code. */
export async function runWorkerCli(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  let parsed: ParsedOptions;
  let secrets: ReturnType<typeof readLinkSecrets>;
  try {
    parsed = parseWorkerArgs(argv);
  } catch (e) {
    process.stderr.write(`sluice worker: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  try {
    secrets = readLinkSecrets(parsed.link);
  } catch (e) {
    process.stderr.write(`sluice worker: ${(e as Error).message}\n`);
    return 2;
  }
  const { logLevel, link: _files, ...flags } = parsed;
  const options = { ...flags, ...secrets };
  const logger = createLogger(logLevel);
  // The ORT thread may die during start-up loads, before the signal handlers below exist.
  let diedEarly = false;
  let onFatal = (): void => {
    diedEarly = true;
  };
  let host;
  try {
    host = await startWorkerHost({ ...options, logger, onFatal: () => onFatal() });
  } catch (e) {
    logger.fatal({ err: (e as Error).message, listen: options.listen }, 'worker failed to start');
    logger.flush();
    return 1;
  }
  const running = host;
  if (!isLocalOnly(parseListen(options.listen)) && options.token === undefined && options.tls?.ca === undefined) {
    logger.warn({ listen: options.listen }, 'the worker host listens beyond this machine without --token-file or --tls-ca: any peer that reaches this address can load models and run batches; seal the link or keep it on a network only the gateways reach');
  }
  // Rotation: the link's files are read again on SIGHUP and when they change; a set that cannot be read
  // (a file half-written, a key that does not fit its certificate) is refused and the old one kept.
  const { link } = parsed;
  const stopWatching = watchFiles([link.tokenFile ?? '', link.tlsCertFile ?? '', link.tlsKeyFile ?? '', link.tlsCaFile ?? ''], (why) => {
    try {
      running.rotateSecrets(readLinkSecrets(link));
      logger.info({ why }, 'worker link secrets rotated');
    } catch (e) {
      logger.error({ why, err: (e as Error).message }, 'worker link secrets not rotated; the previous ones stay in force');
    }
  });
  if (process.send) process.send({ type: 'ready', address: running.address } satisfies WorkerReadyMessage);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (why: string, code = 0): void => {
      if (stopping) return;
      stopping = true;
      stopWatching();
      logger.info({ why }, 'worker draining');
      running.close().then(
        () => {
          logger.flush();
          if (process.connected) process.disconnect();
          resolve(code);
        },
        (e: unknown) => {
          logger.error({ err: (e as Error).message }, 'worker drain failed');
          logger.flush();
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    // A forked worker whose gateway died must not linger holding memory (and a GPU).
    process.once('disconnect', () => stop('parent disconnected'));
    // Without its ONNX Runtime thread the worker can serve nothing: exiting non-zero makes the gateway
    // respawn it (accepted batches have already failed with SLUICE_WORKER_FAILED).
    onFatal = () => stop('ONNX Runtime thread died', 1);
    if (diedEarly) onFatal();
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runWorkerCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`sluice worker: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
