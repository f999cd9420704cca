/**
 * The generation load: N concurrent conversations, each a closed loop of turns over generate_stream
 * (server-sent events), every turn resending the conversation so far, as a chat client does. Measured
 * at the client: time to first token per turn, the gaps between tokens, and tokens per second over
 * the whole run. Every run is bounded by its turns and max_tokens, and by a deadline.
 */
import { setMaxListeners } from 'node:events';
import { Agent, request } from 'undici';

export interface GenerationLoad {
  readonly url: string;
  readonly model: string;
  readonly conversations: number;
  readonly turns: number;
  readonly maxTokens: number;
  /** Characters of each turn's own user text. */
  readonly promptChars: number;
  /** Characters of a system prompt every conversation starts with (0 = none). */
  readonly sharedPrefixChars: number;
  readonly seed: number;
  readonly headers?: Readonly<Record<string, string>>;
  /** The whole run ends by then (requests in flight are cancelled). */
  readonly timeoutMs: number;
}

export interface Percentiles {
  readonly count: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
}

export interface GenerationResult {
  readonly seconds: number;
  readonly generatedTokens: number;
  readonly tokensPerSecond: number;
  readonly requests: number;
  readonly errors: number;
  readonly firstError: string | undefined;
  /** Time to first token (ms) of each conversation's first turn, and of its later turns. */
  readonly ttftFirstTurn: Percentiles;
  readonly ttftLaterTurns: Percentiles;
  /** Gaps between consecutive tokens of one answer (ms). */
  readonly interToken: Percentiles;
  /** Prompt tokens the server took from its cache, over all prompt tokens. */
  readonly cachedPromptShare: number;
}

export function percentiles(values: readonly number[]): Percentiles {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number): number => (s.length === 0 ? Number.NaN : s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!);
  return { count: s.length, p50: at(0.5), p95: at(0.95), p99: at(0.99) };
}

/** Printable ASCII text from a seed: the same conversation every run. */
function text(seed: number, length: number): string {
  const words = ['model', 'serve', 'batch', 'token', 'cache', 'tail', 'queue', 'worker', 'stream', 'prefix', 'latency', 'gpu'];
  let s = '';
  let x = seed >>> 0 || 1;
  while (s.length < length) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    s += `${words[(x >>> 0) % words.length]} `;
  }
  return s.slice(0, length);
}

interface TurnOutcome {
  readonly text: string;
  readonly ttftMs: number;
  readonly gapsMs: number[];
  readonly completionTokens: number;
  readonly promptTokens: number;
  readonly cachedTokens: number;
}

async function turn(agent: Agent, load: GenerationLoad, prompt: string, signal: AbortSignal): Promise<TurnOutcome> {
  const sent = performance.now();
  const res = await request(`${load.url}/v2/models/${load.model}/generate_stream`, {
    method: 'POST', dispatcher: agent, signal,
    headers: { 'content-type': 'application/json', ...load.headers },
    body: JSON.stringify({ text_input: prompt, parameters: { max_tokens: load.maxTokens, temperature: 0, ignore_eos: true } }),
  });
  if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${(await res.body.text()).slice(0, 200)}`);
  let buffer = '';
  let out = '';
  let last = sent;
  let ttftMs = Number.NaN;
  const gapsMs: number[] = [];
  let final: Record<string, unknown> | undefined;
  for await (const chunk of res.body) {
    const now = performance.now();
    buffer += (chunk as Buffer).toString('utf8');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!event.startsWith('data: ')) continue;
      const data = JSON.parse(event.slice(6)) as Record<string, unknown>;
      if (typeof data['error'] === 'string') throw new Error(data['error']);
      if (data['finish_reason'] !== undefined) {
        final = data;
        continue;
      }
      const piece = data['text_output'];
      if (typeof piece === 'string') out += piece;
      if (Number.isNaN(ttftMs)) ttftMs = now - sent;
      else gapsMs.push(now - last);
      last = now;
    }
  }
  if (!final) throw new Error('the stream ended without its final event');
  return { text: out, ttftMs, gapsMs, completionTokens: Number(final['completion_tokens']), promptTokens: Number(final['prompt_tokens']), cachedTokens: Number(final['cached_tokens']) };
}

export async function runGenerationLoad(load: GenerationLoad): Promise<GenerationResult> {
  const agent = new Agent({ connections: load.conversations, pipelining: 1 });
  const abort = new AbortController();
  // Every conversation's request listens to it.
  setMaxListeners(load.conversations + 8, abort.signal);
  const deadline = setTimeout(() => abort.abort(), load.timeoutMs);
  const system = load.sharedPrefixChars > 0 ? `${text(load.seed, load.sharedPrefixChars)}\n` : '';
  const first: number[] = [];
  const later: number[] = [];
  const gaps: number[] = [];
  let generated = 0;
  let promptTokens = 0;
  let cachedTokens = 0;
  let requests = 0;
  let errors = 0;
  let firstError: string | undefined;
  const started = performance.now();
  try {
    await Promise.all(Array.from({ length: load.conversations }, async (_, c) => {
      let history = system;
      for (let k = 0; k < load.turns && !abort.signal.aborted; k++) {
        const prompt = `${history}User: ${text(load.seed * 7919 + c * 131 + k, load.promptChars)}\nAssistant:`;
        requests++;
        try {
          const r = await turn(agent, load, prompt, abort.signal);
          (k === 0 ? first : later).push(r.ttftMs);
          gaps.push(...r.gapsMs);
          generated += r.completionTokens;
          promptTokens += r.promptTokens;
          cachedTokens += r.cachedTokens;
          history = `${prompt}${r.text}\n`;
        } catch (e) {
          errors++;
          firstError ??= (e as Error).message;
          return;
        }
      }
    }));
  } finally {
    clearTimeout(deadline);
    await agent.close();
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    seconds, generatedTokens: generated, tokensPerSecond: generated / seconds, requests, errors, firstError,
    ttftFirstTurn: percentiles(first), ttftLaterTurns: percentiles(later), interToken: percentiles(gaps),
    cachedPromptShare: promptTokens === 0 ? 0 : cachedTokens / promptTokens,
  };
}
