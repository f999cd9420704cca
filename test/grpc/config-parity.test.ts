// One model-config builder for both front doors: gRPC ModelConfig carries every field REST's /config
// has that model_config.proto declares, with the same values.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTestSluice } from '../helpers/sluice.ts';
import { connectGrpc } from './client.ts';

/** proto-loader's plain object with 64-bit integers as strings and defaults filled: compare as JSON numbers. */
function normalize(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalize);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
  return typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
}

test('gRPC ModelConfig and REST /config answer the same config, field by field', async (t) => {
  const sluice = await startTestSluice(t);
  const grpc = connectGrpc(t, sluice.ports.grpc);
  for (const model of ['simple', 'mlp', 'identity']) {
    const rest = (await (await fetch(`http://127.0.0.1:${sluice.ports.http}/v2/models/${model}/config`)).json()) as Record<string, unknown>;
    const g = normalize((await grpc.call('ModelConfig', { name: model }))['config']) as Record<string, unknown>;
    for (const field of ['name', 'platform', 'backend', 'max_batch_size', 'version_policy', 'input', 'output', 'dynamic_batching', 'instance_group', 'default_model_filename', 'model_warmup', 'response_cache']) {
      if (!(field in rest)) continue;
      const r = rest[field];
      const gv = g[field];
      // Compare on the fields both carry (proto-loader adds defaults; REST adds fields the proto lacks).
      const pick = (a: unknown, b: unknown): unknown => {
        if (Array.isArray(a) && Array.isArray(b)) return a.map((x, i) => pick(x, b[i]));
        if (a !== null && typeof a === 'object' && b !== null && typeof b === 'object') return Object.fromEntries(Object.keys(a).filter((k) => k in (b)).map((k) => [k, pick((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])]));
        return a;
      };
      assert.deepEqual(pick(gv, r), pick(r, gv), `${model}.${field}`);
    }
    assert.equal(g['default_model_filename'], 'model.onnx', `${model}: gRPC has the field REST had alone before`);
  }
});
