/**
 * The messages between a worker's main thread (ort-client.ts) and its ONNX Runtime thread
 * (ort-thread.ts), and the helpers that move tensors across with transfer lists instead of copies.
 * Tensors keep sluice's representation on both sides (src/core/tensor.ts: raw little-endian bytes, BYTES
 * as one Uint8Array per element); structured clone turns Node Buffers into plain Uint8Arrays, which is
 * all the other side needs.
 */
import type { Device } from '../core/device.ts';
import { SluiceError, toSluiceError, type ErrorKind } from '../core/errors.ts';
import { isBytesData, type Tensor } from '../core/tensor.ts';
import type { RunResult } from './session.ts';

/** What the thread needs to build its SessionFactory (workerData). */
export interface ThreadConfig {
  readonly device: Device;
  readonly deviceId: number;
  readonly cudaFallback: 'cpu' | 'fail';
  readonly intraOpThreads: number;
}

/** An error as it crosses the thread boundary: the SluiceError's code and kind survive. */
export interface ThreadError {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly message: string;
}

/** Main thread → ORT thread. Every request carries an id that its reply repeats. */
export type ToThread =
  | { readonly type: 'open'; readonly id: number; readonly model: string; readonly file: string }
  | {
      readonly type: 'run';
      readonly id: number;
      readonly session: number;
      readonly inputs: readonly Tensor[];
      readonly outputs: readonly string[];
      readonly enqueuedNs: bigint | undefined;
    }
  | { readonly type: 'release'; readonly id: number; readonly session: number }
  /** Release whatever is left, answer, then let the thread end by itself. */
  | { readonly type: 'close'; readonly id: number };

/** Facts about a session the main thread keeps so the cache can use it without asking the thread. */
export interface OpenedSession {
  readonly session: number;
  readonly model: string;
  readonly provider: Device;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
}

/**
 * ORT thread → main thread. Replies carry the factory's provider, which a failed CUDA probe can change,
 * so /health on the main thread stays current without a round trip.
 */
export type FromThread =
  | { readonly type: 'opened'; readonly id: number; readonly provider: Device; readonly opened: OpenedSession }
  | { readonly type: 'ran'; readonly id: number; readonly provider: Device; readonly result: RunResult }
  | { readonly type: 'done'; readonly id: number; readonly provider: Device }
  | { readonly type: 'failed'; readonly id: number; readonly provider: Device; readonly error: ThreadError }
  /** A log line from the SessionFactory (CUDA fallback), written through the main thread's logger. */
  | { readonly type: 'log'; readonly level: 'warn' | 'error'; readonly obj: object; readonly msg: string };

export function serializeError(e: unknown): ThreadError {
  const err = toSluiceError(e);
  return { code: err.code, kind: err.kind, message: err.message };
}

export function rebuildError(e: ThreadError): SluiceError {
  return new SluiceError(e.code, e.kind, e.message);
}

/** A message and the ArrayBuffers to transfer with it. */
export interface Packed {
  readonly tensors: Tensor[];
  readonly transfer: ArrayBuffer[];
}

function ownsWholeBuffer(v: Uint8Array): boolean {
  return v.buffer instanceof ArrayBuffer && v.byteOffset === 0 && v.byteLength === v.buffer.byteLength;
}

/**
 * Tensors sliced from one request frame, ready to move. A frame that owns its whole ArrayBuffer (a
 * Buffer.concat of a body of 4 KiB or more) moves as it is. A smaller one lives in Node's shared 8 KiB
 * Buffer pool, where a transfer would detach other Buffers' bytes: it is copied once into a buffer of
 * its own and the tensors are rebased onto the copy. The frame is unusable here afterwards.
 */
export function packFrame(tensors: readonly Tensor[], frame: Uint8Array): Packed {
  const owned = ownsWholeBuffer(frame);
  const base = owned ? frame : new Uint8Array(frame);
  const transfer: ArrayBuffer[] = [base.buffer as ArrayBuffer];
  const rebase = (v: Uint8Array): Uint8Array => new Uint8Array(base.buffer, v.byteOffset - frame.byteOffset, v.byteLength);
  const out = tensors.map((t): Tensor => {
    if (!sliceOf(t, frame)) {
      const p = packCopies([t]);
      transfer.push(...p.transfer);
      return p.tensors[0]!;
    }
    if (owned) return t;
    return { ...t, data: isBytesData(t.data) ? t.data.map(rebase) : rebase(t.data) };
  });
  return { tensors: out, transfer };
}

/** Whether every byte of the tensor lies inside the frame (decodeInferRequest's tensors always do). */
function sliceOf(t: Tensor, frame: Uint8Array): boolean {
  const inside = (v: Uint8Array): boolean =>
    v.buffer === frame.buffer && v.byteOffset >= frame.byteOffset && v.byteOffset + v.byteLength <= frame.byteOffset + frame.byteLength;
  return isBytesData(t.data) ? t.data.every(inside) : inside(t.data);
}

/**
 * Copies of tensors whose memory the caller keeps (warmup samples, tests): each tensor's bytes are
 * copied into a buffer of their own, which then moves without a second copy. Structured clone alone
 * would copy each view's whole underlying buffer, however small the view.
 */
export function packCopies(tensors: readonly Tensor[]): Packed {
  const transfer: ArrayBuffer[] = [];
  const copy = (v: Uint8Array): Uint8Array => {
    const c = new Uint8Array(v);
    transfer.push(c.buffer);
    return c;
  };
  const out = tensors.map((t): Tensor => ({ ...t, data: isBytesData(t.data) ? t.data.map(copy) : copy(t.data) }));
  return { tensors: out, transfer };
}

/**
 * The distinct ArrayBuffers under the tensors (ONNX Runtime's outputs, fresh per run), to transfer back
 * instead of copying. A buffer may appear only once in a transfer list.
 */
export function buffersOf(tensors: readonly Tensor[]): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>();
  const add = (v: Uint8Array): void => {
    if (v.buffer instanceof ArrayBuffer && v.buffer.byteLength > 0) seen.add(v.buffer);
  };
  for (const t of tensors) {
    if (isBytesData(t.data)) t.data.forEach(add);
    else add(t.data);
  }
  return [...seen];
}
