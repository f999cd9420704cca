import { ConfigError, loadConfig, optionsHelp } from './config/load.ts';

const USAGE = `sluice — inference-serving gateway for ONNX models (Open Inference Protocol over HTTP/1.1, HTTP/2 and gRPC)

Usage:
  sluice serve [flags]      run the gateway (REST :8000, gRPC :8001, metrics :8002)
  sluice worker [flags]     run a remote worker host that a gateway reaches with --worker URL
  sluice loadtest [flags]   load-test a running server (closed and open loop, SLO search, reports)
  sluice keygen [--key K]   print a new API key and the sha256 the auth config stores (docs/security.md)

Run 'sluice <command> --help' for the flags of a command.
`;

async function serve(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`Usage: sluice serve [flags]\n\nEvery flag also reads from its environment variable (in brackets) and from --config FILE; flags win.\n\n${optionsHelp()}\n`);
    return 0;
  }
  let config;
  try {
    config = loadConfig({ argv, env: process.env });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`sluice: invalid configuration: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const { startSluice } = await import('./main.ts');
  const { createLogger } = await import('./telemetry/logger.ts');
  const logger = createLogger(config.logLevel);
  let sluice;
  try {
    sluice = await startSluice(config, { logger });
  } catch (e) {
    const { AccessConfigError } = await import('./access/access-config.ts');
    if (!(e instanceof AccessConfigError)) throw e;
    process.stderr.write(`sluice: ${e.message}\n`);
    return 2;
  }
  return new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      logger.info({ signal }, 'draining: no new requests, answering those accepted');
      sluice.close().then(
        () => {
          logger.info('drained, exiting');
          logger.flush();
          resolve(0);
        },
        (e: unknown) => {
          logger.error({ err: e }, 'shutdown failed');
          logger.flush();
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'worker': {
      const { runWorkerCli } = await import('./worker/main.ts');
      return runWorkerCli(rest);
    }
    case 'keygen': {
      const { runKeygen } = await import('./access/keygen.ts');
      return runKeygen(rest, process.stdout);
    }
    case 'loadtest': {
      const { runLoadtestCli } = await import('../loadtest/cli.ts');
      return runLoadtestCli(rest);
    }
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`sluice: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`sluice: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
