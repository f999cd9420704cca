import { InvalidRequest, Unimplemented } from '../../core/errors.ts';
import type { SystemSharedMemory } from '../../shm/registry.ts';

// The system shared-memory extension's three gRPC methods (SystemSharedMemoryStatus, Register,
// Unregister), the REST routes' twins (src/frontdoor/http/shm-routes.ts).

/** SystemSharedMemoryStatusRequest and SystemSharedMemoryUnregisterRequest: '' = every region. */
export interface ShmNameRequest {
  name: string;
}

/** SystemSharedMemoryRegisterRequest; uint64 fields arrive as decimal strings. */
export interface ShmRegisterRequest {
  name: string;
  key: string;
  offset: string;
  byte_size: string;
}

type Msg = Record<string, unknown>;

function enabled(memory: SystemSharedMemory | undefined, method: string): SystemSharedMemory {
  if (!memory) throw Unimplemented(`${method} (the system shared-memory extension: this server runs with --shared-memory none; send tensors in raw_input_contents)`);
  return memory;
}

function count(value: string, field: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw InvalidRequest(`'${field}' must be a non-negative integer, got ${value}`);
  return n;
}

/** The regions map of SystemSharedMemoryStatusResponse, keyed by region name. */
export function shmStatus(memory: SystemSharedMemory | undefined, r: ShmNameRequest): Msg {
  const regions: Record<string, Msg> = {};
  for (const s of enabled(memory, 'SystemSharedMemoryStatus').status(r.name)) {
    regions[s.name] = { name: s.name, key: s.key, offset: s.offset, byte_size: s.byteSize };
  }
  return { regions };
}

export async function shmRegister(memory: SystemSharedMemory | undefined, r: ShmRegisterRequest): Promise<Msg> {
  const m = enabled(memory, 'SystemSharedMemoryRegister');
  if (r.key === '') throw InvalidRequest("'key' must be the non-empty key of a shared-memory object");
  await m.register(r.name, r.key, count(r.offset, 'offset'), count(r.byte_size, 'byte_size'));
  return {};
}

export async function shmUnregister(memory: SystemSharedMemory | undefined, r: ShmNameRequest): Promise<Msg> {
  await enabled(memory, 'SystemSharedMemoryUnregister').unregister(r.name);
  return {};
}
