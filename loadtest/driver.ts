import { runAutocannon } from './autocannon-loop.ts';
import { ForkedOpenLoop } from './forked-loop.ts';
import { grpcTransport } from './grpc-transport.ts';
import { h2Transport } from './h2-transport.ts';
import { binaryBody, jsonBody } from './http-codec.ts';
import { httpTransport, type HttpTarget } from './http-transport.ts';
import { runClosedLoop, runOpenLoop, type LoopStats, type Timing } from './loops.ts';
import type { Recorder } from './recorder.ts';
import { requester, type Transport } from './transport.ts';
import type { LoadProtocol, Outcome, OutputCheck, StepSpec, WorkTensor } from './types.ts';

/** Where and how to send: the target, the prepared input sets and the connection settings. */
export interface DriverOptions {
  readonly protocol: LoadProtocol;
  /** REST base URL (json, binary, h2c). */
  readonly url: string | undefined;
  /** gRPC address (grpc). */
  readonly grpcUrl: string | undefined;
  readonly model: string;
  readonly version: string;
  readonly variants: readonly (readonly WorkTensor[])[];
  readonly timeoutMs: number;
  /**
   * HTTP/1.1 open loop (json, binary): keep-alive connections, one request in flight on each; HTTP/2
   * sessions (h2c) or gRPC channels (grpc).
   */
  readonly connections: number;
  /** Open loop: requests in flight at most (over HTTP/1.1, also at most `connections`). */
  readonly maxOutstanding: number;
  readonly lateThresholdMs: number;
  readonly checkEvery: number;
  /** Headers every request carries besides its own (an Authorization for a server with keys); gRPC call metadata. */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * Runs closed- and open-loop steps over one protocol, keeping its connections between steps. HTTP/1.1
 * closed loops use autocannon, HTTP/1.1 open loops a driver process of their own over raw sockets
 * (forked-loop.ts); h2c and gRPC run this tool's in-process loops over a Transport.
 */
export interface Driver {
  readonly protocol: LoadProtocol;
  /** Gets ready for a step (starts the open-loop driver process), so that its clock starts after. */
  prepare(spec: StepSpec): Promise<void>;
  closed(concurrency: number, recorder: Recorder, timing: Timing, check: OutputCheck | undefined): Promise<LoopStats>;
  open(rate: number, recorder: Recorder, timing: Timing, check: OutputCheck | undefined): Promise<LoopStats>;
  /** One request of input set `variant`, checked with `check` (reference requests, probes). */
  once(variant: number, check: OutputCheck | undefined): Promise<Outcome>;
  close(): Promise<void>;
}

function need(value: string | undefined, flag: string, protocol: LoadProtocol): string {
  if (!value) throw new Error(`--protocol ${protocol} needs ${flag}`);
  return value;
}

/** A driver for the protocol; fails at once when the input sets cannot travel over it. */
export function createDriver(o: DriverOptions): Driver {
  let transport: Transport;
  let http: HttpTarget | undefined;
  let precise: ForkedOpenLoop | undefined;
  if (o.protocol === 'grpc') {
    transport = grpcTransport({ url: need(o.grpcUrl, '--grpc-url', o.protocol), model: o.model, version: o.version, variants: o.variants, ...(o.headers ? { headers: o.headers } : {}) }, { channels: o.connections, timeoutMs: o.timeoutMs });
  } else {
    const raw16 = o.protocol === 'json' ? o.variants.flat().find((t) => t.datatype === 'FP16' || t.datatype === 'BF16') : undefined;
    if (raw16) throw new Error(`input '${raw16.name}' is ${raw16.datatype}, which has no JSON form: use --protocol binary, h2c or grpc`);
    const encode = o.protocol === 'json' ? jsonBody : binaryBody;
    const extra = o.headers ?? {};
    http = { url: need(o.url, '--url', o.protocol), model: o.model, version: o.version, bodies: o.variants.map((v) => encode(v)).map((b) => ({ ...b, headers: { ...extra, ...b.headers } })) };
    if (o.protocol === 'h2c') {
      transport = h2Transport(http, { sessions: o.connections, timeoutMs: o.timeoutMs });
    } else {
      // undici serves only reference requests here; the open loop's connections are the driver process's.
      transport = httpTransport(http, { connections: 1, timeoutMs: o.timeoutMs });
      precise = new ForkedOpenLoop(http, { connections: Math.min(o.connections, o.maxOutstanding), timeoutMs: o.timeoutMs, lateThresholdMs: o.lateThresholdMs, checkEvery: o.checkEvery });
    }
  }
  return {
    protocol: o.protocol,
    async prepare(spec) {
      if (spec.mode === 'open') await precise?.prepare();
    },
    closed(concurrency, recorder, timing, check) {
      if (http && o.protocol !== 'h2c') {
        return runAutocannon(http, recorder, timing, { connections: concurrency, timeoutMs: o.timeoutMs, check, checkEvery: o.checkEvery, ...(timing.stop ? { signal: timing.stop } : {}) });
      }
      return runClosedLoop(requester(transport, o.variants.length, check, o.checkEvery, recorder), recorder, timing, concurrency);
    },
    open(rate, recorder, timing, check) {
      if (precise) return precise.run(rate, recorder, timing, check);
      return runOpenLoop(requester(transport, o.variants.length, check, o.checkEvery, recorder), recorder, timing, { rate, maxOutstanding: o.maxOutstanding, lateThresholdMs: o.lateThresholdMs });
    },
    once(variant, check) {
      return transport.send(variant, check, new AbortController().signal);
    },
    async close() {
      await precise?.close();
      await transport.close();
    },
  };
}
