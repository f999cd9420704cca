import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseYaml } from './yaml.ts';

// The deploy/ tests read their YAML through this parser, so it must read that subset right and refuse
// the rest rather than guess.
void test('parseYaml reads mappings, sequences of mappings, scalars, flow lists, literals and comments', () => {
  const doc = parseYaml([
    '# comment',
    'name: sluice   # trailing comment',
    'port: 8002',
    'ratio: 0.5',
    'on: true',
    'empty:',
    'quoted: "a # not a comment"',
    "single: 'it''s'",
    'list: [a, "b c", 3]',
    'services:',
    '  - name: one',
    '    ports:',
    '      - "8000:8000"',
    '  - two',
    'rules:',
    '- expr: |',
    '    sum by (model) (',
    '      rate(x[1m]))',
    '  for: 5m',
  ].join('\n'));
  assert.deepEqual(doc, {
    name: 'sluice', port: 8002, ratio: 0.5, on: true, empty: null, quoted: 'a # not a comment', single: "it's",
    list: ['a', 'b c', 3],
    services: [{ name: 'one', ports: ['8000:8000'] }, 'two'],
    rules: [{ expr: 'sum by (model) (\n  rate(x[1m]))\n', for: '5m' }],
  });
});

void test('parseYaml refuses what it does not support, naming the line', () => {
  assert.throws(() => parseYaml('a: 1\na: 2'), /line 2: duplicate key 'a'/);
  assert.throws(() => parseYaml('a: &anchor 1'), /line 1: anchors/);
  assert.throws(() => parseYaml('a: {b: 1}'), /line 1: anchors, aliases, tags and flow mappings/);
  assert.throws(() => parseYaml('a:\n    b: 1\n  c: 2'), /line 3: unexpected indentation/);
  assert.throws(() => parseYaml('a: "open'), /line 1: unterminated quoted scalar/);
  assert.throws(() => parseYaml('\tb: 1'), /line 1: tab indentation/);
});
