import { parseArgs } from 'node:util';
import { startFastifyEcho, startGrpcEcho } from './echo-servers.ts';
import type { BenchServer } from './naive-server.ts';

/**
 * A server of the benchmark in its own process, so that it never shares an event loop with the load
 * generator: `child.ts sluice <serve flags>` | `naive <flags>` | `echo-http` | `echo-grpc`. It prints one
 * JSON line with its ports once it is serving, and stops cleanly on SIGTERM.
 */
async function start(kind: string, args: string[]): Promise<{ ports: Record<string, number>; close(): Promise<void> }> {
  const host = '127.0.0.1';
  switch (kind) {
    case 'sluice': {
      const { loadConfig } = await import('../../src/config/load.ts');
      const { startSluice } = await import('../../src/main.ts');
      const { createLogger } = await import('../../src/telemetry/logger.ts');
      const config = loadConfig({ argv: args, env: {} });
      const sluice = await startSluice(config, { logger: createLogger(config.logLevel) });
      return { ports: { ...sluice.ports }, close: () => sluice.close() };
    }
    case 'naive': {
      const { startNaiveServer } = await import('./naive-server.ts');
      const { values } = parseArgs({ args, options: { 'model-file': { type: 'string' }, model: { type: 'string' }, 'input-name': { type: 'string' }, 'intra-op-threads': { type: 'string' }, 'skip-inference': { type: 'boolean' } } });
      if (!values['model-file'] || !values.model || !values['input-name']) throw new Error('naive needs --model-file, --model and --input-name');
      const s = await startNaiveServer({ modelFile: values['model-file'], model: values.model, inputName: values['input-name'], host, port: 0, intraOpThreads: Number(values['intra-op-threads'] ?? 0), skipInference: values['skip-inference'] === true });
      return { ports: { http: s.port }, close: () => s.close() };
    }
    case 'echo-http':
    case 'echo-grpc': {
      const s: BenchServer = kind === 'echo-http' ? await startFastifyEcho({ host, port: 0 }) : await startGrpcEcho({ host, port: 0 });
      return { ports: kind === 'echo-http' ? { http: s.port } : { grpc: s.port }, close: () => s.close() };
    }
    default:
      throw new Error(`unknown bench server '${kind}'`);
  }
}

const [kind = '', ...rest] = process.argv.slice(2);
try {
  const server = await start(kind, rest);
  process.stdout.write(`${JSON.stringify({ ports: server.ports })}\n`);
  process.once('SIGTERM', () => {
    server.close().then(() => process.exit(0), () => process.exit(1));
  });
} catch (e) {
  process.stderr.write(`bench server '${kind}' failed to start: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
}
