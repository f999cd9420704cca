import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';

/**
 * A small Open Inference Protocol server under the test's control, for the behaviours a real sluice
 * cannot be made to show on demand: a fixed service time, periodic stalls, wrong answers. It serves two
 * models: `simple` (INT32 INPUT0, INPUT1 [-1,16] -> OUTPUT0 sum, OUTPUT1 difference) and `double`
 * (FP32 INPUT0 [-1,4] -> OUTPUT0 = 2x), over REST JSON and the binary tensor extension.
 */
export interface FakeServerOptions {
  /** Requests are served one at a time, each taking this long (0: at once). */
  readonly serviceMs?: number;
  /** Every `everyMs` the server stops answering for `forMs` (answers due meanwhile wait for the end). */
  readonly stall?: { readonly everyMs: number; readonly forMs: number };
  /** Every Nth inference answer (1-based, counted after the first `rightFirst`) is wrong by one. */
  readonly wrongEvery?: number;
  /** Answers before any wrong one (so that reference requests get right answers). */
  readonly rightFirst?: number;
  /** Every Nth inference request (1-based) is answered with this HTTP status and an error body. */
  readonly statusEvery?: { readonly every: number; readonly status: number };
}

/** A running fake server: its URL and what it saw and did. */
export interface FakeServer {
  readonly url: string;
  /** Inference requests received. */
  readonly received: () => number;
  /** Wrong answers sent. */
  readonly wrongSent: () => number;
  /** Most inference requests in flight at once. */
  readonly maxInflight: () => number;
  /** When each inference request arrived (performance.now() of this process), in arrival order. */
  readonly arrivals: () => readonly number[];
}

const META: Record<string, object> = {
  simple: {
    name: 'simple', versions: ['1'], platform: 'fake',
    inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [-1, 16] }, { name: 'INPUT1', datatype: 'INT32', shape: [-1, 16] }],
    outputs: [{ name: 'OUTPUT0', datatype: 'INT32', shape: [-1, 16] }, { name: 'OUTPUT1', datatype: 'INT32', shape: [-1, 16] }],
  },
  double: {
    name: 'double', versions: ['1'], platform: 'fake',
    inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [-1, 4] }],
    outputs: [{ name: 'OUTPUT0', datatype: 'FP32', shape: [-1, 4] }],
  },
};

interface In { name: string; shape: number[]; datatype: string; data?: number[]; parameters?: { binary_data_size?: number } }

function parseInputs(body: Buffer, headerLength: number | undefined): { inputs: Map<string, { shape: number[]; values: number[] }>; binaryOut: boolean } {
  const jsonEnd = headerLength ?? body.length;
  const doc = JSON.parse(body.toString('utf8', 0, jsonEnd)) as { inputs: In[]; parameters?: { binary_data_output?: boolean } };
  let off = jsonEnd;
  const inputs = new Map<string, { shape: number[]; values: number[] }>();
  for (const t of doc.inputs) {
    const size = t.parameters?.binary_data_size;
    let values: number[];
    if (size !== undefined) {
      const raw = body.subarray(off, off + size);
      off += size;
      values = [];
      for (let i = 0; i < raw.length; i += 4) values.push(t.datatype === 'FP32' ? raw.readFloatLE(i) : raw.readInt32LE(i));
    } else {
      values = (t.data ?? []).flat(Infinity);
    }
    inputs.set(t.name, { shape: t.shape, values });
  }
  return { inputs, binaryOut: doc.parameters?.binary_data_output === true };
}

function encode(outputs: { name: string; datatype: string; shape: number[]; values: number[] }[], binary: boolean): { body: Buffer; headers: Record<string, string> } {
  if (!binary) {
    return { body: Buffer.from(JSON.stringify({ model_name: 'fake', outputs: outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: o.shape, data: o.values })) })), headers: { 'content-type': 'application/json' } };
  }
  const raws = outputs.map((o) => {
    const b = Buffer.alloc(o.values.length * 4);
    o.values.forEach((v, i) => (o.datatype === 'FP32' ? b.writeFloatLE(v, i * 4) : b.writeInt32LE(v, i * 4)));
    return b;
  });
  const header = Buffer.from(JSON.stringify({ outputs: outputs.map((o, i) => ({ name: o.name, datatype: o.datatype, shape: o.shape, parameters: { binary_data_size: raws[i]!.length } })) }));
  return { body: Buffer.concat([header, ...raws]), headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) } };
}

export async function startFakeServer(t: TestContext, opts: FakeServerOptions = {}): Promise<FakeServer> {
  const started = performance.now();
  let received = 0;
  let answered = 0;
  let wrong = 0;
  let inflight = 0;
  let maxInflight = 0;
  let busyUntil = 0;
  const arrivals: number[] = [];

  // When an answer ready at `at` may leave: after the stall window that contains `at`, if any.
  const releaseAt = (at: number): number => {
    if (!opts.stall) return at;
    const since = at - started;
    const phase = since % opts.stall.everyMs;
    const stallStart = opts.stall.everyMs - opts.stall.forMs;
    return phase >= stallStart ? at + (opts.stall.everyMs - phase) : at;
  };

  const infer = (model: string, req: IncomingMessage, body: Buffer, res: ServerResponse): void => {
    const h = req.headers['inference-header-content-length'];
    const { inputs, binaryOut } = parseInputs(body, typeof h === 'string' ? Number(h) : undefined);
    const n = ++answered;
    const skip = opts.rightFirst ?? 0;
    const bad = opts.wrongEvery !== undefined && n > skip && (n - skip) % opts.wrongEvery === 0;
    if (bad) wrong += 1;
    const delta = bad ? 1 : 0;
    let outputs;
    if (model === 'simple') {
      const a = inputs.get('INPUT0')!;
      const b = inputs.get('INPUT1')!;
      outputs = [
        { name: 'OUTPUT0', datatype: 'INT32', shape: a.shape, values: a.values.map((x, i) => x + b.values[i]! + delta) },
        { name: 'OUTPUT1', datatype: 'INT32', shape: a.shape, values: a.values.map((x, i) => x - b.values[i]!) },
      ];
    } else {
      const a = inputs.get('INPUT0')!;
      outputs = [{ name: 'OUTPUT0', datatype: 'FP32', shape: a.shape, values: a.values.map((x) => 2 * x + delta) }];
    }
    const { body: out, headers } = encode(outputs, binaryOut);
    const now = performance.now();
    const service = opts.serviceMs ?? 0;
    const done = service > 0 ? (busyUntil = Math.max(now, busyUntil) + service) : now;
    const leave = releaseAt(done);
    const send = (): void => {
      inflight -= 1;
      res.writeHead(200, headers).end(out);
    };
    if (leave <= now) send();
    else setTimeout(send, leave - now);
  };

  const server = createServer((req, res) => {
    const arrived = performance.now();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const m = /^\/v2\/models\/([^/]+)(\/infer)?$/.exec(req.url ?? '');
      const model = m?.[1];
      if (!m || !model || !META[model]) {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `no route ${req.method} ${req.url}` }));
        return;
      }
      if (m[2] === undefined) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(META[model]));
        return;
      }
      received += 1;
      arrivals.push(arrived);
      if (opts.statusEvery && received % opts.statusEvery.every === 0) {
        res.writeHead(opts.statusEvery.status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'told to fail' }));
        return;
      }
      inflight += 1;
      maxInflight = Math.max(maxInflight, inflight);
      try {
        infer(model, req, Buffer.concat(chunks), res);
      } catch (e) {
        inflight -= 1;
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String(e) }));
      }
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received: () => received,
    wrongSent: () => wrong,
    maxInflight: () => maxInflight,
    arrivals: () => arrivals,
  };
}
