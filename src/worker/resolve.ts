/**
 * Finds the file and config of a model version in the repository. The worker reads the repository
 * itself (it sits beside the models, locally or on a remote worker host), so the gateway sends names only.
 */
import { ModelLoadFailed, ModelVersionNotFound, UploadMissing } from '../core/errors.ts';
import type { ModelConfig } from '../core/model.ts';
import { readModelEntry, type ModelEntry } from '../repository/repository.ts';
import type { UploadStore } from '../repository/uploads.ts';

/** A model version ready to open. */
export interface ResolvedModel {
  readonly model: string;
  readonly version: string;
  readonly file: string;
  readonly byteSize: number;
  /** The normalized config (warmup, pinned, max batch size); undefined only for hand-built resolvers. */
  readonly config: ModelConfig | undefined;
}

/** Turns a model name and version into a file; throws SluiceErrors (NOT_FOUND, load failures). */
export interface ModelResolver {
  /** `source` names files uploaded with a load request (src/repository/uploads.ts) instead of the repository's. */
  resolve(model: string, version: string, source?: string): Promise<ResolvedModel>;
  /** The newest version the model's version policy serves (for models loaded by name at start). */
  latestVersion(model: string): Promise<string>;
}

async function usableEntry(root: string, model: string): Promise<ModelEntry> {
  const entry = await readModelEntry(root, model);
  // A broken model (bad config, unreadable file) is a load failure: the other models keep serving.
  if (entry.error !== '') throw ModelLoadFailed(model, entry.error);
  // An ensemble has no file: the gateway runs its steps, a worker has nothing to load.
  if (entry.config?.ensembleScheduling) throw ModelLoadFailed(model, 'it is an ensemble, which the gateway runs from its step models; a worker loads only ONNX models');
  return entry;
}

/**
 * Resolves against a Triton-layout repository through src/repository: a version outside the model's
 * version policy is not served, just as the gateway would not route to it. A version with a source is
 * read from `uploads` alone (UploadMissing when it is not staged there): never from the repository.
 */
export function repositoryResolver(root: string, uploads?: UploadStore): ModelResolver {
  return {
    async resolve(model, version, source) {
      if (source !== undefined) {
        if (!uploads) throw UploadMissing(model, version, source, 'this worker takes no uploads');
        const u = await uploads.resolve(model, version, source);
        return { model, version, file: u.file, byteSize: u.byteSize, config: u.entry.config };
      }
      const entry = await usableEntry(root, model);
      const v = entry.versions.find((x) => x.version === version);
      if (!v) throw ModelVersionNotFound(model, version);
      return { model, version, file: v.file, byteSize: v.byteSize, config: entry.config };
    },
    async latestVersion(model) {
      const entry = await usableEntry(root, model);
      const newest = entry.versions[entry.versions.length - 1];
      if (!newest) throw ModelLoadFailed(model, 'no versions to serve');
      return newest.version;
    },
  };
}
