// Plain-JS forward passes of the sample mlp and cnn, computed in float64 from the weights read back out
// of the generated files, so the tests check ONNX Runtime's numbers against an independent computation.
import { readFileSync } from 'node:fs';
import { TO_PLAIN, onnxTypes } from '../../src/repository/onnx-proto.ts';

export interface Weight {
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

interface PlainTensor {
  name?: string;
  dims?: bigint[];
  dataType?: number;
  rawData?: Uint8Array;
}

/** The float initializers of a model file, by name. */
export function readInitializers(file: string): Map<string, Weight> {
  const { ModelProto } = onnxTypes();
  const model = ModelProto.toObject(ModelProto.decode(readFileSync(file)), TO_PLAIN) as { graph?: { initializer?: PlainTensor[] } };
  const out = new Map<string, Weight>();
  for (const t of model.graph?.initializer ?? []) {
    if (t.dataType !== 1 || t.rawData === undefined) throw new Error(`initializer ${t.name ?? '?'} is not raw FP32`);
    const raw = t.rawData;
    const data = new Float32Array(raw.byteLength / 4);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(i * 4, true);
    out.set(t.name ?? '', { dims: (t.dims ?? []).map(Number), data });
  }
  return out;
}

function weight(w: Map<string, Weight>, name: string): Weight {
  const found = w.get(name);
  if (found === undefined) throw new Error(`no initializer ${name}`);
  return found;
}

/** y = x W + b for one row (Gemm without transposes). */
function dense(x: Float64Array, W: Weight, b: Weight): Float64Array {
  const [fanIn = 0, fanOut = 0] = W.dims;
  const y = new Float64Array(fanOut);
  for (let o = 0; o < fanOut; o++) y[o] = b.data[o] ?? 0;
  for (let i = 0; i < fanIn; i++) {
    const xi = x[i] ?? 0;
    if (xi === 0) continue;
    const row = i * fanOut;
    for (let o = 0; o < fanOut; o++) y[o] = (y[o] ?? 0) + xi * (W.data[row + o] ?? 0);
  }
  return y;
}

function relu(x: Float64Array): Float64Array {
  return x.map((v) => (v > 0 ? v : 0));
}

function softmax(x: Float64Array): Float64Array {
  const max = Math.max(...x);
  const e = x.map((v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/** The mlp's output for one row of 784 inputs. */
export function mlpForward(w: Map<string, Weight>, layers: number, row: Float32Array): Float64Array {
  let x: Float64Array = Float64Array.from(row);
  for (let l = 0; l < layers; l++) {
    x = dense(x, weight(w, `W${l}`), weight(w, `B${l}`));
    if (l + 1 < layers) x = relu(x);
  }
  return softmax(x);
}

/** 3x3 convolution, padding 1, stride 1, then ReLU; x is [cin, h, w] flattened. */
function convRelu(x: Float64Array, cin: number, h: number, wd: number, W: Weight, b: Weight): Float64Array {
  const cout = W.dims[0] ?? 0;
  const y = new Float64Array(cout * h * wd);
  for (let o = 0; o < cout; o++) {
    for (let r = 0; r < h; r++) {
      for (let c = 0; c < wd; c++) {
        let acc = b.data[o] ?? 0;
        for (let i = 0; i < cin; i++) {
          for (let kr = 0; kr < 3; kr++) {
            const rr = r + kr - 1;
            if (rr < 0 || rr >= h) continue;
            for (let kc = 0; kc < 3; kc++) {
              const cc = c + kc - 1;
              if (cc < 0 || cc >= wd) continue;
              acc += (x[(i * h + rr) * wd + cc] ?? 0) * (W.data[((o * cin + i) * 3 + kr) * 3 + kc] ?? 0);
            }
          }
        }
        y[(o * h + r) * wd + c] = acc > 0 ? acc : 0;
      }
    }
  }
  return y;
}

function maxPool2(x: Float64Array, ch: number, h: number, wd: number): Float64Array {
  const oh = h / 2;
  const ow = wd / 2;
  const y = new Float64Array(ch * oh * ow);
  for (let k = 0; k < ch; k++) {
    for (let r = 0; r < oh; r++) {
      for (let c = 0; c < ow; c++) {
        const at = (rr: number, cc: number): number => x[(k * h + rr) * wd + cc] ?? -Infinity;
        y[(k * oh + r) * ow + c] = Math.max(at(2 * r, 2 * c), at(2 * r, 2 * c + 1), at(2 * r + 1, 2 * c), at(2 * r + 1, 2 * c + 1));
      }
    }
  }
  return y;
}

/** The cnn's 10 logits for one [channels[0], size, size] image. */
export function cnnForward(w: Map<string, Weight>, channels: readonly number[], size: number, image: Float32Array): Float64Array {
  let x: Float64Array = Float64Array.from(image);
  let s = size;
  for (let blk = 0; blk + 1 < channels.length; blk++) {
    x = convRelu(x, channels[blk] ?? 0, s, s, weight(w, `conv${blk}_w`), weight(w, `conv${blk}_b`));
    x = maxPool2(x, channels[blk + 1] ?? 0, s, s);
    s /= 2;
  }
  const last = channels[channels.length - 1] ?? 0;
  const pooled = new Float64Array(last);
  for (let k = 0; k < last; k++) {
    let sum = 0;
    for (let i = 0; i < s * s; i++) sum += x[k * s * s + i] ?? 0;
    pooled[k] = sum / (s * s);
  }
  return dense(pooled, weight(w, 'fc_w'), weight(w, 'fc_b'));
}
