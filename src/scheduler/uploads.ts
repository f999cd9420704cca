/**
 * A load request with model files (Triton's `file:<version>/<name>` parameters): the files are staged
 * (src/repository/uploads.ts) and read as the model's entry, which then loads like any other. The
 * versions it makes carry their source, so workers run the uploaded files (src/scheduler/sourced-executor.ts).
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidParameter, ModelNotFound, Unimplemented } from '../core/errors.ts';
import { MODEL_NAME_PATTERN } from '../core/model.ts';
import type { ModelEntry } from '../repository/repository.ts';
import { uploadPathOf, type UploadStore, type UploadedFile } from '../repository/uploads.ts';
import type { ModelSlot } from './models.ts';

/**
 * Stages the files and reads them as the model's entry. The config is required (as Triton requires
 * it: the files come without one), and the name must be a model of the repository: uploads replace a
 * model's files, they do not add names (every name is a metric label, bounded by the repository).
 */
export async function stageUpload(uploads: UploadStore | undefined, root: string, name: string, config: string | undefined, files: ReadonlyMap<string, Uint8Array>): Promise<ModelEntry> {
  if (!uploads) throw Unimplemented('loading a model with uploaded files on this server');
  if (config === undefined) throw InvalidParameter('config', "a load with 'file:' parameters needs the model's config too (the uploaded files replace the model folder, config included)");
  if (!MODEL_NAME_PATTERN.test(name) || name.startsWith('.') || !(await isDirectory(join(root, name)))) throw ModelNotFound(name);
  const byVersion = new Map<string, UploadedFile[]>();
  for (const [param, data] of files) {
    const { version, path } = uploadPathOf(param);
    const list = byVersion.get(version) ?? [];
    list.push({ path, data });
    byVersion.set(version, list);
  }
  const { id } = await uploads.stage(name, config, byVersion);
  return uploads.entryOf(id);
}

/** The sources a model's versions run now (loaded, loading or retiring): their staged files must stay. */
export function sourcesOf(slot: ModelSlot | undefined): Set<string> {
  const out = new Set<string>();
  for (const v of slot?.versions.values() ?? []) if (v.source !== undefined) out.add(v.source);
  return out;
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}
