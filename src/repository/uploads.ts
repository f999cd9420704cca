/**
 * Model files sent in a load request (Triton's `file:<version>/<name>` override parameters) staged as a
 * model folder of their own, outside the repository, and named by content.
 *
 * Each upload is written to `<root>/<id>/<model>/<version>/<path>`, a one-model repository that
 * readModelEntry reads like any other (its containment checks included). Every version of it has a
 * source: the SHA-256 of the model name, the version, the config override and the version's files. A
 * worker names an uploaded version by that source, so a worker can never run a version's disk files
 * for an upload's, or an older upload's files for a newer one; one that lacks the source is sent the
 * files again (src/worker/upload-frame.ts carries them).
 *
 * The gateway stages every version of an upload at once (id = a counter); a worker host stages one
 * version per source (id = the source). Both bound the bytes they hold.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { InvalidParameter, UploadMissing, UploadsFull } from '../core/errors.ts';
import { MODEL_NAME_PATTERN, VERSION_PATTERN } from '../core/model.ts';
import { readConfigOverride } from './config-override.ts';
import { readModelEntry, type ModelEntry } from './repository.ts';

/** One file of an uploaded version: its path inside the version folder and its bytes. */
export interface UploadedFile {
  readonly path: string;
  readonly data: Uint8Array;
}

/** One version of an upload, as a worker receives it. */
export interface UploadBundle {
  readonly model: string;
  readonly version: string;
  /** The config override (JSON, protobuf's mapping) the upload came with. */
  readonly config: string;
  readonly source: string;
  readonly files: readonly UploadedFile[];
}

/** A path segment of an uploaded file: no separators, no '.' or '..', nothing hidden. */
const SEGMENT = /^(?!\.)[A-Za-z0-9_.-]{1,128}$/;
const MAX_DEPTH = 4;
const MAX_FILES = 64;

/**
 * Reads a `file:<version>/<path>` parameter name; throws INVALID_ARG naming the parameter when the
 * version is not a version or the path could leave its folder.
 */
export function uploadPathOf(param: string): { readonly version: string; readonly path: string } {
  const rest = param.slice('file:'.length);
  const segments = rest.split('/');
  const [version, ...path] = segments;
  if (version === undefined || !VERSION_PATTERN.test(version)) throw InvalidParameter(param, "must be 'file:<version>/<name>' with a version folder (a positive integer) first");
  if (path.length === 0 || path.length > MAX_DEPTH || !path.every((s) => SEGMENT.test(s))) {
    throw InvalidParameter(param, `must name a file inside the version folder: at most ${MAX_DEPTH} segments of letters, digits, '_', '-' and '.', none starting with '.'`);
  }
  return { version, path: path.join('/') };
}

/** The source of one uploaded version (sorted files, each length-prefixed: no two uploads collide by framing). */
export function sourceOf(model: string, version: string, config: string, files: readonly UploadedFile[]): string {
  const h = createHash('sha256');
  h.update(`sluice-upload\0${model}\0${version}\0${config.length}\0${config}\0`);
  for (const f of [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    h.update(`${f.path}\0${f.data.byteLength}\0`);
    h.update(f.data);
  }
  return h.digest('hex');
}

interface Staged {
  readonly id: string;
  readonly model: string;
  readonly dir: string;
  readonly config: string;
  readonly bytes: number;
  /** version -> source, and the files of each version (paths only: the bytes are on disk). */
  readonly versions: ReadonlyMap<string, { readonly source: string; readonly paths: readonly string[] }>;
}

export interface UploadStoreOptions {
  /** Most bytes staged at once; a stage past it is refused (RESOURCE_EXHAUSTED). */
  readonly budgetBytes: number;
  /** Parent folder of the store's own temporary folder (default the system's). */
  readonly parent?: string;
}

export class UploadStore {
  readonly #o: UploadStoreOptions;
  #root: string | undefined;
  #next = 0;
  readonly #stages = new Map<string, Staged>();
  /** source -> the stage holding it. */
  readonly #sources = new Map<string, Staged>();
  /** Stages being written: a second writer of the same id waits for the first. */
  readonly #writing = new Map<string, Promise<void>>();
  #writingBytes = 0;

  constructor(options: UploadStoreOptions) {
    if (!Number.isSafeInteger(options.budgetBytes) || options.budgetBytes <= 0) throw new RangeError(`upload budget must be a positive number of bytes, got ${options.budgetBytes}`);
    this.#o = options;
  }

  /** Bytes staged now. */
  get bytes(): number {
    let n = 0;
    for (const s of this.#stages.values()) n += s.bytes;
    return n;
  }

  has(source: string): boolean {
    return this.#sources.has(source);
  }

  /**
   * Stages the files of an upload (the gateway: every version at once). Returns the stage's id and each
   * version's source. Throws INVALID_ARG for a bad model name or no files, RESOURCE_EXHAUSTED past the budget.
   */
  async stage(model: string, config: string, files: ReadonlyMap<string, readonly UploadedFile[]>, id?: string): Promise<{ readonly id: string; readonly sources: ReadonlyMap<string, string> }> {
    if (!MODEL_NAME_PATTERN.test(model)) throw InvalidParameter('model', `invalid model name '${model}'`);
    if (files.size === 0) throw InvalidParameter('file:<version>/<name>', 'an upload needs at least one file');
    let bytes = 0;
    let count = 0;
    const versions = new Map<string, { source: string; paths: string[] }>();
    for (const [version, list] of files) {
      if (!VERSION_PATTERN.test(version)) throw InvalidParameter(`file:${version}`, 'the version folder must be a positive integer');
      for (const f of list) bytes += f.data.byteLength;
      count += list.length;
      versions.set(version, { source: sourceOf(model, version, config, list), paths: list.map((f) => f.path) });
    }
    if (count > MAX_FILES) throw InvalidParameter('file:<version>/<name>', `an upload holds at most ${MAX_FILES} files, got ${count}`);
    const result = { id: id ?? `u${++this.#next}`, sources: new Map([...versions].map(([v, x]) => [v, x.source])) };
    // The same source sent twice (two gateways, or a retry) is staged once; a second writer waits for the first.
    if (this.#stages.has(result.id)) return result;
    const writing = this.#writing.get(result.id);
    if (writing) {
      await writing;
      return result;
    }
    if (this.bytes + this.#writingBytes + bytes > this.#o.budgetBytes) throw UploadsFull(model, bytes, this.#o.budgetBytes - this.bytes - this.#writingBytes);
    const dir = join(this.#rootDir(), result.id);
    const write = (async () => {
      for (const [version, list] of files) {
        for (const f of list) {
          const file = join(dir, model, version, ...f.path.split('/'));
          await mkdir(dirname(file), { recursive: true });
          await writeFile(file, f.data, { flag: 'wx' });
        }
      }
    })();
    this.#writing.set(result.id, write);
    this.#writingBytes += bytes;
    try {
      await write;
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    } finally {
      this.#writing.delete(result.id);
      this.#writingBytes -= bytes;
    }
    const staged: Staged = { id: result.id, model, dir, config, bytes, versions };
    this.#stages.set(result.id, staged);
    for (const v of versions.values()) this.#sources.set(v.source, staged);
    return result;
  }

  /** Stages one version a gateway sent (a worker host): its id is its source, so a second send is a no-op. */
  async stageBundle(b: UploadBundle): Promise<{ readonly source: string }> {
    await this.stage(b.model, b.config, new Map([[b.version, b.files]]), b.source);
    return { source: b.source };
  }

  /** Reads a stage as a repository entry, with its config override and each version's source. */
  async entryOf(id: string): Promise<ModelEntry> {
    const s = this.#stages.get(id);
    if (!s) throw new Error(`no staged upload '${id}'`);
    const entry = await readModelEntry(s.dir, s.model, readConfigOverride(s.config));
    return { ...entry, versions: entry.versions.map((v) => ({ ...v, source: s.versions.get(v.version)?.source })) };
  }

  /** The version a source names, read from its stage; UploadMissing when this store has no such source. */
  async resolve(model: string, version: string, source: string): Promise<{ readonly entry: ModelEntry; readonly file: string; readonly byteSize: number }> {
    const s = this.#sources.get(source);
    if (!s || s.model !== model || s.versions.get(version)?.source !== source) throw UploadMissing(model, version, source);
    const entry = await this.entryOf(s.id);
    const v = entry.versions.find((x) => x.version === version);
    if (entry.error !== '' || !v) throw UploadMissing(model, version, source, entry.error || `its config does not serve version ${version}`);
    return { entry, file: v.file, byteSize: v.byteSize };
  }

  /** The files of one uploaded version, read back from disk, for a worker that lacks them. */
  async bundle(source: string): Promise<UploadBundle> {
    const s = this.#sources.get(source);
    const entry = s && [...s.versions].find(([, v]) => v.source === source);
    if (!s || !entry) throw UploadMissing('', '', source);
    const [version, v] = entry;
    const files = await Promise.all(v.paths.map(async (path) => ({ path, data: await readFile(join(s.dir, s.model, version, ...path.split('/'))) })));
    return { model: s.model, version, config: s.config, source, files };
  }

  /** Drops the stages of a model whose sources are none of `keep` (the gateway, after a load or unload). */
  async retain(model: string, keep: ReadonlySet<string>): Promise<void> {
    const drop = [...this.#stages.values()].filter((s) => s.model === model && ![...s.versions.values()].some((v) => keep.has(v.source)));
    await Promise.all(drop.map((s) => this.#remove(s)));
  }

  /** Drops the stage that holds a source (a worker host, once nothing runs it). */
  async drop(source: string): Promise<void> {
    const s = this.#sources.get(source);
    if (s) await this.#remove(s);
  }

  /** Removes every stage and the store's folder. */
  async close(): Promise<void> {
    this.#stages.clear();
    this.#sources.clear();
    if (this.#root) await rm(this.#root, { recursive: true, force: true });
    this.#root = undefined;
  }

  async #remove(s: Staged): Promise<void> {
    if (this.#stages.get(s.id) !== s) return;
    this.#stages.delete(s.id);
    for (const v of s.versions.values()) if (this.#sources.get(v.source) === s) this.#sources.delete(v.source);
    await rm(s.dir, { recursive: true, force: true });
  }

  #rootDir(): string {
    this.#root ??= mkdtempSync(join(this.#o.parent ?? tmpdir(), 'sluice-uploads-'));
    return this.#root;
  }
}
