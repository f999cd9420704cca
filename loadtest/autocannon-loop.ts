import autocannon from 'autocannon';
import { CheckSampler } from './check.ts';
import { decodeHttpResponse, httpErrorKind, INFER_HEADER } from './http-codec.ts';
import { inferPath, type HttpTarget } from './http-transport.ts';
import type { LoopStats, Timing } from './loops.ts';
import type { Recorder } from './recorder.ts';
import { errorCode, judge, WRONG_ANSWER } from './transport.ts';
import type { OutputCheck } from './types.ts';

/** autocannon's per-connection queue of requests awaiting their response (not in its typings). */
interface PendingQueue {
  peek(): PendingRequest | undefined;
  addBody(data: Buffer): void;
  terminateRequest(): PendingRequest | undefined;
}

interface PendingRequest {
  req?: { variant?: number };
  headers?: { headers?: string[] };
  raw?: Buffer[];
}

function headerOf(raw: string[] | undefined, name: string): string | undefined {
  if (!raw) return undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) return raw[i + 1];
  return undefined;
}

/**
 * Closed loop over HTTP/1.1 with autocannon: `connections` keep-alive connections, each sending its
 * next request when the previous response arrives, cycling through the input sets. One autocannon run
 * covers warm-up and measurement so the connections stay warm; the recorder drops warm-up responses.
 *
 * autocannon hands response bodies to callbacks as strings, which garbles binary tensors; its
 * per-connection pending queue is therefore wrapped to keep the raw chunks of each response.
 */
export async function runAutocannon(target: HttpTarget, recorder: Recorder, timing: Timing, opts: { connections: number; timeoutMs: number; check: OutputCheck | undefined; checkEvery: number; signal?: AbortSignal }): Promise<LoopStats> {
  const base = new URL(target.url);
  const path = inferPath(base, target.model, target.version);
  const sampler = new CheckSampler(opts.check ? opts.checkEvery : 0);
  const requests = target.bodies.map((b, variant) => ({ method: 'POST' as const, path, headers: { ...b.headers }, body: b.body, variant }));

  const setupClient = (client: autocannon.Client): void => {
    const queue = (client as unknown as { pipelinedRequests: PendingQueue }).pipelinedRequests;
    const addBody = queue.addBody.bind(queue);
    const terminate = queue.terminateRequest.bind(queue);
    let last: PendingRequest | undefined;
    queue.addBody = (data: Buffer): void => {
      const pending = queue.peek();
      if (pending) (pending.raw ??= []).push(data);
      addBody(data);
    };
    queue.terminateRequest = (): PendingRequest | undefined => {
      last = terminate();
      return last;
    };
    client.on('response', (status: number, _bytes: number, durationMs: number) => {
      const end = performance.now();
      const basis = end - durationMs;
      if (status < 200 || status >= 300) {
        recorder.record(basis, end, { ok: false, error: httpErrorKind(status) });
        return;
      }
      const check = sampler.next() ? opts.check : undefined;
      if (!check) {
        recorder.record(basis, end, { ok: true });
        return;
      }
      const variant = last?.req?.variant ?? 0;
      const header = headerOf(last?.headers?.headers, INFER_HEADER);
      const decoded = decodeHttpResponse(Buffer.concat(last?.raw ?? []), header !== undefined ? Number(header) : undefined);
      const outcome = judge(decoded, variant, check);
      recorder.noteChecked(!outcome.ok && outcome.error === WRONG_ANSWER);
      recorder.record(basis, end, outcome);
    });
  };

  let settle!: (r: { err: unknown; result: autocannon.Result | undefined }) => void;
  const finished = new Promise<{ err: unknown; result: autocannon.Result | undefined }>((resolve) => (settle = resolve));
  const instance = autocannon({
    url: base.origin,
    connections: opts.connections,
    pipelining: 1,
    duration: (timing.warmupMs + timing.durationMs) / 1000,
    timeout: Math.max(1, Math.ceil(opts.timeoutMs / 1000)),
    maxOverallRequests: timing.maxRequests,
    // The stop flag is only read on this tick: a short one ends the run close to its duration.
    sampleInt: 50,
    requests,
    setupClient,
    skipAggregateResult: true,
  }, (err: unknown, result: autocannon.Result) => settle({ err, result }));
  instance.on('reqError', (e: unknown) => {
    const now = performance.now();
    const code = errorCode(e);
    const isTimeout = e instanceof Error && /timed out/.test(e.message);
    recorder.record(isTimeout ? now - opts.timeoutMs : now, now, { ok: false, error: isTimeout ? 'timeout' : `transport: ${code}` });
  });
  const onAbort = (): void => instance.stop();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const { err, result } = await finished;
    if (err) throw err instanceof Error ? err : new Error(`autocannon failed: ${JSON.stringify(err)}`);
    // totalRequests (sent, in flight at the end included) is in autocannon's raw result, not its typings.
    const sent = (result as unknown as { totalRequests?: number } | undefined)?.totalRequests ?? 0;
    recorder.addSent(sent);
    return { sent, aborted: 0, late: 0, maxSendLagMs: 0 };
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
