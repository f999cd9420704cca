/**
 * Finding a model, a version and its config in the model table, and the read-only answers built from
 * them (metadata, statistics): what the service's endpoints share, each check with its error.
 */
import { InvalidVersion, ModelNotFound, ModelNotReady, ModelVersionNotFound } from '../core/errors.ts';
import { VERSION_PATTERN, type ModelConfig, type ModelMetadata, type ModelStats } from '../core/model.ts';
import type { ModelSlot, ModelTable } from './models.ts';
import { compareVersions } from './versions.ts';

export function slotOf(table: ModelTable, name: string): ModelSlot {
  const slot = table.get(name);
  if (!slot) throw ModelNotFound(name);
  return slot;
}

/** A version the model has (on disk or loaded); throws InvalidVersion or ModelVersionNotFound. */
export function checkVersion(slot: ModelSlot, version: string): void {
  if (!VERSION_PATTERN.test(version)) throw InvalidVersion(version);
  const onDisk = slot.entry?.versions.some((v) => String(v.version) === version) ?? false;
  if (!onDisk && !slot.versions.has(version)) throw ModelVersionNotFound(slot.name, version);
}

/** The config a version serves with ('' = the newest loaded), else the one on disk. */
export function configOf(table: ModelTable, name: string, version: string): { slot: ModelSlot; config: ModelConfig } {
  const slot = slotOf(table, name);
  if (version !== '') {
    checkVersion(slot, version);
    const loaded = slot.versions.get(version)?.config;
    if (loaded) return { slot, config: loaded };
  } else {
    const ready = [...slot.versions.values()].filter((v) => v.config).sort((a, b) => compareVersions(b.version, a.version))[0];
    if (ready?.config) return { slot, config: ready.config };
  }
  const config = slot.entry?.config;
  if (!config) throw ModelNotReady(name, table.whyNotReady(slot));
  return { slot, config };
}

function metadataShape(config: ModelConfig, dims: readonly number[]): number[] {
  return config.maxBatchSize > 0 ? [-1, ...dims] : [...dims];
}

export function metadataOf(table: ModelTable, name: string, version: string): ModelMetadata {
  const { slot, config } = configOf(table, name, version);
  const ready = [...slot.versions.values()].filter((v) => v.state === 'READY').map((v) => v.version);
  const versions = ready.length > 0 ? ready : (slot.entry?.versions ?? []).map((v) => String(v.version));
  return {
    name,
    versions: versions.sort(compareVersions),
    platform: config.platform,
    inputs: config.inputs.map((i) => ({ name: i.name, datatype: i.datatype, shape: metadataShape(config, i.dims) })),
    outputs: config.outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: metadataShape(config, o.dims) })),
  };
}

/** Statistics of one version, of a model's ready versions, or of every model's (name ''). */
export function statsOf(table: ModelTable, name: string, version: string): readonly ModelStats[] {
  const slots: ModelSlot[] = name === '' ? [...table.slots()] : [slotOf(table, name)];
  if (name !== '' && version !== '') {
    const slot = slots[0]!;
    checkVersion(slot, version);
    if (!table.hasStats(slot.name, version) && !slot.versions.has(version)) throw ModelVersionNotFound(slot.name, version);
    return [table.statsFor(slot.name, version).snapshot()];
  }
  const out: ModelStats[] = [];
  for (const slot of slots) {
    const versions = [...slot.versions.values()].filter((v) => v.state === 'READY').map((v) => v.version).sort(compareVersions);
    for (const v of versions) out.push(table.statsFor(slot.name, v).snapshot());
  }
  return out;
}
