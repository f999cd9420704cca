import { execFile, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Logger } from 'pino';
import type { GpuSnapshot } from './metrics.ts';

/** The query whose output parseNvidiaSmi reads: one CSV line per GPU, MiB and percent, no header or units. */
export const NVIDIA_SMI_ARGS: readonly string[] = ['--query-gpu=index,memory.used,memory.total,utilization.gpu', '--format=csv,noheader,nounits'];

const MIB = 1024 * 1024;

/** What startGpuSampler returns; snapshot() is a MetricSources.gpus provider. */
export interface GpuSampler {
  /** The GPUs of the latest successful poll; empty without nvidia-smi or after a failed poll. */
  snapshot(): GpuSnapshot[];
  /** Whether nvidia-smi was found (so that the GPU gauges can appear at all). */
  readonly enabled: boolean;
  stop(): void;
}

/** Options of startGpuSampler; every field has a default fit for production. */
export interface GpuSamplerOptions {
  /** Poll period; nvidia-smi takes tens of milliseconds, so seconds keep its cost negligible. */
  readonly intervalMs?: number;
  /** The nvidia-smi executable: a name looked up on PATH, or a path. */
  readonly command?: string;
  readonly logger?: Logger;
}

/**
 * Parses `nvidia-smi --query-gpu=index,memory.used,memory.total,utilization.gpu --format=csv,noheader,nounits`.
 * Fields nvidia-smi cannot report ("[N/A]", "[Not Supported]", e.g. utilization under MIG) become NaN so
 * that the gauge skips them rather than exporting a made-up 0; lines that are not four fields are skipped.
 */
export function parseNvidiaSmi(text: string): GpuSnapshot[] {
  const out: GpuSnapshot[] = [];
  for (const line of text.split(/\r?\n/)) {
    const fields = line.split(',').map((f) => f.trim());
    if (fields.length !== 4) continue;
    const [index, used, total, util] = fields as [string, string, string, string];
    if (!/^\d+$/.test(index)) continue;
    out.push({
      gpu: index,
      memoryUsedBytes: numberOrNaN(used) * MIB,
      memoryTotalBytes: numberOrNaN(total) * MIB,
      utilization: numberOrNaN(util) / 100,
    });
  }
  return out;
}

function numberOrNaN(field: string): number {
  return /^\d+(\.\d+)?$/.test(field) ? Number(field) : NaN;
}

/** Whether `command` names an executable file, directly or on PATH. */
export function findExecutable(command: string, path = process.env['PATH'] ?? ''): string | undefined {
  const candidates = command.includes('/') ? [command] : path.split(delimiter).filter((d) => d !== '').map((d) => join(d, command));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // not here; try the next directory
    }
  }
  return undefined;
}

/**
 * Polls nvidia-smi on an unref'd timer while it exists; without it the sampler does nothing and the GPU
 * gauges stay absent (a CPU host exports no made-up GPU). One poll runs at a time: a hung nvidia-smi is
 * killed by the timeout rather than piling up processes.
 */
export function startGpuSampler(options: GpuSamplerOptions = {}): GpuSampler {
  const intervalMs = options.intervalMs ?? 5000;
  if (!Number.isFinite(intervalMs) || intervalMs < 100) throw new RangeError(`GPU sampler intervalMs must be >= 100, got ${intervalMs}`);
  const executable = findExecutable(options.command ?? 'nvidia-smi');
  let latest: GpuSnapshot[] = [];
  if (executable === undefined) {
    return { snapshot: () => latest, enabled: false, stop: () => undefined };
  }
  const logger = options.logger;
  let child: ChildProcess | undefined;
  let failing = false;
  let stopped = false;
  const poll = (): void => {
    if (child !== undefined || stopped) return;
    child = execFile(executable, NVIDIA_SMI_ARGS, { timeout: Math.min(intervalMs, 10_000), maxBuffer: 1024 * 1024 }, (err, stdout) => {
      child = undefined;
      if (stopped) return;
      if (err) {
        // Stale numbers would claim memory that may have been freed: export nothing until it recovers.
        latest = [];
        if (!failing) logger?.warn({ err, command: executable }, 'nvidia-smi failed; GPU metrics absent until it recovers');
        failing = true;
        return;
      }
      latest = parseNvidiaSmi(stdout);
      if (failing) logger?.info({ gpus: latest.length }, 'nvidia-smi recovered');
      failing = false;
    });
  };
  poll();
  const timer = setInterval(poll, intervalMs);
  timer.unref();
  return {
    snapshot: () => latest,
    enabled: true,
    stop: () => {
      stopped = true;
      clearInterval(timer);
      child?.kill();
      child = undefined;
      latest = [];
    },
  };
}
