/**
 * (i) Generation: continuous batching against one sequence at a time (the same gateway with
 * maxActiveSequences 1), 32 concurrent conversations over generate_stream, side by side and
 * interleaved, medians of the repeats; and time to first token of a conversation's second turn against
 * its first for a long shared prefix, one conversation at a time (a fresh system prompt per repeat, so
 * every first turn is a cold prefill).
 */
import { copyFile, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runGenerationLoad, type GenerationResult } from '../generation.ts';
import { processCpuMs, processTree } from '../server-cpu.ts';
import { mdTable, n0, n2, ratio, verdict } from './markdown.ts';
import { median, type BenchTiming } from './measure.ts';

export const GENERATION_CONVERSATIONS = 32;
const MAX_TOKENS = 64;
const TURNS = 3;
/** A long shared prefix: most of tiny_lm's 512 positions, leaving room for two turns. */
const PREFIX_CHARS = 360;

/** A repository of tiny_lm alone, its generation section changed by `generation`. */
export async function tinyLmRepository(root: string, generation: Record<string, number>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-bench-lm-'));
  await mkdir(join(dir, 'tiny_lm', '1'), { recursive: true });
  await copyFile(join(root, 'models', 'tiny_lm', '1', 'model.onnx'), join(dir, 'tiny_lm', '1', 'model.onnx'));
  await writeFile(join(dir, 'tiny_lm', 'config.json'), JSON.stringify({ name: 'tiny_lm', maxBatchSize: 0, generation }));
  return dir;
}

export interface GenerationServer {
  readonly name: string;
  readonly url: string;
  readonly pids: readonly number[];
}

async function measured(server: GenerationServer, run: () => Promise<GenerationResult>): Promise<{ r: GenerationResult; cpuUsPerToken: number }> {
  const cpu = (): number => processTree(server.pids).reduce((sum, pid) => sum + (processCpuMs(pid) ?? 0), 0);
  const before = cpu();
  const r = await run();
  return { r, cpuUsPerToken: ((cpu() - before) * 1000) / Math.max(1, r.generatedTokens) };
}

export async function generationComparison(continuous: GenerationServer, serial: GenerationServer, t: BenchTiming): Promise<string> {
  const runs = new Map<string, { r: GenerationResult; cpuUsPerToken: number }[]>([[continuous.name, []], [serial.name, []]]);
  const loadOf = (s: GenerationServer, seed: number) => ({ url: s.url, model: 'tiny_lm', conversations: GENERATION_CONVERSATIONS, turns: TURNS, maxTokens: MAX_TOKENS, promptChars: 48, sharedPrefixChars: 0, seed, timeoutMs: 300_000 });
  // One run each first, not measured: V8 compiles the path, ONNX Runtime sizes its arenas.
  for (const s of [continuous, serial]) await runGenerationLoad({ ...loadOf(s, 99), turns: 1 });
  for (let i = 0; i < t.repeats; i++) {
    for (const s of [continuous, serial]) {
      t.log(`  ${s.name}: ${GENERATION_CONVERSATIONS} conversations, repeat ${i + 1}`);
      runs.get(s.name)!.push(await measured(s, () => runGenerationLoad(loadOf(s, 100 + i))));
    }
  }
  const med = (name: string, pick: (x: { r: GenerationResult; cpuUsPerToken: number }) => number): number => median(runs.get(name)!.map(pick));
  const rows = [continuous, serial].map((s) => [
    s.name, n0(med(s.name, (x) => x.r.tokensPerSecond)), n2(med(s.name, (x) => x.r.interToken.p50)), n2(med(s.name, (x) => x.r.interToken.p99)),
    n2(med(s.name, (x) => x.r.ttftFirstTurn.p50)), n2(med(s.name, (x) => x.r.ttftFirstTurn.p99)), n0(med(s.name, (x) => x.cpuUsPerToken)),
    String(runs.get(s.name)!.reduce((n, x) => n + x.r.errors, 0)),
  ]);
  const speedup = med(continuous.name, (x) => x.r.tokensPerSecond) / med(serial.name, (x) => x.r.tokensPerSecond);

  const turns: { first: number; second: number; cached: number }[] = [];
  for (let i = 0; i < Math.max(3, t.repeats); i++) {
    const r = await runGenerationLoad({ url: continuous.url, model: 'tiny_lm', conversations: 1, turns: 2, maxTokens: 16, promptChars: 24, sharedPrefixChars: PREFIX_CHARS, seed: 1000 + i, timeoutMs: 120_000 });
    turns.push({ first: r.ttftFirstTurn.p50, second: r.ttftLaterTurns.p50, cached: r.cachedPromptShare });
  }
  const first = median(turns.map((x) => x.first));
  const second = median(turns.map((x) => x.second));
  return [
    `tiny_lm (2 layers, d=64, 4 heads, 97 tokens), ${GENERATION_CONVERSATIONS} concurrent conversations of ${TURNS} turns, ${MAX_TOKENS} tokens per turn (end token ignored), each turn resending the conversation; client-side times over generate_stream (SSE), medians of ${t.repeats} repeat(s) after one unmeasured run each; server CPU from /proc over the whole run (prefills included), per generated token.`,
    '',
    mdTable(['server', 'tokens/s', 'inter-token P50 ms', 'inter-token P99 ms', 'TTFT P50 ms', 'TTFT P99 ms', 'CPU us/token', 'errors'], rows),
    '',
    verdict('continuous batching >= 3x the tokens/s of one sequence at a time', speedup >= 3, ratio(speedup)),
    '',
    `Second turn against first, one conversation at a time, a ${PREFIX_CHARS}-character system prompt (fresh each repeat), 24-character turns, 16 tokens: time to first token ${n2(first)} ms on the first turn, ${n2(second)} ms on the second (${ratio(second / first)}); the second turn took ${(100 * median(turns.map((x) => x.cached))).toFixed(0)}% of both turns' prompt tokens from the cache (median).`,
    '',
    verdict("the second turn's time to first token <= 0.5x the first's", second <= 0.5 * first, ratio(second / first)),
  ].join('\n');
}
