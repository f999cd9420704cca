// The sequence samples: Triton's simple_sequence and simple_dyna_sequence (their ONNX graphs compute
// the same as Triton's: no state of their own), and an accumulator that keeps its sum as implicit state.
import { ELEM, attrInt, node } from './onnx-builder.ts';
import type { GraphSpec, ValueSpec } from './onnx-builder.ts';

const one = (name: string, elemType: number = ELEM.INT32): ValueSpec => ({ name, elemType, dims: ['batch', 1] });

/** OUTPUT = (INPUT + START) * READY: the first request of a sequence answers its value plus one. */
export function simpleSequence(): GraphSpec {
  return {
    name: 'simple_sequence',
    doc: "Triton's simple_sequence: OUTPUT = (INPUT + START) * READY (INT32 [batch, 1]); START and READY are the sequence batcher's controls.",
    inputs: [one('INPUT'), one('START'), one('READY')],
    outputs: [one('OUTPUT')],
    nodes: [node('Add', ['INPUT', 'START'], ['s']), node('Mul', ['s', 'READY'], ['OUTPUT'])],
  };
}

/** OUTPUT = (INPUT + START + END * CORRID) * READY: the last request adds the correlation ID. */
export function simpleDynaSequence(): GraphSpec {
  return {
    name: 'simple_dyna_sequence',
    doc: "Triton's simple_dyna_sequence: OUTPUT = (INPUT + START + END * int32(CORRID)) * READY (CORRID UINT64).",
    inputs: [one('INPUT'), one('START'), one('END'), one('READY'), one('CORRID', ELEM.UINT64)],
    outputs: [one('OUTPUT')],
    nodes: [
      node('Cast', ['CORRID'], ['corrid'], [attrInt('to', ELEM.INT32)]),
      node('Mul', ['END', 'corrid'], ['ec']),
      node('Add', ['INPUT', 'START'], ['a']),
      node('Add', ['a', 'ec'], ['b']),
      node('Mul', ['b', 'READY'], ['OUTPUT']),
    ],
  };
}

/** OUTPUT = INPUT on START, else ACC_IN + INPUT; ACC_OUT = OUTPUT becomes the next request's ACC_IN. */
export function sequenceAccumulator(): GraphSpec {
  return {
    name: 'sequence_accumulator',
    doc: 'A running sum per sequence kept as implicit state: OUTPUT = START ? INPUT : ACC_IN + INPUT, ACC_OUT = OUTPUT (INT32 [batch, 1]).',
    inputs: [one('INPUT'), one('START'), one('ACC_IN')],
    outputs: [one('OUTPUT'), one('ACC_OUT')],
    nodes: [
      node('Cast', ['START'], ['start'], [attrInt('to', ELEM.BOOL)]),
      node('Add', ['ACC_IN', 'INPUT'], ['sum']),
      node('Where', ['start', 'INPUT', 'sum'], ['OUTPUT']),
      node('Identity', ['OUTPUT'], ['ACC_OUT']),
    ],
  };
}
