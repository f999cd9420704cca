/**
 * `sluice loadtest --generate`: concurrent conversations against a generative model's generate_stream
 * (loadtest/generation.ts), printed as one table: tokens per second, time to first token of first and
 * later turns, inter-token latency, and the server's CPU per generated token when --server-pid is given.
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { runGenerationLoad, type GenerationLoad, type GenerationResult } from './generation.ts';
import { processCpuMs, processTree } from './server-cpu.ts';

export const GENERATE_HELP = `Usage: sluice loadtest --generate [flags]

Concurrent conversations over generate_stream (server-sent events); each turn resends the
conversation so far, as a chat client does, so later turns can reuse the server's KV cache.

  --url URL                  server (default http://127.0.0.1:8000)
  --model NAME               generative model (default tiny_lm)
  --conversations N          concurrent conversations (default 32)
  --turns N                  turns per conversation (default 2)
  --max-tokens N             tokens generated per turn, end token ignored (default 32)
  --prompt-chars N           characters of each turn's user text (default 48)
  --shared-prefix-chars N    a system prompt every conversation starts with (default 0)
  --seed N                   text seed (default 1)
  --timeout S                the run ends by then (default 300)
  --server-pid PID           report the server's CPU per generated token (its children included)
  --header 'Name: value'     sent with every request (repeatable)
  --json FILE                write the result as JSON
`;

function int(name: string, v: string | undefined, fallback: number, min: number, max: number): number {
  const n = v === undefined ? fallback : Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max}, got ${v}`);
  return n;
}

const ms = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '–');

export function renderGeneration(r: GenerationResult, cpuMsPerToken: number | undefined): string {
  const rows = [
    ['tokens/s', r.tokensPerSecond.toFixed(0)],
    ['generated tokens', String(r.generatedTokens)],
    ['requests (errors)', `${r.requests} (${r.errors})`],
    ['TTFT first turn P50 / P95 / P99 ms', `${ms(r.ttftFirstTurn.p50)} / ${ms(r.ttftFirstTurn.p95)} / ${ms(r.ttftFirstTurn.p99)}`],
    ['TTFT later turns P50 / P95 / P99 ms', `${ms(r.ttftLaterTurns.p50)} / ${ms(r.ttftLaterTurns.p95)} / ${ms(r.ttftLaterTurns.p99)}`],
    ['inter-token P50 / P95 / P99 ms', `${ms(r.interToken.p50)} / ${ms(r.interToken.p95)} / ${ms(r.interToken.p99)}`],
    ['prompt tokens from the cache', `${(100 * r.cachedPromptShare).toFixed(0)}%`],
    ...(cpuMsPerToken === undefined ? [] : [['server CPU per token us', (cpuMsPerToken * 1000).toFixed(0)]]),
  ];
  const width = Math.max(...rows.map((x) => x[0]!.length));
  return rows.map(([k, v]) => `${k!.padEnd(width)}  ${v}`).join('\n');
}

export async function runGenerationCli(argv: readonly string[]): Promise<number> {
  let load: GenerationLoad;
  let pids: number[];
  let json: string | undefined;
  try {
    const { values: v } = parseArgs({
      args: [...argv], strict: true,
      options: {
        generate: { type: 'boolean' }, url: { type: 'string' }, model: { type: 'string' }, conversations: { type: 'string' }, turns: { type: 'string' },
        'max-tokens': { type: 'string' }, 'prompt-chars': { type: 'string' }, 'shared-prefix-chars': { type: 'string' }, seed: { type: 'string' },
        timeout: { type: 'string' }, 'server-pid': { type: 'string', multiple: true }, header: { type: 'string', multiple: true }, json: { type: 'string' }, help: { type: 'boolean', short: 'h' },
      },
    });
    if (v.help) {
      process.stdout.write(GENERATE_HELP);
      return 0;
    }
    const headers: Record<string, string> = {};
    for (const h of v.header ?? []) {
      const at = h.indexOf(':');
      if (at <= 0) throw new Error(`--header '${h}' must be 'Name: value'`);
      headers[h.slice(0, at).trim().toLowerCase()] = h.slice(at + 1).trim();
    }
    load = {
      url: (v.url ?? 'http://127.0.0.1:8000').replace(/\/$/, ''), model: v.model ?? 'tiny_lm',
      conversations: int('conversations', v.conversations, 32, 1, 4096), turns: int('turns', v.turns, 2, 1, 100),
      maxTokens: int('max-tokens', v['max-tokens'], 32, 1, 1_000_000), promptChars: int('prompt-chars', v['prompt-chars'], 48, 1, 1_000_000),
      sharedPrefixChars: int('shared-prefix-chars', v['shared-prefix-chars'], 0, 0, 1_000_000), seed: int('seed', v.seed, 1, 0, 2 ** 31),
      timeoutMs: int('timeout', v.timeout, 300, 1, 3600) * 1000, headers,
    };
    pids = (v['server-pid'] ?? []).map((p) => int('server-pid', p, 0, 1, 2 ** 22));
    json = v.json;
  } catch (e) {
    process.stderr.write(`sluice loadtest --generate: ${(e as Error).message}\nRun 'sluice loadtest --generate --help' for the flags.\n`);
    return 2;
  }
  const cpu = (): number => processTree(pids).reduce((sum, pid) => sum + (processCpuMs(pid) ?? 0), 0);
  const before = pids.length > 0 ? cpu() : 0;
  const result = await runGenerationLoad(load);
  const cpuMsPerToken = pids.length > 0 && result.generatedTokens > 0 ? (cpu() - before) / result.generatedTokens : undefined;
  process.stdout.write(`${load.model}: ${load.conversations} conversations x ${load.turns} turns x ${load.maxTokens} tokens\n${renderGeneration(result, cpuMsPerToken)}\n`);
  if (json) await writeFile(json, `${JSON.stringify({ load: { ...load, headers: Object.keys(load.headers ?? {}) }, result, cpuMsPerToken }, null, 2)}\n`);
  if (result.errors > 0) {
    process.stderr.write(`sluice loadtest --generate: ${result.errors} request(s) failed; first: ${result.firstError ?? '?'}\n`);
    return 1;
  }
  return 0;
}
