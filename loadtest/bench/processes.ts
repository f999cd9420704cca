import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** A benchmark server running in a child process. */
export interface ServerProcess {
  readonly name: string;
  readonly ports: Readonly<Record<string, number>>;
  /** The server's process id (its own child processes, such as sluice's workers, are found from it). */
  readonly pid: number;
  stop(): Promise<void>;
}

const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url));

/** Starts `child.ts <kind> <args>` and waits for the JSON line with its ports (bounded wait). */
export function startServerProcess(name: string, kind: string, args: readonly string[], timeoutMs = 180_000): Promise<ServerProcess> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', CHILD, kind, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    // Only the tail is kept: enough to explain a failed start, bounded whatever the child logs.
    stderr = (stderr + c.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    killer.unref();
    await exited;
    clearTimeout(killer);
  };
  return new Promise<ServerProcess>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`${name} did not start within ${timeoutMs / 1000}s: ${stderr}`));
    }, timeoutMs);
    timer.unref();
    const onData = (c: Buffer): void => {
      out += c.toString();
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      child.stdout!.off('data', onData);
      clearTimeout(timer);
      try {
        const { ports } = JSON.parse(out.slice(0, nl)) as { ports: Record<string, number> };
        // Later output is drained so that a chatty child never blocks on a full pipe.
        child.stdout!.resume();
        resolve({ name, ports, pid: child.pid ?? 0, stop });
      } catch {
        void stop();
        reject(new Error(`${name} printed '${out.slice(0, nl)}' instead of its ports: ${stderr}`));
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before serving: ${stderr}`));
    });
  });
}
