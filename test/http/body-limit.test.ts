import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { BodyLimits, JSON_BYTES_PER_ELEMENT, JSON_HEADROOM_BYTES, MIN_MODEL_BODY_LIMIT } from '../../src/frontdoor/http/body-limit.ts';
import { startTestSluice } from '../helpers/sluice.ts';
import { binaryBody, h1Client, splitResponse } from './client.ts';

/** mlp: one FP32 input of 784 per row, max_batch_size 32. */
const MLP_ROWS = 32;
const MLP_ELEMENTS = MLP_ROWS * 784;
const MLP_JSON_LIMIT = MLP_ELEMENTS * JSON_BYTES_PER_ELEMENT + JSON_HEADROOM_BYTES;
/** cnn: one FP32 input of 3x64x64 per row, max_batch_size 32. */
const CNN_RAW = 32 * 3 * 64 * 64 * 4;
/** The body that used to block the event loop: shape [20000, 784] as JSON. */
const HUGE = 62_720_000;

interface RawResponse {
  status: number;
  body: string;
  ms: number;
  /** Body bytes this client had written when the answer came. */
  sent: number;
}

/**
 * Sends an infer request by hand so that the test controls what goes on the wire: the head, then body
 * chunks (chunked encoding when no length is declared) until the server answers or `maxBody` is sent.
 */
function rawInfer(port: number, model: string, head: Record<string, string>, maxBody: number): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const started = performance.now();
    const chunked = head['content-length'] === undefined;
    const lines = [`POST /v2/models/${model}/infer HTTP/1.1`, 'host: 127.0.0.1', 'content-type: application/json', ...Object.entries(head).map(([k, v]) => `${k}: ${v}`)];
    if (chunked) lines.push('transfer-encoding: chunked');
    let sent = 0;
    let answered = false;
    let received = '';
    const chunk = Buffer.alloc(64 * 1024, '1,'.charCodeAt(0));
    const pump = (): void => {
      while (!answered && sent < maxBody) {
        const frame = chunked ? Buffer.concat([Buffer.from(`${chunk.byteLength.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]) : chunk;
        sent += chunk.byteLength;
        if (!socket.write(frame)) {
          socket.once('drain', pump);
          return;
        }
      }
    };
    socket.on('connect', () => {
      socket.write(`${lines.join('\r\n')}\r\n\r\n${chunked ? '1\r\n[\r\n' : '['}`);
      // Let the server see the head alone first: a refusal from the headers must not need the body.
      setTimeout(pump, 50);
    });
    socket.on('data', (d: Buffer) => {
      received += d.toString('utf8');
      const headEnd = received.indexOf('\r\n\r\n');
      const len = /content-length: (\d+)/i.exec(received);
      if (headEnd < 0 || !len || received.length < headEnd + 4 + Number(len[1])) return;
      answered = true;
      resolve({ status: Number(received.slice(9, 12)), body: received.slice(headEnd + 4), ms: performance.now() - started, sent });
      socket.destroy();
    });
    socket.on('error', (e) => {
      if (!answered) reject(e);
    });
  });
}

function mlpJson(rows: number, indent?: number): string {
  const data = Array.from({ length: rows }, (_, r) => Array.from({ length: 784 }, (_, i) => Math.sin(r * 784 + i) / 3));
  return JSON.stringify({ inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [rows, 784], data }] }, null, indent);
}

void test('REST infer bodies are bounded by what a full batch of their model could need', { timeout: 60_000 }, async (t) => {
  const sluice = await startTestSluice(t);
  const port = sluice.ports.http;
  const http = h1Client(`http://127.0.0.1:${port}`);
  t.after(() => http.close());

  await t.test('the limit follows the model config: rows x element sizes, JSON expansion, floor and global cap', () => {
    const limits = new BodyLimits(sluice.service, 64 * 1024 * 1024);
    assert.equal(limits.limitFor('mlp', '', undefined)?.bytes, MLP_JSON_LIMIT);
    assert.equal(limits.limitFor('cnn', '', 300)?.bytes, CNN_RAW + 300, 'binary: raw bytes after the JSON header');
    assert.equal(limits.limitFor('cnn', '', undefined)?.bytes, (CNN_RAW / 4) * JSON_BYTES_PER_ELEMENT + JSON_HEADROOM_BYTES);
    assert.equal(limits.limitFor('mlp', '', 300)?.bytes, MIN_MODEL_BODY_LIMIT, 'never below the floor');
    assert.equal(limits.limitFor('simple', '', undefined)?.bytes, MIN_MODEL_BODY_LIMIT);
    assert.equal(new BodyLimits(sluice.service, 200_000).limitFor('mlp', '', undefined), undefined, 'never above the global limit');
    assert.equal(limits.limitFor('nope', '', undefined), undefined, 'an unknown model keeps the global limit (and its 404)');
  });

  await t.test('a huge declared body is refused with 413 from its headers, while the server keeps answering', async () => {
    const refused = rawInfer(port, 'mlp', { 'content-length': String(HUGE) }, 256 * 1024);
    const meanwhile = await http.call('GET', '/v2/health/ready');
    assert.equal(meanwhile.status, 200);
    const res = await refused;
    assert.equal(res.status, 413, res.body);
    const error = (JSON.parse(res.body) as { error: string }).error;
    assert.match(error, new RegExp(`request body of ${HUGE} bytes exceeds the limit of ${MLP_JSON_LIMIT} bytes for model 'mlp'`));
    assert.match(error, /full batch, 32 rows/);
    assert.ok(res.ms < 2000, `answered after ${res.ms} ms`);
  });

  await t.test('a chunked body without a length is cut off at the limit while it streams', async () => {
    const res = await rawInfer(port, 'mlp', {}, 16 * 1024 * 1024);
    assert.equal(res.status, 413, res.body);
    assert.match(res.body, new RegExp(`more than ${MLP_JSON_LIMIT} bytes exceeds the limit of ${MLP_JSON_LIMIT} bytes for model 'mlp'`));
    assert.ok(res.sent < 8 * 1024 * 1024, `the client got to send ${res.sent} bytes before the 413`);
  });

  await t.test('a binary body larger than a full batch of raw tensors is refused', async () => {
    const res = await rawInfer(port, 'cnn', { 'content-length': String(CNN_RAW + 10_000), 'inference-header-content-length': '100' }, 0);
    assert.equal(res.status, 413, res.body);
    assert.match(res.body, new RegExp(`limit of ${CNN_RAW + 100} bytes for model 'cnn' \\(a full batch, 32 rows, of binary tensors \\(${CNN_RAW} bytes\\) after a 100-byte JSON header\\)`));
  });

  await t.test('bodies within the limit still work: a full batch, pretty-printed JSON and binary', async () => {
    const json = mlpJson(MLP_ROWS, 2);
    assert.ok(json.length > 1024 * 1024 / 2, 'the pretty-printed batch is a realistic size');
    const res = await http.call('POST', '/v2/models/mlp/infer', { body: json });
    assert.equal(res.status, 200, res.text().slice(0, 300));
    assert.deepEqual(res.json().outputs[0].shape, [MLP_ROWS, 10]);
    const raw = Buffer.from(new Float32Array(MLP_ELEMENTS).fill(0.5).buffer);
    const bin = binaryBody({ inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [MLP_ROWS, 784], parameters: { binary_data_size: raw.byteLength } }] }, [raw]);
    const b = await http.call('POST', '/v2/models/mlp/infer', bin);
    assert.equal(b.status, 200, b.text().slice(0, 300));
    assert.deepEqual(splitResponse(b).json.outputs[0].shape, [MLP_ROWS, 10]);
  });

  await t.test('too many rows within the limit still get the scheduler\'s batch-size answer', async () => {
    const res = await http.call('POST', '/v2/models/mlp/infer', { body: mlpJson(40) });
    assert.equal(res.status, 400);
    assert.match(res.json().error, /batch-size must be <= 32/);
  });
});
