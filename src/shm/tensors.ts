import { elementSize, type DataType } from '../core/datatypes.ts';
import { DataSizeMismatch, InvalidTensorData, ShmOutputTooSmall, ShmOverlap } from '../core/errors.ts';
import type { InferRequest, InferResponse } from '../core/inference.ts';
import { decodeBytesElements, encodeBytesElements, isBytesData, type Tensor } from '../core/tensor.ts';
import type { RegionLease, RegionRange, SystemSharedMemory } from './registry.ts';

/** An input whose data is in a region: where it sits in the request's inputs, and what it must hold. */
export interface ShmInput {
  /** Index in the request's inputs (that entry holds a placeholder until the data is read). */
  readonly index: number;
  readonly name: string;
  readonly datatype: DataType;
  readonly count: number;
  readonly range: RegionRange;
}

/** A requested output the client wants written into a region instead of the answer. */
export interface ShmOutput {
  readonly name: string;
  readonly range: RegionRange;
}

/** The shared-memory tensors of one request, as a front door decoded them from its parameters. */
export interface SharedMemoryPlan {
  readonly inputs: readonly ShmInput[];
  readonly outputs: readonly ShmOutput[];
}

/** Where an output went: the region, its offset there, and the bytes written (for the answer's parameters). */
export interface WrittenOutput {
  readonly region: string;
  readonly offset: number;
  readonly byteSize: number;
}

function overlaps(a: RegionLease, b: RegionLease): boolean {
  return a.key === b.key && a.start < b.start + b.byteSize && b.start < a.start + a.byteSize;
}

/**
 * The leases of one request on its regions, taken when its tensors are decoded and released when it is
 * answered (or fails), so that an unregister in between cannot close a region under it.
 */
export class SharedMemoryIo {
  readonly #plan: SharedMemoryPlan;
  readonly #inputs: RegionLease[];
  readonly #outputs: RegionLease[];

  private constructor(plan: SharedMemoryPlan, inputs: RegionLease[], outputs: RegionLease[]) {
    this.#plan = plan;
    this.#inputs = inputs;
    this.#outputs = outputs;
  }

  /**
   * Checks every range (registered, inside its region, fixed-size inputs of exactly the size their shape
   * needs, no output over another tensor's bytes) and leases them; nothing is held when it throws.
   */
  static open(memory: SystemSharedMemory, plan: SharedMemoryPlan): SharedMemoryIo {
    const held: RegionLease[] = [];
    try {
      const inputs = plan.inputs.map((input) => {
        const width = elementSize(input.datatype);
        if (width > 0 && input.range.byteSize !== input.count * width) {
          throw DataSizeMismatch(input.name, `${input.count * width} bytes (${input.count} x ${input.datatype})`, `shared_memory_byte_size ${input.range.byteSize}`);
        }
        const lease = memory.acquire(input.range, `input '${input.name}'`);
        held.push(lease);
        return lease;
      });
      const outputs: RegionLease[] = [];
      for (const output of plan.outputs) {
        const lease = memory.acquire(output.range, `output '${output.name}'`);
        held.push(lease);
        // An output written over an input would change the request's data while it runs, or over another
        // output, garble both: refused whichever regions (even aliases of one object) they name.
        const input = inputs.findIndex((other) => overlaps(lease, other));
        if (input >= 0) throw ShmOverlap(`output '${output.name}'`, `input '${plan.inputs[input]!.name}'`, lease.key);
        const before = outputs.findIndex((other) => overlaps(lease, other));
        if (before >= 0) throw ShmOverlap(`output '${output.name}'`, `output '${plan.outputs[before]!.name}'`, lease.key);
        outputs.push(lease);
      }
      return new SharedMemoryIo(plan, inputs, outputs);
    } catch (e) {
      for (const lease of held) lease.release();
      throw e;
    }
  }

  /** Whether the output `name` goes to a region (and so not into the answer). */
  hasOutput(name: string): boolean {
    return this.#plan.outputs.some((o) => o.name === name);
  }

  /** The request's inputs with each shared-memory placeholder replaced by the data read from its region. */
  async readInputs(inputs: readonly Tensor[]): Promise<Tensor[]> {
    const out = [...inputs];
    const data = await Promise.all(this.#inputs.map((lease) => lease.read()));
    for (const [i, input] of this.#plan.inputs.entries()) {
      const bytes = data[i]!;
      const placeholder = out[input.index]!;
      if (elementSize(input.datatype) > 0) {
        out[input.index] = { ...placeholder, data: bytes };
        continue;
      }
      // BYTES as Triton lays them out in a region: each element a 4-byte little-endian length, then its bytes.
      const elements = decodeBytesElements(bytes, input.count);
      if (typeof elements === 'string') throw InvalidTensorData(input.name, `in shared memory region '${input.range.region}': ${elements}`);
      out[input.index] = { ...placeholder, data: elements };
    }
    return out;
  }

  /**
   * Writes each shared-memory output into its region, after checking every one fits (so a too-small
   * region fails the request before any region is changed). Returns where each went.
   */
  async writeOutputs(outputs: readonly Tensor[]): Promise<Map<string, WrittenOutput>> {
    const pending: { lease: RegionLease; bytes: Uint8Array; output: ShmOutput }[] = [];
    for (const [i, output] of this.#plan.outputs.entries()) {
      const tensor = outputs.find((t) => t.name === output.name);
      if (!tensor) continue;
      const bytes = isBytesData(tensor.data) ? encodeBytesElements(tensor.data) : tensor.data;
      if (bytes.byteLength > output.range.byteSize) throw ShmOutputTooSmall(output.name, output.range.byteSize, bytes.byteLength);
      pending.push({ lease: this.#outputs[i]!, bytes, output });
    }
    await Promise.all(pending.map((p) => p.lease.write(p.bytes)));
    const written = new Map<string, WrittenOutput>();
    for (const p of pending) written.set(p.output.name, { region: p.output.range.region, offset: p.output.range.offset, byteSize: p.bytes.byteLength });
    return written;
  }

  /** Gives every lease back; safe to call more than once. */
  release(): void {
    for (const lease of this.#inputs) lease.release();
    for (const lease of this.#outputs) lease.release();
  }
}

/** An answer, and where its shared-memory outputs went (absent when the request named no region). */
export interface SharedMemoryOutcome {
  readonly response: InferResponse;
  readonly written?: ReadonlyMap<string, WrittenOutput>;
}

/**
 * Runs one request through `infer`, its regions (when `plan` names any) leased from before its inputs
 * are read until its outputs are written, and given back whatever happens, so that an unregister in
 * between waits for it. Without a plan it is `infer(request)`.
 */
export async function inferWithSharedMemory(
  memory: SystemSharedMemory | undefined,
  plan: SharedMemoryPlan | undefined,
  request: InferRequest,
  infer: (request: InferRequest) => Promise<InferResponse>,
): Promise<SharedMemoryOutcome> {
  if (!memory || !plan) return { response: await infer(request) };
  const io = SharedMemoryIo.open(memory, plan);
  try {
    const response = await infer({ ...request, inputs: await io.readInputs(request.inputs) });
    return { response, written: await io.writeOutputs(response.outputs) };
  } finally {
    io.release();
  }
}
