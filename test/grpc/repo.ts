import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { SAMPLE_REPOSITORY } from '../helpers/sluice.ts';

/**
 * Triton config of a copy of the simple model whose batcher holds requests for `delayUs` (nothing
 * reaches the preferred size of 32), with a queue of `maxQueueSize`: it makes queueing observable.
 */
export function slowSimpleConfig(name: string, delayUs: number, maxQueueSize: number): string {
  const io = (n: string): string => `{ name: "${n}" data_type: TYPE_INT32 dims: [ 16 ] }`;
  return [
    `name: "${name}"`,
    'platform: "onnxruntime_onnx"',
    'max_batch_size: 32',
    `input [ ${io('INPUT0')}, ${io('INPUT1')} ]`,
    `output [ ${io('OUTPUT0')}, ${io('OUTPUT1')} ]`,
    `dynamic_batching { preferred_batch_size: [ 32 ] max_queue_delay_microseconds: ${delayUs} default_queue_policy { max_queue_size: ${maxQueueSize} } }`,
    '',
  ].join('\n');
}

/**
 * A temporary model repository: copies of sample models, plus copies of the simple model's ONNX file
 * under other names with the given config.pbtxt. Removed when the test ends.
 */
export function tempRepository(t: TestContext, samples: readonly string[], simpleVariants: Readonly<Record<string, string>>): string {
  const root = mkdtempSync(join(tmpdir(), 'sluice-grpc-repo-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  for (const name of samples) cpSync(join(SAMPLE_REPOSITORY, name), join(root, name), { recursive: true });
  for (const [name, config] of Object.entries(simpleVariants)) {
    mkdirSync(join(root, name, '1'), { recursive: true });
    cpSync(join(SAMPLE_REPOSITORY, 'simple', '1', 'model.onnx'), join(root, name, '1', 'model.onnx'));
    writeFileSync(join(root, name, 'config.pbtxt'), config);
  }
  return root;
}
