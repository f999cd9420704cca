// Stands in for ort-thread.ts in a test of a thread worker whose ONNX Runtime thread dies: while the
// marker file named by SLUICE_TEST_CRASH_MARKER exists, the thread removes it and dies on its first
// message; otherwise (the respawned thread) it is the real ORT thread.
import { existsSync, rmSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';

const marker = process.env['SLUICE_TEST_CRASH_MARKER'];
if (marker !== undefined && existsSync(marker)) {
  rmSync(marker);
  parentPort?.on('message', () => {
    throw new Error('simulated crash in the ONNX Runtime thread');
  });
} else {
  await import('../../src/worker/ort-thread.ts');
}
