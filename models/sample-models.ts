// The sample models of the repository, as graph specs. models/README.md documents what each computes.
import { ELEM, attrInt, attrInts, encodeModel, floatInitializer, node } from './onnx-builder.ts';
import type { GraphSpec, InitializerSpec, NodeSpec, ValueSpec } from './onnx-builder.ts';
import { sequenceAccumulator, simpleDynaSequence, simpleSequence } from './sequence-models.ts';
import { tinyLm } from './tiny-lm.ts';
import { Xorshift32 } from './xorshift.ts';

const BATCH = 'batch';

function simple(): GraphSpec {
  const io = (name: string): ValueSpec => ({ name, elemType: ELEM.INT32, dims: [BATCH, 16] });
  return {
    name: 'simple',
    doc: "Triton's example model: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 (INT32).",
    inputs: [io('INPUT0'), io('INPUT1')],
    outputs: [io('OUTPUT0'), io('OUTPUT1')],
    nodes: [node('Add', ['INPUT0', 'INPUT1'], ['OUTPUT0']), node('Sub', ['INPUT0', 'INPUT1'], ['OUTPUT1'])],
  };
}

/** simple's sum and difference on another element type, computed in INT32 with casts on either side. */
function simpleVia32(name: string, elemType: number, doc: string): GraphSpec {
  const io = (n: string): ValueSpec => ({ name: n, elemType, dims: [BATCH, 16] });
  const to = (elem: number) => [attrInt('to', elem)];
  return {
    name,
    doc,
    inputs: [io('INPUT0'), io('INPUT1')],
    outputs: [io('OUTPUT0'), io('OUTPUT1')],
    nodes: [
      node('Cast', ['INPUT0'], ['a'], to(ELEM.INT32)),
      node('Cast', ['INPUT1'], ['b'], to(ELEM.INT32)),
      node('Add', ['a', 'b'], ['sum']),
      node('Sub', ['a', 'b'], ['diff']),
      node('Cast', ['sum'], ['OUTPUT0'], to(elemType)),
      node('Cast', ['diff'], ['OUTPUT1'], to(elemType)),
    ],
  };
}

// Through INT32: ONNX Runtime's CPU Add and Sub have no INT8 kernels; the casts back wrap as INT8 does.
const simpleInt8 = (): GraphSpec => simpleVia32('simple_int8', ELEM.INT8, "Triton's simple_int8: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 (INT8, wrapping).");

const simpleString = (): GraphSpec => simpleVia32('simple_string', ELEM.STRING, 'simple over decimal strings: inputs parse to INT32, sum and difference print back to strings.');

function simpleIdentity(): GraphSpec {
  return {
    name: 'simple_identity',
    doc: 'Echoes a batch of strings: OUTPUT0 = INPUT0 (BYTES).',
    inputs: [{ name: 'INPUT0', elemType: ELEM.STRING, dims: [BATCH, 'n'] }],
    outputs: [{ name: 'OUTPUT0', elemType: ELEM.STRING, dims: [BATCH, 'n'] }],
    nodes: [node('Identity', ['INPUT0'], ['OUTPUT0'])],
  };
}

/**
 * Every protocol datatype ONNX Runtime's node binding can carry (all but BF16, which onnxruntime-node
 * has no tensor type for), keyed by the protocol name used in the tensor names.
 */
export const IDENTITY_TYPES: readonly (readonly [string, number])[] = [
  ['BOOL', ELEM.BOOL],
  ['UINT8', ELEM.UINT8],
  ['UINT16', ELEM.UINT16],
  ['UINT32', ELEM.UINT32],
  ['UINT64', ELEM.UINT64],
  ['INT8', ELEM.INT8],
  ['INT16', ELEM.INT16],
  ['INT32', ELEM.INT32],
  ['INT64', ELEM.INT64],
  ['FP16', ELEM.FLOAT16],
  ['FP32', ELEM.FLOAT],
  ['FP64', ELEM.DOUBLE],
  ['BYTES', ELEM.STRING],
];

function identity(): GraphSpec {
  const nodes: NodeSpec[] = [];
  const inputs: ValueSpec[] = [];
  const outputs: ValueSpec[] = [];
  for (const [dt, elemType] of IDENTITY_TYPES) {
    inputs.push({ name: `INPUT_${dt}`, elemType, dims: [BATCH, `n_${dt}`] });
    outputs.push({ name: `OUTPUT_${dt}`, elemType, dims: [BATCH, `n_${dt}`] });
    nodes.push(node('Identity', [`INPUT_${dt}`], [`OUTPUT_${dt}`]));
  }
  return { name: 'identity', doc: 'One Identity per datatype: OUTPUT_<T> = INPUT_<T>.', inputs, outputs, nodes };
}

/** Layer widths of the mlp; tests rebuild the forward pass from the file's initializers. */
export const MLP_LAYERS: readonly number[] = [784, 1024, 1024, 10];

function mlp(): GraphSpec {
  const rng = new Xorshift32(0x5eed0001);
  const nodes: NodeSpec[] = [];
  const initializers: InitializerSpec[] = [];
  let x = 'INPUT0';
  for (let l = 0; l + 1 < MLP_LAYERS.length; l++) {
    const fanIn = MLP_LAYERS[l] ?? 0;
    const fanOut = MLP_LAYERS[l + 1] ?? 0;
    // 1/sqrt(fan_in) keeps activations near unit scale through the ReLUs, so the softmax is not saturated.
    initializers.push(floatInitializer(`W${l}`, [fanIn, fanOut], rng.fill(fanIn * fanOut, 1 / Math.sqrt(fanIn))));
    initializers.push(floatInitializer(`B${l}`, [fanOut], rng.fill(fanOut, 0.01)));
    const last = l + 2 === MLP_LAYERS.length;
    const y = last ? 'logits' : `h${l}`;
    nodes.push(node('Gemm', [x, `W${l}`, `B${l}`], [y]));
    if (!last) {
      nodes.push(node('Relu', [y], [`r${l}`]));
      x = `r${l}`;
    }
  }
  nodes.push(node('Softmax', ['logits'], ['OUTPUT0'], [attrInt('axis', 1)]));
  return {
    name: 'mlp',
    doc: 'Multi-layer perceptron 784-1024-1024-10 with ReLU and a softmax over 10 classes (seeded weights).',
    inputs: [{ name: 'INPUT0', elemType: ELEM.FLOAT, dims: [BATCH, 784] }],
    outputs: [{ name: 'OUTPUT0', elemType: ELEM.FLOAT, dims: [BATCH, 10] }],
    nodes,
    initializers,
  };
}

/** Channels of the cnn's three conv blocks. */
export const CNN_CHANNELS: readonly number[] = [3, 32, 64, 128];

function cnn(): GraphSpec {
  const rng = new Xorshift32(0x5eed0002);
  const nodes: NodeSpec[] = [];
  const initializers: InitializerSpec[] = [];
  let x = 'INPUT0';
  for (let b = 0; b + 1 < CNN_CHANNELS.length; b++) {
    const cin = CNN_CHANNELS[b] ?? 0;
    const cout = CNN_CHANNELS[b + 1] ?? 0;
    initializers.push(floatInitializer(`conv${b}_w`, [cout, cin, 3, 3], rng.fill(cout * cin * 9, 1 / Math.sqrt(cin * 9))));
    initializers.push(floatInitializer(`conv${b}_b`, [cout], rng.fill(cout, 0.01)));
    nodes.push(node('Conv', [x, `conv${b}_w`, `conv${b}_b`], [`c${b}`], [attrInts('kernel_shape', [3, 3]), attrInts('pads', [1, 1, 1, 1])]));
    nodes.push(node('Relu', [`c${b}`], [`r${b}`]));
    nodes.push(node('MaxPool', [`r${b}`], [`p${b}`], [attrInts('kernel_shape', [2, 2]), attrInts('strides', [2, 2])]));
    x = `p${b}`;
  }
  const channels = CNN_CHANNELS[CNN_CHANNELS.length - 1] ?? 0;
  initializers.push(floatInitializer('fc_w', [channels, 10], rng.fill(channels * 10, 1 / Math.sqrt(channels))));
  initializers.push(floatInitializer('fc_b', [10], rng.fill(10, 0.01)));
  nodes.push(node('GlobalAveragePool', [x], ['gap']));
  nodes.push(node('Flatten', ['gap'], ['flat'], [attrInt('axis', 1)]));
  nodes.push(node('Gemm', ['flat', 'fc_w', 'fc_b'], ['OUTPUT0']));
  return {
    name: 'cnn',
    doc: 'Three conv blocks (3x3 conv, ReLU, 2x2 max pool; 32, 64, 128 channels), global average pool, 10 logits.',
    inputs: [{ name: 'INPUT0', elemType: ELEM.FLOAT, dims: [BATCH, 3, 64, 64] }],
    outputs: [{ name: 'OUTPUT0', elemType: ELEM.FLOAT, dims: [BATCH, 10] }],
    nodes,
    initializers,
  };
}

/** mlp_pipeline's first step: raw 8-bit pixels to the [0, 1] floats the mlp takes. */
function preprocess(): GraphSpec {
  return {
    name: 'preprocess',
    doc: 'Scales 8-bit pixels to [0, 1]: OUTPUT0 = float(INPUT0) / 255 (UINT8 in, FP32 out).',
    inputs: [{ name: 'INPUT0', elemType: ELEM.UINT8, dims: [BATCH, 784] }],
    outputs: [{ name: 'OUTPUT0', elemType: ELEM.FLOAT, dims: [BATCH, 784] }],
    nodes: [node('Cast', ['INPUT0'], ['f'], [attrInt('to', ELEM.FLOAT)]), node('Div', ['f', 'k255'], ['OUTPUT0'])],
    initializers: [floatInitializer('k255', [], new Float32Array([255]))],
  };
}

/** mlp_pipeline's last step: the class of each row and the probabilities it came from. */
function postprocess(): GraphSpec {
  return {
    name: 'postprocess',
    doc: 'CLASS = argmax of each row (INT64 [batch, 1]), PROBABILITIES = the row itself.',
    inputs: [{ name: 'INPUT0', elemType: ELEM.FLOAT, dims: [BATCH, 10] }],
    outputs: [{ name: 'CLASS', elemType: ELEM.INT64, dims: [BATCH, 1] }, { name: 'PROBABILITIES', elemType: ELEM.FLOAT, dims: [BATCH, 10] }],
    nodes: [node('ArgMax', ['INPUT0'], ['CLASS'], [attrInt('axis', 1), attrInt('keepdims', 1)]), node('Identity', ['INPUT0'], ['PROBABILITIES'])],
  };
}

/** Every sample model by repository name; each builds lazily because mlp's weights take a moment. */
export const SAMPLE_MODELS: Readonly<Record<string, () => GraphSpec>> = {
  simple,
  simple_int8: simpleInt8,
  simple_string: simpleString,
  simple_identity: simpleIdentity,
  identity,
  mlp,
  cnn,
  preprocess,
  postprocess,
  tiny_lm: tinyLm,
  simple_sequence: simpleSequence,
  simple_dyna_sequence: simpleDynaSequence,
  sequence_accumulator: sequenceAccumulator,
};

export function buildSampleModel(name: string): Uint8Array {
  const make = SAMPLE_MODELS[name];
  if (make === undefined) throw new Error(`no sample model '${name}'`);
  return encodeModel(make());
}
