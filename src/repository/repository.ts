import { readFile, readdir, realpath, stat } from 'node:fs/promises';
import { basename, isAbsolute, join, resolve, sep } from 'node:path';
import { InvalidModelName, ModelNotFound } from '../core/errors.ts';
import { BUILTIN_BACKENDS, MODEL_NAME_PATTERN } from '../core/model.ts';
import type { ModelConfig, TensorConfig } from '../core/model.ts';
import { checkSignature, settleSignature } from './autocomplete.ts';
import type { ConfigDraft } from './draft.ts';
import { readBuiltinEntry } from './builtin.ts';
import { ENSEMBLE_PLATFORM, checkEnsembles, readEnsembleEntry } from './ensemble.ts';
import { readJsonConfig } from './json-config.ts';
import { checkIdentity, normalizeConfig } from './normalize.ts';
import { readOnnxMetadata } from './onnx-metadata.ts';
import type { OnnxMetadata } from './onnx-metadata.ts';
import { readPbtxtConfig } from './pbtxt-config.ts';
import { listVersionFolders, selectVersions } from './versions.ts';

/** One served version of a model. */
export interface ModelVersionEntry {
  readonly name: string;
  readonly version: string;
  /** Absolute path of the version's model.onnx. */
  readonly file: string;
  readonly byteSize: number;
  /** The file's modification time: with the size, how a rescan sees the file replaced. */
  readonly mtimeMs: number;
  /** For files sent with a load request (src/repository/uploads.ts): their content's name; absent for the repository's own. */
  readonly source?: string | undefined;
}

/** A model of the repository, usable or not; an unusable one says why in `error`. */
export interface ModelEntry {
  readonly name: string;
  /** The normalized config; undefined when the model is unusable. */
  readonly config: ModelConfig | undefined;
  /** The versions the version policy serves, ascending numerically (empty when unusable). */
  readonly versions: readonly ModelVersionEntry[];
  /** '' when usable, else why the model is unavailable. */
  readonly error: string;
  /** Things worth an operator's look that do not stop the model, e.g. unknown config.pbtxt fields. */
  readonly warnings: readonly string[];
}

export const MODEL_FILE = 'model.onnx';

function reasonOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function isMissing(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as NodeJS.ErrnoException).code === 'ENOENT';
}

/**
 * Checks that a path, links resolved, stays inside the repository (`root` is the root's real path):
 * a model folder, a version folder, a config or a model file that is a symbolic link to elsewhere
 * would let whoever writes the repository serve, and leak through the index's reasons, any file the
 * gateway can read. The error names the repository-relative path only, never where the link points.
 */
async function checkContained(root: string, path: string, label: string): Promise<void> {
  const real = await realpath(path);
  if (real !== root && !real.startsWith(root + sep)) {
    throw new Error(`${label} is a link that leaves the model repository; only files inside it are served`);
  }
}

async function readOptional(root: string, file: string): Promise<string | undefined> {
  try {
    await checkContained(root, file, basename(file));
    return await readFile(file, 'utf8');
  } catch (e) {
    if (isMissing(e)) return undefined;
    throw e;
  }
}

/** The model's config draft from config.pbtxt or config.json; undefined when it has neither. */
async function readConfigDraft(root: string, dir: string): Promise<ConfigDraft | undefined> {
  const [pbtxt, json] = await Promise.all([readOptional(root, join(dir, 'config.pbtxt')), readOptional(root, join(dir, 'config.json'))]);
  if (pbtxt !== undefined && json !== undefined) throw new Error('both config.pbtxt and config.json are present; keep one');
  if (pbtxt !== undefined) return readPbtxtConfig(pbtxt);
  if (json !== undefined) return readJsonConfig(json);
  return undefined;
}

interface VersionFile {
  readonly entry: ModelVersionEntry;
  readonly meta: OnnxMetadata;
}

async function readVersion(root: string, name: string, dir: string, version: string): Promise<VersionFile> {
  const file = join(dir, version, MODEL_FILE);
  let byteSize: number;
  let mtimeMs: number;
  try {
    await checkContained(root, file, `version ${version}: ${MODEL_FILE}`);
  } catch (e) {
    // A missing file is reported below, as missing.
    if (!isMissing(e)) throw e;
  }
  try {
    const s = await stat(file);
    if (!s.isFile()) throw new Error('not a file');
    byteSize = s.size;
    mtimeMs = s.mtimeMs;
  } catch (e) {
    throw new Error(`version ${version}: ${MODEL_FILE} is missing (${isMissing(e) ? 'no such file' : reasonOf(e)})`, { cause: e });
  }
  try {
    return { entry: { name, version, file, byteSize, mtimeMs }, meta: await readOnnxMetadata(file) };
  } catch (e) {
    throw new Error(`version ${version}: ${MODEL_FILE}: ${reasonOf(e)}`, { cause: e });
  }
}

/** Label files bigger than this are refused (a label file is a list of class names). */
const MAX_LABEL_FILE_BYTES = 16 * 1024 * 1024;

/**
 * Reads the label file of every output that names one (the classification extension): a file of the
 * model folder, one label per line, inside the repository like every other file it serves.
 */
async function withLabels(root: string, dir: string, config: ModelConfig): Promise<ModelConfig> {
  if (!config.outputs.some((o) => o.labelFilename)) return config;
  const outputs: TensorConfig[] = [];
  for (const o of config.outputs) {
    if (!o.labelFilename) {
      outputs.push(o);
      continue;
    }
    const file = join(dir, o.labelFilename);
    if (isAbsolute(o.labelFilename) || o.labelFilename.split(/[\\/]/).includes('..')) throw new Error(`output '${o.name}': label_filename '${o.labelFilename}' must name a file in the model folder`);
    await checkContained(root, file, `output '${o.name}': label file ${o.labelFilename}`);
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) throw new Error(`output '${o.name}': label file '${o.labelFilename}' does not exist in the model folder`);
    if (info.size > MAX_LABEL_FILE_BYTES) throw new Error(`output '${o.name}': label file '${o.labelFilename}' is larger than ${MAX_LABEL_FILE_BYTES} bytes`);
    const lines = (await readFile(file, 'utf8')).split(/\r?\n/);
    if (lines.at(-1) === '') lines.pop();
    outputs.push({ ...o, labels: lines });
  }
  return { ...config, outputs };
}

async function loadEntry(root: string, name: string, dir: string, override?: ConfigDraft): Promise<ModelEntry> {
  const warnings: string[] = [];
  try {
    await checkContained(root, dir, 'the model folder');
    const draft = override ?? (await readConfigDraft(root, dir));
    for (const field of draft?.unknownFields ?? []) warnings.push(`${draft?.file ?? 'config'}: field '${field}' is not used by sluice and was ignored`);
    checkIdentity(name, draft);
    if (draft?.platform === ENSEMBLE_PLATFORM) return await readEnsembleEntry(name, dir, draft, warnings);
    if (draft?.backend !== undefined && BUILTIN_BACKENDS.includes(draft.backend)) return await readBuiltinEntry(name, dir, draft, warnings);
    const versions = selectVersions(await listVersionFolders(dir), draft?.versionPolicy ?? { latest: { numVersions: 1 } });
    // One at a time: decoding a large model is CPU work and memory, and most models serve one version.
    const files: VersionFile[] = [];
    for (const v of versions) files.push(await readVersion(root, name, dir, v));
    const newest = files[files.length - 1];
    if (newest === undefined) throw new Error('no versions to serve');
    // The newest file completes the config (as Triton auto-completes from the version it loads first).
    const sig = settleSignature(draft, newest.meta, newest.entry.version);
    for (const f of files.slice(0, -1)) checkSignature(draft, sig, f.meta, f.entry.version);
    const config = await withLabels(root, dir, normalizeConfig(name, draft, sig));
    return { name, config, versions: files.map((f) => f.entry), error: '', warnings };
  } catch (e) {
    return { name, config: undefined, versions: [], error: reasonOf(e), warnings };
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (e) {
    if (isMissing(e)) return false;
    throw e;
  }
}

/**
 * Reads one model's folder. Throws InvalidModelName before the name touches the file system, and
 * ModelNotFound when there is no such folder; every other problem is the entry's `error`.
 */
export async function readModelEntry(root: string, name: string, override?: ConfigDraft): Promise<ModelEntry> {
  if (!MODEL_NAME_PATTERN.test(name)) throw InvalidModelName(name);
  // The scan's rule: a hidden folder (.git, .cache) is not a model, whoever asks for it by name.
  if (name.startsWith('.')) throw ModelNotFound(name);
  const abs = resolve(root);
  const dir = join(abs, name);
  if (!(await isDirectory(dir))) throw ModelNotFound(name);
  const real = await realpath(abs);
  const entry = await loadEntry(real, name, dir, override);
  return entry.config?.ensembleScheduling ? withSteps(real, abs, entry) : entry;
}

/** An ensemble read alone is checked against the models it names, read as they are on disk now. */
async function withSteps(real: string, abs: string, entry: ModelEntry): Promise<ModelEntry> {
  const entries = new Map<string, ModelEntry>([[entry.name, entry]]);
  const todo = [entry];
  for (let e = todo.pop(); e !== undefined; e = todo.pop()) {
    for (const s of e.config?.ensembleScheduling?.steps ?? []) {
      const dir = join(abs, s.modelName);
      if (entries.has(s.modelName) || !MODEL_NAME_PATTERN.test(s.modelName) || s.modelName.startsWith('.') || !(await isDirectory(dir))) continue;
      const step = await loadEntry(real, s.modelName, dir);
      entries.set(s.modelName, step);
      todo.push(step);
    }
  }
  checkEnsembles(entries);
  return entries.get(entry.name) ?? entry;
}

/**
 * Scans a Triton-layout repository: every folder of the root is a model (hidden ones, starting with
 * '.', are skipped). A broken model is an entry with its error; the others load. Entries are sorted by
 * name. Throws an Error naming the folder when the root itself cannot be listed.
 */
export async function scanRepository(root: string): Promise<Map<string, ModelEntry>> {
  const abs = resolve(root);
  let names: string[];
  try {
    names = (await readdir(abs, { withFileTypes: true })).map((e) => e.name).filter((n) => !n.startsWith('.'));
  } catch (e) {
    // An operator's setting, not a request: a plain Error that says which folder and why.
    throw new Error(`model repository '${abs}' cannot be read: ${reasonOf(e)}`, { cause: e });
  }
  const real = await realpath(abs);
  const entries: ModelEntry[] = [];
  for (const name of names.sort()) {
    if (!MODEL_NAME_PATTERN.test(name)) {
      // Folders only: stray files (a README, the generator) are not models.
      if (await isDirectory(join(abs, name))) entries.push({ name, config: undefined, versions: [], error: InvalidModelName(name).message, warnings: [] });
      continue;
    }
    const dir = join(abs, name);
    if (await isDirectory(dir)) entries.push(await loadEntry(real, name, dir));
  }
  const map = new Map(entries.map((e) => [e.name, e]));
  checkEnsembles(map);
  return map;
}
