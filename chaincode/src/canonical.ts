/**
 * Canonical JSON, byte-identical to Python's `fedchain.ledger.canonical.canonical_json`
 * (RFC 8785 restricted to what records need): object keys ASCII and sorted, no whitespace,
 * strings with minimal escaping (what `JSON.stringify` does for well-formed strings), integers
 * within ±(2^53-1), floats as ECMAScript `Number.prototype.toString`; NaN, infinities and lone
 * surrogates refused.
 */

import { createHash } from 'node:crypto';

import { invalid } from './errors';
import { type Json, JsonFloat, MAX_SAFE_INT } from './json';

const MAX_DEPTH = 16;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
// eslint-disable-next-line no-control-regex -- the point is to find non-ASCII characters
const NON_ASCII = /[^\u0000-\u007f]/;

/** The canonical text of `value` (encode it as UTF-8 for the bytes that are hashed). */
export function canonicalJson(value: Json): string {
  const out: string[] = [];
  encode(value, out, 0);
  return out.join('');
}

/** Lowercase hex SHA-256 of the UTF-8 bytes of `text`. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** ECMAScript number formatting, refusing what has no JSON form. */
export function esNumber(x: number): string {
  if (!Number.isFinite(x)) {
    throw invalid(`${String(x)} is not a finite number`);
  }
  return JSON.stringify(x); // Number::toString for finite numbers; -0 prints as 0
}

function encode(value: Json, out: string[], depth: number): void {
  if (depth > MAX_DEPTH) {
    throw invalid(`value nested deeper than ${MAX_DEPTH} levels`);
  }
  if (value === null || typeof value === 'boolean') {
    out.push(String(value));
  } else if (typeof value === 'number') {
    if (Number.isInteger(value) && Math.abs(value) > MAX_SAFE_INT) {
      throw invalid(`integer ${String(value)} is outside ±(2^53-1)`);
    }
    out.push(esNumber(value));
  } else if (value instanceof JsonFloat) {
    out.push(esNumber(value.value));
  } else if (typeof value === 'string') {
    out.push(encodeString(value));
  } else if (Array.isArray(value)) {
    out.push('[');
    value.forEach((item, i) => {
      if (i > 0) out.push(',');
      encode(item, out, depth + 1);
    });
    out.push(']');
  } else {
    const keys = Object.keys(value);
    for (const key of keys) {
      if (NON_ASCII.test(key)) throw invalid(`object key ${JSON.stringify(key)} must be ASCII`);
    }
    keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    out.push('{');
    keys.forEach((key, i) => {
      if (i > 0) out.push(',');
      out.push(encodeString(key), ':');
      encode(value[key] ?? null, out, depth + 1);
    });
    out.push('}');
  }
}

function encodeString(text: string): string {
  if (LONE_SURROGATE.test(text)) {
    throw invalid('string contains a lone surrogate; not valid UTF-8');
  }
  return JSON.stringify(text);
}
