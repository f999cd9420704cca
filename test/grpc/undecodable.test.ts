// A request whose bytes are not a protobuf message is the client's fault: INVALID_ARGUMENT, counted.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Client, credentials, status, type ServiceError } from '@grpc/grpc-js';
import { loadInferenceService } from '../../src/frontdoor/grpc/proto.ts';
import { wireFormatError } from '../../src/frontdoor/grpc/wire-check.ts';
import { UNKNOWN_MODEL_LABEL } from '../../src/telemetry/metrics.ts';
import { startTestSluice } from '../helpers/sluice.ts';

/** Field 1 (model_name), length-delimited, claiming far more bytes than follow. */
const GARBAGE = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x41]);

function rawCall(client: Client, method: string, bytes: Buffer): Promise<{ error?: ServiceError; reply?: Buffer }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(`/inference.GRPCInferenceService/${method}`, (b: Buffer) => b, (b: Buffer) => b, bytes, (e, r) => resolve(e ? { error: e } : { reply: r! }));
  });
}

void test('undecodable request bytes answer INVALID_ARGUMENT naming the method, and ModelInfer counts them', async (t) => {
  const sluice = await startTestSluice(t);
  const client = new Client(`127.0.0.1:${sluice.ports.grpc}`, credentials.createInsecure());
  t.after(() => client.close());
  for (const method of ['ModelInfer', 'ModelMetadata']) {
    const { error } = await rawCall(client, method, GARBAGE);
    if (!error) throw new Error(`${method} answered a reply to garbage`);
    assert.equal(error.code, status.INVALID_ARGUMENT, `${method}: ${error.details}`);
    assert.match(error.details, new RegExp(`the ${method} request is not a valid protobuf message`));
  }
  const { values } = await sluice.metrics.requests.get();
  const counted = values.find((v) => v.labels['protocol'] === 'grpc' && v.labels['model'] === UNKNOWN_MODEL_LABEL && v.labels['status'] === 'invalid');
  assert.equal(counted?.value, 1, 'the ModelInfer request is counted as invalid');
  // The channel is fine afterwards.
  const live = await rawCall(client, 'ServerLive', Buffer.alloc(0));
  assert.ok(live.reply, `ServerLive answers: ${live.error?.details ?? ''}`);
});

void test('the framing check passes every well-formed request and names what a cut-short one breaks', () => {
  const encode = loadInferenceService()['ModelInfer']!.requestSerialize;
  const raw = Buffer.alloc(64 * 4, 7);
  const whole = encode({ model_name: 'simple', id: 'r1', inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: ['1', '64'], parameters: { binary_data_size: { int64_param: '256' } } }], raw_input_contents: [raw] });
  assert.equal(wireFormatError(whole), undefined);
  assert.equal(wireFormatError(Buffer.alloc(0)), undefined, 'an empty message is a valid all-defaults message');
  for (let cut = 1; cut < 8; cut++) {
    const short = whole.subarray(0, whole.length - cut);
    assert.match(wireFormatError(short) ?? '', /runs \d+ bytes past the end|truncated/, `cut ${cut}`);
  }
  assert.match(wireFormatError(Buffer.from([0x0b])) ?? '', /wire type 3/);
  assert.match(wireFormatError(Buffer.from([0x00, 0x01])) ?? '', /field number 0/);
});
