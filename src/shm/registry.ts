import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import {
  InvalidRequest, InvalidShmKey, ShmIoFailed, ShmKeyNotFound, ShmOutOfBounds, ShmRegionExists, ShmRegionNotFound,
} from '../core/errors.ts';

/** A registered region as the status endpoints report it (Triton's fields: name, key, offset, byte_size). */
export interface RegionStatus {
  readonly name: string;
  /** The shared-memory object's key as the client gave it (shm_open's name, e.g. '/input_data'). */
  readonly key: string;
  /** Where the region starts in the object, in bytes. */
  readonly offset: number;
  readonly byteSize: number;
}

/** The bytes of a registered region one tensor uses: its offset and size within the region. */
export interface RegionRange {
  readonly region: string;
  readonly offset: number;
  readonly byteSize: number;
}

/**
 * One tensor's hold on its region: the region stays open (an unregister waits for the last lease) until
 * release(). `start` is the absolute offset in the shared-memory object, so two leases of regions that
 * alias one object can be compared.
 */
export interface RegionLease {
  readonly region: string;
  readonly key: string;
  readonly start: number;
  readonly byteSize: number;
  read(): Promise<Uint8Array>;
  /** Writes `data` (at most byteSize bytes) at the start of the range. */
  write(data: Uint8Array): Promise<void>;
  release(): void;
}

interface Region {
  readonly status: RegionStatus;
  readonly handle: FileHandle;
  users: number;
  /** Unregistered while leases were out: the handle closes when the last one is released. */
  unregistered: boolean;
}

/** shm_open names an object by one path component, with an optional leading '/'; on Linux it is /dev/shm/<name>. */
const KEY_PATTERN = /^\/?[^/\0]{1,255}$/;

function checkKey(key: string): string {
  if (!KEY_PATTERN.test(key)) throw InvalidShmKey(key.slice(0, 300), "a key is one name of at most 255 bytes, optionally after one leading '/', with no other '/'");
  const name = key.startsWith('/') ? key.slice(1) : key;
  if (name === '.' || name === '..') throw InvalidShmKey(key, "'.' and '..' name no shared-memory object");
  return name;
}

function checkCount(value: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw InvalidRequest(`'${field}' must be a non-negative integer, got ${String(value)}`);
}

function errnoOf(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e ? String(e.code) : undefined;
}

/**
 * Triton's system shared-memory extension: regions of POSIX shared-memory objects that clients on this
 * host register by key, offset and size. Node cannot mmap, so each region keeps a file handle on the
 * object (opened at register, closed at unregister) and tensors are read and written with positioned
 * file I/O, which on tmpfs is a copy from and to the same pages the client maps.
 */
export class SystemSharedMemory {
  readonly #root: string;
  readonly #regions = new Map<string, Region>();
  /** Names whose register is still opening its object: a second register of one of them is refused. */
  readonly #opening = new Set<string>();

  /** `root`: where shm_open's objects live as files (Linux: /dev/shm; tests may point elsewhere). */
  constructor(opts: { root?: string } = {}) {
    this.#root = opts.root ?? '/dev/shm';
  }

  /**
   * Registers `name` as bytes [offset, offset + byteSize) of the object `key`. The object must exist, be
   * a regular file (no link is followed: a link could point out of /dev/shm), and hold the whole range.
   */
  async register(name: string, key: string, offset: number, byteSize: number): Promise<void> {
    if (name === '') throw InvalidRequest('a shared-memory region needs a non-empty name');
    checkCount(offset, 'offset');
    checkCount(byteSize, 'byte_size');
    const file = checkKey(key);
    if (this.#regions.has(name) || this.#opening.has(name)) throw ShmRegionExists(name);
    const path = join(this.#root, file);
    this.#opening.add(name);
    try {
      let handle: FileHandle;
      try {
        handle = await open(path, constants.O_RDWR | constants.O_NOFOLLOW);
      } catch (e) {
        const errno = errnoOf(e);
        if (errno === 'ENOENT') throw ShmKeyNotFound(name, key, path);
        if (errno === 'ELOOP') throw InvalidShmKey(key, `${path} is a symbolic link, not a shared-memory object`);
        if (errno === 'EACCES' || errno === 'EPERM') throw InvalidShmKey(key, `sluice may not read and write ${path}`);
        throw ShmIoFailed(name, `cannot open ${path}: ${(e as Error).message}`);
      }
      try {
        const stat = await handle.stat();
        if (!stat.isFile()) throw InvalidShmKey(key, `${path} is not a shared-memory object`);
        if (offset + byteSize > stat.size) throw ShmOutOfBounds(`failed to register shared memory region '${name}'`, offset, byteSize, stat.size, `shared-memory object '${key}'`);
      } catch (e) {
        await handle.close();
        throw e;
      }
      this.#regions.set(name, { status: { name, key, offset, byteSize }, handle, users: 0, unregistered: false });
    } finally {
      this.#opening.delete(name);
    }
  }

  /** Every region, or the one named (NOT_FOUND when it is not registered). */
  status(name = ''): RegionStatus[] {
    if (name === '') return [...this.#regions.values()].map((r) => r.status);
    const region = this.#regions.get(name);
    if (!region) throw ShmRegionNotFound(name);
    return [region.status];
  }

  /**
   * Unregisters one region, or every region when `name` is ''. As in Triton, a name that is not
   * registered is no error, and a region in use by a request is closed once that request is done.
   */
  async unregister(name = ''): Promise<void> {
    const names = name === '' ? [...this.#regions.keys()] : [name];
    const closing: Promise<void>[] = [];
    for (const n of names) {
      const region = this.#regions.get(n);
      if (!region) continue;
      this.#regions.delete(n);
      region.unregistered = true;
      if (region.users === 0) closing.push(region.handle.close());
    }
    await Promise.all(closing);
  }

  /**
   * Takes a lease on bytes of a region for one tensor, checking the range lies inside the region.
   * `tensor` names the tensor in errors ("input 'INPUT0'").
   */
  acquire(range: RegionRange, tensor: string): RegionLease {
    const region = this.#regions.get(range.region);
    if (!region) throw ShmRegionNotFound(range.region);
    const { status, handle } = region;
    if (range.offset + range.byteSize > status.byteSize) {
      throw ShmOutOfBounds(`${tensor} in shared memory region '${status.name}'`, range.offset, range.byteSize, status.byteSize, `the region`);
    }
    region.users++;
    let released = false;
    const start = status.offset + range.offset;
    const { byteSize } = range;
    return {
      region: status.name,
      key: status.key,
      start,
      byteSize,
      read: async () => {
        const out = Buffer.allocUnsafe(byteSize);
        let done = 0;
        while (done < byteSize) {
          const { bytesRead } = await handle.read(out, done, byteSize - done, start + done);
          // The object shrank after it was registered (ftruncate by its owner): the bytes are gone.
          if (bytesRead === 0) throw ShmIoFailed(status.name, `shared-memory object '${status.key}' ends before byte ${start + byteSize}: it shrank after it was registered`);
          done += bytesRead;
        }
        return out;
      },
      write: async (data: Uint8Array) => {
        let done = 0;
        while (done < data.byteLength) {
          const { bytesWritten } = await handle.write(data, done, data.byteLength - done, start + done);
          done += bytesWritten;
        }
      },
      release: () => {
        if (released) return;
        released = true;
        region.users--;
        if (region.unregistered && region.users === 0) void handle.close().catch(() => undefined);
      },
    };
  }

  /** Closes every region (at shutdown). */
  close(): Promise<void> {
    return this.unregister('');
  }
}
