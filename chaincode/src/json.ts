/**
 * A strict JSON parser that keeps the one distinction `JSON.parse` loses and the Python contract
 * relies on: whether a number was an integer or a float. Python's `fedchain.ledger.canonical.loads`
 * turns `1` into an int and `1.0`, `1e2` or an integer beyond ±(2^53-1) into a float, and the
 * record schema refuses floats where it wants integers (`"round": 1.0` is invalid). Here a Python
 * int is a plain `number` and a Python float is a {@link JsonFloat}.
 *
 * Objects have no prototype (a `"__proto__"` key is just a key); duplicate keys keep the last
 * value, as Python's `json.loads` does. NaN and Infinity literals are refused outright: Python
 * accepts them but every record field refuses them, so the outcome is the same.
 */

import { invalid } from './errors';

/** A number that Python parses as a float (it had a fraction or exponent, or was too large). */
export class JsonFloat {
  constructor(readonly value: number) {}
}

export type Json = null | boolean | number | JsonFloat | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

export const MAX_SAFE_INT = Number.MAX_SAFE_INTEGER;
const MAX_DEPTH = 32;
const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/y;
const ESCAPES: Readonly<Record<string, string>> = {
  '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t',
};

/** True for a JSON object (not an array, not null, not a float box). */
export function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof JsonFloat);
}

/** A new prototype-less object, safe for any key. */
export function newObject(): JsonObject {
  return Object.create(null) as JsonObject;
}

/** Decode UTF-8 strictly (invalid bytes and a leading BOM are kept visible, then refused). */
export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw invalid('not valid UTF-8');
  }
}

// Typed access to values this chaincode validated or wrote itself; a wrong type is a bug here,
// not a refusal, so these throw plain errors.

export function obj(value: Json | undefined, name: string): JsonObject {
  const inner = isObject(value) ? value[name] : undefined;
  if (!isObject(inner)) throw new Error(`internal: ${name} is not an object`);
  return inner;
}

export function objects(value: JsonObject, name: string): JsonObject[] {
  const inner = value[name];
  if (!Array.isArray(inner) || !inner.every(isObject)) throw new Error(`internal: ${name} is not a list of objects`);
  return inner;
}

export function strings(value: JsonObject, name: string): string[] {
  const inner = value[name];
  if (!Array.isArray(inner) || !inner.every((x) => typeof x === 'string')) {
    throw new Error(`internal: ${name} is not a list of strings`);
  }
  return inner;
}

export function str(value: Json | undefined, name: string): string {
  const inner = isObject(value) ? value[name] : undefined;
  if (typeof inner !== 'string') throw new Error(`internal: ${name} is not a string`);
  return inner;
}

export function num(value: Json | undefined, name: string): number {
  const inner = isObject(value) ? value[name] : undefined;
  if (typeof inner !== 'number') throw new Error(`internal: ${name} is not an integer`);
  return inner;
}

/** Parse one JSON text; raise `record.invalid` on anything Python's `json.loads` refuses. */
export function parseJson(text: string): Json {
  const parser = new Parser(text);
  parser.skipSpace();
  const value = parser.value(0);
  parser.skipSpace();
  if (parser.pos !== text.length) {
    throw parser.fail('extra data');
  }
  return value;
}

class Parser {
  pos = 0;

  constructor(private readonly text: string) {}

  fail(why: string): Error {
    return invalid(`not valid JSON: ${why} at offset ${this.pos}`);
  }

  skipSpace(): void {
    while (this.pos < this.text.length && ' \t\n\r'.includes(this.text.charAt(this.pos))) {
      this.pos += 1;
    }
  }

  value(depth: number): Json {
    if (depth > MAX_DEPTH) {
      throw this.fail(`nested deeper than ${MAX_DEPTH} levels`);
    }
    const ch = this.text.charAt(this.pos);
    if (ch === '{') return this.object(depth);
    if (ch === '[') return this.array(depth);
    if (ch === '"') return this.string();
    for (const [word, result] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return result;
      }
    }
    return this.number();
  }

  private object(depth: number): JsonObject {
    const result = newObject();
    this.pos += 1;
    this.skipSpace();
    if (this.eat('}')) return result;
    for (;;) {
      if (this.text.charAt(this.pos) !== '"') throw this.fail('expected a string key');
      const key = this.string();
      this.skipSpace();
      if (!this.eat(':')) throw this.fail("expected ':'");
      this.skipSpace();
      result[key] = this.value(depth + 1);
      this.skipSpace();
      if (this.eat('}')) return result;
      if (!this.eat(',')) throw this.fail("expected ',' or '}'");
      this.skipSpace();
    }
  }

  private array(depth: number): Json[] {
    const result: Json[] = [];
    this.pos += 1;
    this.skipSpace();
    if (this.eat(']')) return result;
    for (;;) {
      result.push(this.value(depth + 1));
      this.skipSpace();
      if (this.eat(']')) return result;
      if (!this.eat(',')) throw this.fail("expected ',' or ']'");
      this.skipSpace();
    }
  }

  private string(): string {
    this.pos += 1;
    let out = '';
    for (;;) {
      const code = this.text.charCodeAt(this.pos);
      if (Number.isNaN(code)) throw this.fail('unterminated string');
      if (code < 0x20) throw this.fail('control character in string');
      const ch = this.text.charAt(this.pos);
      this.pos += 1;
      if (ch === '"') return out;
      if (ch !== '\\') {
        out += ch;
        continue;
      }
      const esc = this.text.charAt(this.pos);
      this.pos += 1;
      if (esc === 'u') {
        const hex = this.text.slice(this.pos, this.pos + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw this.fail('invalid \\uXXXX escape');
        out += String.fromCharCode(parseInt(hex, 16));
        this.pos += 4;
      } else {
        const mapped = Object.hasOwn(ESCAPES, esc) ? ESCAPES[esc] : undefined;
        if (mapped === undefined) throw this.fail('invalid escape');
        out += mapped;
      }
    }
  }

  private number(): number | JsonFloat {
    NUMBER.lastIndex = this.pos;
    const match = NUMBER.exec(this.text);
    if (match === null) throw this.fail('expected a value');
    this.pos += match[0].length;
    const value = Number(match[0]);
    const isInt = match[1] === undefined && match[2] === undefined;
    // Python: parse_int gives an int within the safe range, a float beyond it; -0 is int 0.
    return isInt && Math.abs(value) <= MAX_SAFE_INT ? value + 0 : new JsonFloat(value);
  }

  private eat(ch: string): boolean {
    if (this.text.charAt(this.pos) === ch) {
      this.pos += 1;
      return true;
    }
    return false;
  }
}
