/** What a worker host is built from, and what a running one offers (src/worker/host.ts builds it). */
import type { Device } from '../core/device.ts';
import type { SluiceError } from '../core/errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { WorkerHostTls } from './link-auth.ts';

/** Everything a worker host needs; main.ts builds it from flags. */
export interface WorkerHostOptions {
  /** 'unix:/path/to.sock' or 'host:port' (port 0 = any free port). */
  readonly listen: string;
  readonly modelRepository: string;
  readonly id: string;
  readonly device: Device;
  readonly deviceId: number;
  readonly cudaFallback: 'cpu' | 'fail';
  /** ONNX Runtime intra-op threads per session; 0 = every core. */
  readonly intraOpThreads: number;
  readonly memoryBudgetBytes: number;
  /** Models (latest version) to load before the host reports ready; a failure is logged, not fatal. */
  readonly loadModels?: readonly string[];
  readonly logger: Logger;
  /**
   * Batches that may wait behind the running one (every gateway's together); past them /infer answers
   * busy (SLUICE_WORKER_BUSY), which a gateway takes as "keep it queued", not as an error (default 8).
   */
  readonly maxQueuedBatches?: number;
  /** Largest /infer body accepted (default 1 GiB). */
  readonly maxBodyBytes?: number;
  /**
   * Called once if the ONNX Runtime thread dies: batches in flight and queued fail with
   * SLUICE_WORKER_FAILED, and so does every later batch. A worker process should then exit non-zero so
   * that its gateway respawns it (runWorkerCli does).
   */
  readonly onFatal?: (err: SluiceError) => void;
  /** Shared token(s) every request must present one of as `Authorization: Bearer` (docs/worker-protocol.md). */
  readonly token?: string | readonly string[];
  /** Serve HTTPS; with `ca`, only to peers whose client certificate chains to it. */
  readonly tls?: WorkerHostTls;
}

/** A running worker host. */
export interface WorkerHost {
  /** Where it listens: 'unix:/path' or 'host:port' with the bound port. */
  readonly address: string;
  /** Stops accepting, finishes queued and running batches, releases sessions, closes connections. */
  close(): Promise<void>;
  /**
   * Rotates the link's secrets (read again from their files): new tokens apply to the next request, TLS
   * material to the next handshake (link-auth.ts). A host keeps the kind of link it started with.
   */
  rotateSecrets(secrets: { readonly token?: string | readonly string[]; readonly tls?: WorkerHostTls }): void;
}
