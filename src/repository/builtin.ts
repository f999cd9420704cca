/**
 * Models served by a built-in backend (no model file, no worker): their config declares every input
 * and output, checked here against what the backend takes and answers. 'repeat' is Triton's repeat
 * test backend: a decoupled model answering once per element of IN.
 */
import type { DataType } from '../core/datatypes.ts';
import type { TensorConfig } from '../core/model.ts';
import { configError, type ConfigDraft } from './draft.ts';
import { normalizeConfig } from './normalize.ts';
import type { ModelEntry } from './repository.ts';
import { listVersionFolders, selectVersions } from './versions.ts';

const REPEAT: { readonly inputs: readonly [string, DataType, readonly number[]][]; readonly outputs: readonly [string, DataType, readonly number[]][] } = {
  inputs: [['IN', 'INT32', [-1]], ['DELAY', 'UINT32', [-1]], ['WAIT', 'UINT32', [1]]],
  outputs: [['OUT', 'INT32', [1]], ['IDX', 'UINT32', [1]]],
};

function tensors(draft: ConfigDraft, kind: 'input' | 'output', want: typeof REPEAT.inputs): TensorConfig[] {
  const given = (kind === 'input' ? draft.inputs : draft.outputs) ?? [];
  return want.map(([name, datatype, dims]) => {
    const t = given.find((x) => x.name === name);
    const shown = `${name} ${datatype} [${dims.join(', ')}]`;
    if (!t) throw configError(draft.file, kind, `the repeat backend needs the ${kind} ${shown}`);
    if ((t.datatype ?? datatype) !== datatype || JSON.stringify(t.dims ?? dims) !== JSON.stringify(dims)) throw configError(draft.file, kind, `${kind} '${name}' must be ${shown} for the repeat backend`);
    return { name, datatype, dims };
  });
}

export async function readBuiltinEntry(name: string, dir: string, draft: ConfigDraft, warnings: string[]): Promise<ModelEntry> {
  if ((draft.maxBatchSize ?? 0) !== 0) throw configError(draft.file, draft.source === 'pbtxt' ? 'max_batch_size' : 'maxBatchSize', 'the repeat backend only supports models with max_batch_size 0');
  const inputs = tensors(draft, 'input', REPEAT.inputs);
  const outputs = tensors(draft, 'output', REPEAT.outputs);
  const versions = selectVersions(await listVersionFolders(dir), draft.versionPolicy ?? { latest: { numVersions: 1 } });
  const config = normalizeConfig(name, draft, { maxBatchSize: 0, inputs, outputs });
  return { name, config, versions: versions.map((version) => ({ name, version, file: '', byteSize: 0, mtimeMs: 0 })), error: '', warnings };
}
