// Temporary Triton-layout repositories for the repository tests, built from real ONNX files.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { ELEM, encodeModel, node } from '../../models/onnx-builder.ts';
import type { ValueSpec } from '../../models/onnx-builder.ts';
import { buildSampleModel } from '../../models/sample-models.ts';

export { ELEM };

/** An empty repository folder, removed when the test ends. */
export async function tempRepo(t: TestContext): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'sluice-repo-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  return root;
}

/** Writes <root>/<name>/<version>/model.onnx. */
export async function writeVersion(root: string, name: string, version: string, bytes: Uint8Array): Promise<void> {
  await mkdir(join(root, name, version), { recursive: true });
  await writeFile(join(root, name, version, 'model.onnx'), bytes);
}

/** Writes a config file (config.pbtxt or config.json) beside the versions. */
export async function writeConfig(root: string, name: string, file: 'config.pbtxt' | 'config.json', text: string): Promise<void> {
  await mkdir(join(root, name), { recursive: true });
  await writeFile(join(root, name, file), text);
}

/** The sample `simple` model (INT32 INPUT0/INPUT1 [batch,16] -> OUTPUT0/OUTPUT1). */
export function simpleBytes(): Uint8Array {
  return buildSampleModel('simple');
}

/** A one-Identity model with the given input and output specs: the smallest file with any signature. */
export function identityBytes(input: ValueSpec, output: ValueSpec = { ...input, name: 'OUT' }): Uint8Array {
  return encodeModel({ name: 'fixture', doc: '', inputs: [input], outputs: [output], nodes: [node('Identity', [input.name], [output.name])] });
}
