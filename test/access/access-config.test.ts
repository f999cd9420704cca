import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { globToRegExp, parseAccessConfig } from '../../src/access/access-config.ts';
import { digestOf } from '../../src/access/keygen.ts';

const D1 = digestOf('key-one');
const D2 = digestOf('key-two');

describe('auth config', () => {
  test('YAML and JSON give the same table: tenants, weights, limits with default bursts, scopes', () => {
    const yaml = `
tenants:
  - name: team-a
    weight: 2
    limits: { requests_per_second: 50, rows_per_second: 400, rows_burst: 800 }
    keys:
      - { id: a-ci, sha256: ${D1}, scopes: ["infer:mlp*", metadata] }
  - name: ops
    keys:
      - sha256: ${D2.toUpperCase()}
        scopes: [control, metrics, infer]
`;
    const json = JSON.stringify({ tenants: [
      { name: 'team-a', weight: 2, limits: { requests_per_second: 50, rows_per_second: 400, rows_burst: 800 }, keys: [{ id: 'a-ci', sha256: D1, scopes: ['infer:mlp*', 'metadata'] }] },
      { name: 'ops', keys: [{ sha256: D2, scopes: ['control', 'metrics', 'infer'] }] },
    ] });
    for (const text of [yaml, json]) {
      const t = parseAccessConfig(text);
      const a = t.tenants.get('team-a')!;
      assert.equal(a.weight, 2);
      assert.deepEqual(a.requests, { perSecond: 50, burst: 50 });
      assert.deepEqual(a.rows, { perSecond: 400, burst: 800 });
      const ka = a.keys[0]!;
      assert.equal(ka.id, 'a-ci');
      assert.equal(ka.digest.toString('hex'), D1);
      assert.ok(ka.scopes.metadata && !ka.scopes.control && !ka.scopes.metrics);
      assert.ok(ka.scopes.infer.some((g) => g.test('mlp')) && ka.scopes.infer.some((g) => g.test('mlp_v2')));
      assert.ok(!ka.scopes.infer.some((g) => g.test('cnn')));
      const ops = t.tenants.get('ops')!;
      assert.equal(ops.weight, 1);
      assert.equal(ops.requests, undefined);
      assert.equal(ops.keys[0]!.id, 'ops#0');
      assert.equal(ops.keys[0]!.digest.toString('hex'), D2, 'upper-case hex is accepted');
      assert.ok(ops.keys[0]!.scopes.infer.some((g) => g.test('anything')));
    }
  });

  test('every mistake is refused with where it is and why', () => {
    const key = (extra: object = {}): object => ({ sha256: D1, scopes: ['infer'], ...extra });
    const cases: [unknown, RegExp][] = [
      ['tenants: [', /neither JSON nor YAML/],
      [{}, /tenants: must be a list/],
      [{ tenants: [{ name: 'a', keys: [key()] }], extra: 1 }, /unknown field 'extra'/],
      [{ tenants: [{ name: 'a b', keys: [key()] }] }, /tenants\[0\]\.name: must be 1-64 letters/],
      [{ tenants: [{ name: 'a', keys: [key()] }, { name: 'a', keys: [key({ sha256: D2 })] }] }, /tenant 'a' appears twice/],
      [{ tenants: [{ name: 'a', keys: [] }] }, /keys: must be a non-empty list/],
      [{ tenants: [{ name: 'a', keys: [key({ sha256: 'abc' })] }] }, /keys\[0\]\.sha256: must be the key's SHA-256/],
      [{ tenants: [{ name: 'a', keys: [key(), key()] }] }, /same key digest appears twice/],
      [{ tenants: [{ name: 'a', keys: [key({ scopes: ['admin'] })] }] }, /unknown scope 'admin'/],
      [{ tenants: [{ name: 'a', keys: [key({ scopes: ['metadata:mlp'] })] }] }, /only infer takes a model glob/],
      [{ tenants: [{ name: 'a', keys: [key({ scopes: ['infer:../x'] })] }] }, /not a model glob/],
      [{ tenants: [{ name: 'a', keys: [key({ scopes: [] })] }] }, /non-empty list of scopes/],
      [{ tenants: [{ name: 'a', weight: 0, keys: [key()] }] }, /weight: must be a number in \(0, 1000\]/],
      [{ tenants: [{ name: 'a', limits: { rows_burst: 5 }, keys: [key()] }] }, /rows_burst: needs rows_per_second/],
      [{ tenants: [{ name: 'a', limits: { requests_per_second: -1 }, keys: [key()] }] }, /requests_per_second: must be a number/],
      [{ tenants: [{ name: 'a', limits: { max_in_flight: 0 }, keys: [key()] }] }, /max_in_flight: must be an integer from 1/],
      [{ tenants: [{ name: 'a', limits: { max_in_flight: 2.5 }, keys: [key()] }] }, /max_in_flight: must be an integer from 1/],
      [{ tenants: [{ name: 'a', keys: [key({ key: 'plaintext' })] }] }, /unknown field 'key'/],
    ];
    for (const [doc, why] of cases) {
      const text = typeof doc === 'string' ? doc : JSON.stringify(doc);
      assert.throws(() => parseAccessConfig(text), (e: Error) => {
        assert.equal(e.name, 'AccessConfigError');
        assert.match(e.message, /^auth config /);
        assert.match(e.message, why);
        return true;
      }, text);
    }
  });

  test('globs: * any run, ? one character, everything else literal', () => {
    assert.ok(globToRegExp('mlp*').test('mlp'));
    assert.ok(globToRegExp('s?mple').test('simple'));
    assert.ok(!globToRegExp('s?mple').test('smple'));
    assert.ok(!globToRegExp('a.b').test('axb'), 'a dot is a dot');
    assert.ok(!globToRegExp('mlp').test('mlp2'), 'anchored');
  });
});
