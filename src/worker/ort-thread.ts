/**
 * The ONNX Runtime thread of a worker process (a node:worker_threads Worker started by ort-client.ts).
 * onnxruntime-node creates and runs sessions synchronously on the calling JS thread; here that blocks
 * only this thread, so the worker's main thread keeps reading sockets (the next batch arrives while this
 * one runs) and answering /health.
 *
 * Every message is handled to its end before the next one starts, in arrival order: at most one session
 * creation or run at a time, and a release never overlaps a run. The main thread sends at most one batch
 * ahead, so the next batch starts the moment the current one ends, without a round trip.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ShuttingDown, Internal } from '../core/errors.ts';
import { buffersOf, serializeError, type FromThread, type ThreadConfig, type ToThread } from './ort-messages.ts';
import { SessionFactory, type LogSink, type ModelSession } from './session.ts';

const port = parentPort;
if (!port) throw new Error('ort-thread.ts runs as a worker thread of the worker process (see ort-client.ts)');
const config = workerData as ThreadConfig;

function post(message: FromThread, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

// The factory's log lines (CUDA fallback) go through the main thread's logger, with its level and bindings.
const logs: LogSink = {
  warn: (obj, msg) => post({ type: 'log', level: 'warn', obj, msg }),
  error: (obj, msg) => post({ type: 'log', level: 'error', obj, msg }),
};

const factory = new SessionFactory({ ...config, logger: logs });
const sessions = new Map<number, ModelSession>();
let nextSession = 1;
const inbox: ToThread[] = [];
let working = false;
let closed = false;

port.on('message', (m: ToThread) => {
  inbox.push(m);
  if (!working) void work();
});

async function work(): Promise<void> {
  working = true;
  for (let m = inbox.shift(); m; m = inbox.shift()) await handle(m);
  working = false;
}

async function handle(m: ToThread): Promise<void> {
  if (closed) {
    post({ type: 'failed', id: m.id, provider: factory.provider, error: serializeError(ShuttingDown()) });
    return;
  }
  try {
    switch (m.type) {
      case 'open': {
        const s = await factory.open(m.model, m.file);
        const id = nextSession++;
        sessions.set(id, s);
        post({ type: 'opened', id: m.id, provider: factory.provider, opened: { session: id, model: s.model, provider: s.provider, inputNames: s.inputNames, outputNames: s.outputNames } });
        return;
      }
      case 'run': {
        const s = sessions.get(m.session);
        if (!s) throw Internal(`ORT thread has no session #${m.session} (released before its run)`);
        const result = await s.run(m.inputs, m.outputs, { enqueuedNs: m.enqueuedNs });
        reply({ type: 'ran', id: m.id, provider: factory.provider, result }, buffersOf(result.outputs));
        return;
      }
      case 'release': {
        const s = sessions.get(m.session);
        sessions.delete(m.session);
        await s?.release();
        post({ type: 'done', id: m.id, provider: factory.provider });
        return;
      }
      case 'close': {
        closed = true;
        for (const s of sessions.values()) await s.release().catch(() => undefined);
        sessions.clear();
        post({ type: 'done', id: m.id, provider: factory.provider });
        // Nothing runs or waits any more: with the port closed the thread's event loop empties and it ends
        // by itself, so the main thread never has to terminate it (terminating under ORT aborts the process).
        port!.close();
        return;
      }
    }
  } catch (e) {
    post({ type: 'failed', id: m.id, provider: factory.provider, error: serializeError(e) });
  }
}

/** Outputs go back transferred; should a buffer refuse to move (not detachable), they are copied instead. */
function reply(message: FromThread, transfer: ArrayBuffer[]): void {
  try {
    post(message, transfer);
  } catch {
    post(message);
  }
}
