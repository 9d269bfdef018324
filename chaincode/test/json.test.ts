/**
 * The JSON parser and canonical encoder on the edges the record vectors do not reach: number
 * typing as Python sees it, prototype-free objects, escapes and surrogates, and refusals.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { canonicalJson } from '../src/canonical';
import { LedgerError } from '../src/errors';
import { JsonFloat, isObject, parseJson } from '../src/json';

const refused = { name: 'LedgerError', rule: 'record.invalid' } as const;

describe('parseJson', () => {
  it('types numbers as Python does: ints within ±(2^53-1), floats otherwise', () => {
    assert.equal(parseJson('42'), 42);
    assert.ok(Object.is(parseJson('-0'), 0));
    for (const text of ['1.0', '1e2', '-0.0', '9007199254740992', '-9007199254740992', '1E+400']) {
      const value = parseJson(text);
      assert.ok(value instanceof JsonFloat, text);
      assert.ok(Object.is(value.value, Number(text)), text);
    }
    assert.equal(parseJson('9007199254740991'), Number.MAX_SAFE_INTEGER);
  });

  it('builds prototype-free objects where the last duplicate key wins', () => {
    const value = parseJson('{"__proto__": {"x": 1}, "a": 1, "a": 2}');
    assert.ok(isObject(value));
    assert.equal(Object.getPrototypeOf(value), null);
    assert.deepEqual(Object.keys(value), ['__proto__', 'a']);
    assert.equal(value.a, 2);
  });

  it('decodes escapes, joining surrogate pairs and keeping lone surrogates for the encoder to refuse', () => {
    assert.equal(parseJson('"\\ud83d\\ude00 \\u00e9\\n\\/\\"\\\\"'), '😀 é\n/"\\');
    const lone = parseJson('"\\ud800x"');
    assert.equal(lone, '\ud800x');
    assert.throws(() => canonicalJson(lone), refused);
  });

  it('refuses what Python json.loads refuses, and NaN / Infinity outright', () => {
    const bad = ['', '{', '[1,]', '{"a":1,}', '01', '1.', '.5', '+1', '"a\u0001"', '"\\x"', '"\\u12"',
      'NaN', 'Infinity', '-Infinity', '[1] 2', "'a'", '{a:1}', '\ufeff{}', 'tru', '[' .repeat(40) + ']'.repeat(40)];
    for (const text of bad) {
      assert.throws(() => parseJson(text), refused, JSON.stringify(text));
    }
    assert.equal(JSON.stringify(parseJson(' \t\r\n[ 1 , {"b" : null} ] \n')), '[1,{"b":null}]');
  });
});

describe('canonicalJson', () => {
  it('sorts keys at every level and drops whitespace', () => {
    assert.equal(canonicalJson(parseJson('{"b": [ {"z": 1, "a": true} ], "a": "x", "B": null}')), '{"B":null,"a":"x","b":[{"a":true,"z":1}]}');
  });

  it('prints numbers as ECMAScript does', () => {
    const cases: [number, string][] = [[0.1, '0.1'], [-0, '0'], [1e21, '1e+21'], [1e-7, '1e-7'], [123e-20, '1.23e-18'], [2 ** 60, '1152921504606847000'], [5e-324, '5e-324'], [0.000001, '0.000001']];
    for (const [x, want] of cases) assert.equal(canonicalJson(new JsonFloat(x)), want);
  });

  it('escapes only quotes, backslashes and control characters', () => {
    assert.equal(canonicalJson('"\\\u0000\u001f\u007f\u2028é😀\t'), '"\\"\\\\\\u0000\\u001f\u007f\u2028é😀\\t"');
  });

  it('refuses unsafe integers, non-finite numbers, non-ASCII keys and deep nesting', () => {
    const deep = JSON.parse('['.repeat(18) + ']'.repeat(18)) as never;
    for (const value of [2 ** 53, new JsonFloat(NaN), new JsonFloat(Infinity), { é: 1 }, deep]) {
      assert.throws(() => canonicalJson(value), (e: unknown) => e instanceof LedgerError && e.rule === 'record.invalid');
    }
  });
});
