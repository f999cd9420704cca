import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's times; 100 on every common Linux, asked once. */
let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
      ticksPerSecond = Number.isInteger(n) && n > 0 ? n : 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** The fields of /proc/<pid>/stat after the command name, which may itself hold spaces and parentheses. */
function statFields(pid: number): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const close = text.lastIndexOf(')');
  return close < 0 ? undefined : text.slice(close + 2).trim().split(' ');
}

/**
 * CPU time (user + system, every thread) a process has used so far, in milliseconds, from
 * /proc/<pid>/stat's utime and stime; undefined when the process is gone or /proc is not Linux's.
 */
export function processCpuMs(pid: number): number | undefined {
  const f = statFields(pid);
  // After the name: state(3) ppid(4) ... utime(14) stime(15), counted from 1 with pid and name first.
  const utime = Number(f?.[11]);
  const stime = Number(f?.[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return ((utime + stime) * 1000) / clockTicks();
}

/** The processes and every descendant (sluice's worker processes are children of the gateway). */
export function processTree(pids: readonly number[]): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [...pids];
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const ppid = Number(statFields(Number(name))?.[1]);
    if (!Number.isInteger(ppid)) continue;
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const seen = new Set<number>();
  const queue = [...pids];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return [...seen];
}

/** The server's CPU over one step. */
export interface ServerCpu {
  /** CPU milliseconds of the server's processes (descendants included) between the two readings. */
  readonly cpuMs: number;
  /** Processes that were read at both ends. */
  readonly processes: number;
  /** Microseconds of server CPU per request it answered (any status) in the same time. */
  readonly usPerRequest: number | undefined;
}

/**
 * Reads the server's CPU time at the start of measurement and again at its end. The process tree is
 * taken at the start; a process that ended before the end (a crashed worker) is left out of both ends,
 * one that started meanwhile is not seen: the reading is exact for a steady set of processes.
 * /proc counts in clock ticks (10 ms), so a step should take several hundred of them.
 */
export class CpuMeter {
  readonly #start = new Map<number, number>();
  #end: { cpuMs: number; processes: number } | undefined;

  constructor(pids: readonly number[]) {
    for (const pid of processTree(pids)) {
      const ms = processCpuMs(pid);
      if (ms !== undefined) this.#start.set(pid, ms);
    }
  }

  /** Whether any process could be read (pids given, on Linux). */
  get reading(): boolean {
    return this.#start.size > 0;
  }

  /** Takes the second reading (once: later calls keep the first). */
  stop(): void {
    if (this.#end) return;
    let cpuMs = 0;
    let processes = 0;
    for (const [pid, before] of this.#start) {
      const after = processCpuMs(pid);
      if (after === undefined) continue;
      cpuMs += after - before;
      processes += 1;
    }
    this.#end = { cpuMs, processes };
  }

  /** The reading over the step, per request the server answered in it. */
  result(answered: number): ServerCpu {
    this.stop();
    const { cpuMs, processes } = this.#end!;
    return { cpuMs, processes, usPerRequest: answered > 0 && processes > 0 ? (cpuMs * 1000) / answered : undefined };
  }
}
