// A real DNS server for discovery tests: dnsmasq on one address and port, answering NAME from a hosts
// file that the test rewrites (SIGHUP makes dnsmasq re-read it), authoritative for sluice.test so that
// a name it does not hold is NXDOMAIN rather than a refusal.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir } from '../worker/helpers.ts';

export const DISCOVERY_NAME = 'workers.sluice.test';

/** Why dnsmasq cannot be used here, or undefined when it can. */
export const dnsmasqMissing: string | undefined = spawnSync('dnsmasq', ['--version']).error ? "dnsmasq is not installed (.ci/run installs Debian's dnsmasq-base)" : undefined;

export interface TestDns {
  readonly address: string;
  readonly port: number;
  /** Rewrites the hosts file with these addresses for DISCOVERY_NAME and waits until dnsmasq re-read it. */
  set(addresses: readonly string[]): Promise<void>;
  stop(): Promise<void>;
}

/** A free TCP port on `host` (dnsmasq also takes the UDP port of the same number; a clash fails its start). */
export async function freePort(host: string): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, host, resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

export async function startDnsmasq(t: TestContext, addresses: readonly string[], listen = '127.0.0.1'): Promise<TestDns> {
  const hosts = join(tempDir(t), 'hosts');
  const write = (a: readonly string[]): void => writeFileSync(hosts, a.map((x) => `${x} ${DISCOVERY_NAME}\n`).join(''), { mode: 0o644 });
  write(addresses);
  const port = await freePort(listen);
  const child: ChildProcess = spawn('dnsmasq', ['--keep-in-foreground', '--conf-file=/dev/null', `--port=${port}`, `--listen-address=${listen}`, '--bind-interfaces',
    '--no-resolv', '--no-hosts', `--addn-hosts=${hosts}`, '--local=/sluice.test/', '--pid-file=', `--user=${userInfo().username}`, '--log-facility=-'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  };
  t.after(stop);
  await until(`dnsmasq serving its hosts file (${stderr})`, () => child.exitCode === null && stderr.includes(`read ${hosts}`), 10_000);
  return {
    address: listen,
    port,
    set: async (a) => {
      write(a);
      const before = stderr.length;
      child.kill('SIGHUP');
      await until('dnsmasq re-reading its hosts file', () => stderr.slice(before).includes(`read ${hosts}`), 5_000);
    },
    stop,
  };
}
