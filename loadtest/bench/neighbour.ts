/**
 * A neighbour that sends bodies far over the model's limit: does one client's 60 MB JSON upload cost
 * another client its latency? sluice refuses such a body by its Content-Length (413) without reading
 * it and closes the connection; what is left to cost anything is the connection, the bytes the kernel
 * took before the close, and the sender's own CPU on a machine the server shares.
 */
import { request, type ClientRequest } from 'node:http';
import { errorCode } from '../transport.ts';
import type { StepSpec } from '../types.ts';
import { mdTable, n0, n2, ratio, verdict } from './markdown.ts';
import { measureSideBySide, median, type Alongside, type BenchTiming, type Measured, type ModelWorkload, type Target } from './measure.ts';

/** Rows of the neighbour's body: 20,000 × 784 FP32 values of mlp, 62.7 MB of JSON. */
export const NEIGHBOUR_ROWS = 20_000;
/** Client A's rate: the light-load row of (g), where a disturbance shows most. */
export const NEIGHBOUR_RATE = 250;

/**
 * A REST JSON infer body of rows × cols FP32 values, all 0.5: filled as bytes rather than serialized,
 * so that building 60 MB takes milliseconds and no number array.
 */
export function hugeJsonBody(input: string, rows: number, cols: number): Buffer {
  const head = `{"inputs":[{"name":${JSON.stringify(input)},"shape":[${rows},${cols}],"datatype":"FP32","data":[`;
  const tail = ']}]}';
  const data = 4 * rows * cols;
  const body = Buffer.alloc(head.length + data - 1 + tail.length);
  body.write(head, 0, 'latin1');
  body.fill('0.5,', head.length, head.length + data);
  // The tail overwrites the last value's comma.
  body.write(tail, head.length + data - 1, 'latin1');
  return body;
}

/** Socket errors of a body the server stopped reading: the expected end of a refused upload. */
const CUT_OFF = new Set(['EPIPE', 'ECONNRESET']);

/**
 * Client B: one body at a time, back to back, each on a fresh HTTP/1.1 connection (no agent), from
 * start() until the load is stopped. Counts accumulate over every start.
 */
export class BigBodyNeighbour {
  readonly #url: URL;
  readonly #body: Buffer;
  readonly #outcomes = new Map<string, number>();
  readonly #answerMs: number[] = [];
  #bodies = 0;
  #cutOff = 0;

  constructor(url: URL, body: Buffer) {
    this.#url = url;
    this.#body = body;
  }

  get bodyBytes(): number {
    return this.#body.length;
  }

  /** Starts sending; stop() cuts the body in flight (not counted) and waits for the loop to end. */
  start(): Alongside {
    let stopped = false;
    let current: ClientRequest | undefined;
    const loop = (async (): Promise<void> => {
      while (!stopped) {
        await this.#sendOne((req) => void (current = req), () => stopped);
      }
    })();
    return {
      stop: async () => {
        stopped = true;
        current?.destroy();
        await loop;
      },
    };
  }

  /** What B saw: bodies finished, how they ended, the connections cut while writing, the answer times. */
  stats(): { bodies: number; outcomes: Readonly<Record<string, number>>; cutOff: number; answerMs: readonly number[] } {
    return { bodies: this.#bodies, outcomes: Object.fromEntries(this.#outcomes), cutOff: this.#cutOff, answerMs: [...this.#answerMs] };
  }

  #sendOne(track: (req: ClientRequest) => void, stopping: () => boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      const t0 = performance.now();
      let status: number | undefined;
      let settled = false;
      // An answer's status wins over the socket error that may follow it (the server closes after a 413).
      const settle = (outcome: string): void => {
        if (settled) return;
        settled = true;
        if (!stopping()) {
          this.#bodies += 1;
          this.#outcomes.set(outcome, (this.#outcomes.get(outcome) ?? 0) + 1);
        }
        resolve();
      };
      const req = request(this.#url, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': String(this.#body.length) } });
      track(req);
      req.on('response', (res) => {
        status = res.statusCode;
        this.#answerMs.push(performance.now() - t0);
        res.resume();
        res.on('end', () => settle(`http ${status}`));
        res.on('error', () => settle(`http ${status}`));
      });
      req.on('error', (e) => {
        const code = errorCode(e);
        if (CUT_OFF.has(code) && !stopping()) this.#cutOff += 1;
        settle(status === undefined ? code : `http ${status}`);
      });
      req.on('close', () => settle(status === undefined ? 'closed without an answer' : `http ${status}`));
      req.end(this.#body);
    });
  }
}

const nearest = (sorted: readonly number[], q: number): number | undefined => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)];

/**
 * Client A on mlp (REST JSON, open loop) alone and beside client B, interleaved; B runs beside every
 * run of the second row only.
 */
export async function neighbourComparison(sluice: Target, w: ModelWorkload, t: BenchTiming): Promise<string> {
  const input = w.meta.inputs[0]!;
  const cols = input.shape.slice(1).reduce((p, d) => p * Math.max(1, d), 1);
  const b = new BigBodyNeighbour(new URL(`/v2/models/${w.meta.name}/infer`, sluice.url), hugeJsonBody(input.name, NEIGHBOUR_ROWS, cols));
  const spec: StepSpec = { mode: 'open', rate: NEIGHBOUR_RATE };
  const [alone, beside] = await measureSideBySide(w.meta.name, w, [
    { target: { ...sluice, name: 'client A alone' }, spec },
    { target: { ...sluice, name: 'client A beside B' }, spec, alongside: () => b.start() },
  ], t);
  const s = b.stats();
  t.log(`  client B: ${s.bodies} bodies, ${JSON.stringify(s.outcomes)}, ${s.cutOff} cut off while writing`);
  const answers = [...s.answerMs].sort((x, y) => x - y);
  const p99Ratio = alone!.p99 > 0 ? beside!.p99 / alone!.p99 : undefined;
  const outcomes = Object.entries(s.outcomes).map(([k, v]) => `${k}: ${n0(v)}`).join(', ') || 'none';
  const aErrors = [alone!, beside!].filter((m) => m.errors > 0).map((m) => `${m.target.name}: ${m.errors} (${m.wrong} wrong answers)`);
  const row = (m: Measured): string[] => [m.target.name, n0(m.qps), n2(m.p50), n2(m.p99), n0(Math.max(...m.runs.map((r) => r.late))), n0(m.cpuUsPerRequest)];
  return [
    `**A neighbour sending 60 MB bodies** (client A: ${w.meta.name}, REST JSON, open loop at ${NEIGHBOUR_RATE} req/s; client B beside every run of the second row: one ${n2(b.bodyBytes / 1e6)} MB JSON body of ${n0(NEIGHBOUR_ROWS)} × ${n0(cols)} values at a time, back to back, each on a fresh HTTP/1.1 connection)`,
    '',
    mdTable(['client', 'achieved req/s', 'P50 ms', 'P99 ms', 'late sends (max)', 'server CPU us/req'], [row(alone!), row(beside!)]),
    '',
    `Client B: ${n0(s.bodies)} bodies over ${n0(beside!.runs.length)} run(s); how they ended: ${outcomes}; ${n0(s.cutOff)} connection(s) closed by sluice while B was still writing (EPIPE/ECONNRESET, expected after a refusal). Time to the answer's status line: median ${n2(median(answers))} ms, P99 ${n2(nearest(answers, 0.99))} ms, max ${n2(answers.at(-1))} ms. The server CPU per request beside B includes what B's connections cost sluice.`,
    verdict(`While one client sends 60 MB JSON bodies, another's P99 at ${NEIGHBOUR_RATE} req/s stays under 2x its P99 alone`, p99Ratio === undefined ? undefined : p99Ratio < 2, `${ratio(p99Ratio)}: ${n2(beside!.p99)} vs ${n2(alone!.p99)} ms`),
    aErrors.length === 0 ? 'Client A: no errors; every sampled answer checked right.' : `Client A's errors: ${aErrors.join('; ')}.`,
  ].join('\n');
}
