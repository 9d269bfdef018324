/**
 * Record kinds, their schemas and limits: a field-by-field mirror of Python's
 * `fedchain.ledger.records` (same fields, patterns, ranges, list sizes and cross-field checks),
 * so both sides accept and refuse the same records. Validation is structural only; who may write
 * what, and when, is `rules.ts`.
 */

import { canonicalJson, sha256Hex } from './canonical';
import { invalid } from './errors';
import { type Json, JsonFloat, type JsonObject, isObject, objects, parseJson, str } from './json';

export const SCHEMA_VERSION = 1;
export const MAX_RECORD_BYTES = 64 * 1024;
const MAX_LIST = 1024;
const MAX_METRICS = 64;
const MAX_TEXT = 1024;

const ORG_RX = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const ID_RX = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const HEX64_RX = /^[0-9a-f]{64}$/;
const KEYHEX_RX = /^(?:[0-9a-f]{2}){1,256}$/;
const NAME_RX = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

type Check = (value: Json | undefined, path: string) => void;

/** A validated record: its data (re-read from its canonical text), canonical text and hash. */
export interface ParsedRecord {
  readonly data: JsonObject;
  readonly canonical: string;
  readonly sha256: string;
  readonly kind: Kind;
}

function fail(path: string, why: string): Error {
  return invalid(`${path}: ${why}`);
}

function show(value: Json | undefined): string {
  if (value === undefined) return 'nothing';
  const text = value instanceof JsonFloat ? String(value.value) : JSON.stringify(value);
  return text.slice(0, 80);
}

function pattern(rx: RegExp, what: string): Check {
  return (value, path) => {
    if (typeof value !== 'string' || !rx.test(value)) throw fail(path, `must be ${what}, got ${show(value)}`);
  };
}

function int(lo: number, hi: number): Check {
  return (value, path) => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < lo || value > hi) {
      throw fail(path, `must be an integer in [${lo}, ${hi}], got ${show(value)}`);
    }
  };
}

/** Python's len() counts code points, not UTF-16 units. */
function codePoints(text: string): number {
  return Array.from(text).length;
}

const text: Check = (value, path) => {
  if (typeof value !== 'string' || codePoints(value) > MAX_TEXT) {
    throw fail(path, `must be a string of at most ${MAX_TEXT} characters`);
  }
};

function optional(check: Check): Check {
  return (value, path) => {
    if (value !== null) check(value, path);
  };
}

function oneOf(...allowed: string[]): Check {
  return (value, path) => {
    if (typeof value !== 'string' || !allowed.includes(value)) {
      throw fail(path, `must be one of ${allowed.join(', ')}, got ${show(value)}`);
    }
  };
}

function list(item: Check, opts: { uniqueBy?: string; minLen?: number } = {}): Check {
  const minLen = opts.minLen ?? 0;
  return (value, path) => {
    if (!Array.isArray(value) || value.length < minLen || value.length > MAX_LIST) {
      throw fail(path, `must be a list of ${minLen}..${MAX_LIST} items`);
    }
    value.forEach((element, i) => { item(element, `${path}[${i}]`); });
    if (opts.uniqueBy !== undefined) {
      const by = opts.uniqueBy;
      const keys = value.map((e) => (isObject(e) ? e[by] : e));
      if (new Set(keys).size !== keys.length) throw fail(path, `duplicate ${by || 'item'}`);
    }
  };
}

function object(fields: Readonly<Record<string, Check>>): Check {
  return (value, path) => {
    if (!isObject(value)) throw fail(path, 'must be an object');
    const missing = Object.keys(fields).filter((k) => !Object.hasOwn(value, k)).sort();
    const extra = Object.keys(value).filter((k) => !Object.hasOwn(fields, k)).sort();
    if (missing.length > 0 || extra.length > 0) {
      throw fail(path, `missing fields [${missing.join(', ')}], unknown fields [${extra.join(', ')}]`);
    }
    for (const [name, check] of Object.entries(fields)) {
      check(value[name], path ? `${path}.${name}` : name);
    }
  };
}

const metricName = pattern(NAME_RX, 'a metric name [A-Za-z0-9._:-]{1,64}');

const metrics: Check = (value, path) => {
  if (!isObject(value) || Object.keys(value).length > MAX_METRICS) {
    throw fail(path, `must be an object of at most ${MAX_METRICS} numbers`);
  }
  for (const [key, number] of Object.entries(value)) {
    metricName(key, `${path} key`);
    const x = number instanceof JsonFloat ? number.value : number;
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw fail(`${path}.${key}`, `must be a finite number, got ${show(number)}`);
    }
  }
};

const keyName = pattern(NAME_RX, 'a key name');
const keyHex = pattern(KEYHEX_RX, 'lowercase hex of at most 256 bytes');

const publicKeys: Check = (value, path) => {
  if (!isObject(value) || Object.keys(value).length < 1 || Object.keys(value).length > 8) {
    throw fail(path, 'must be an object of 1..8 hex-encoded public keys');
  }
  for (const [name, key] of Object.entries(value)) {
    keyName(name, `${path} key`);
    keyHex(key, `${path}.${name}`);
  }
};

const ORG = pattern(ORG_RX, 'an organization id [A-Za-z0-9][A-Za-z0-9._-]{0,63}');
const ID = pattern(ID_RX, 'an id [A-Za-z0-9][A-Za-z0-9._:-]{0,127}');
const HEX64 = pattern(HEX64_RX, 'a lowercase hex SHA-256');
const ROUND = int(0, 2 ** 31 - 1);
const SIZE = int(0, 2 ** 53 - 1);
const COMMON = { v: int(SCHEMA_VERSION, SCHEMA_VERSION), kind: text, org: ORG };

const SCHEMAS = {
  consortium: {
    name: pattern(NAME_RX, 'a consortium name'),
    aggregator: ORG,
    orgs: list(object({ id: ORG, ca_sha256: HEX64 }), { uniqueBy: 'id', minLen: 1 }),
  },
  run: { run: ID, app_sha256: HEX64, strategy_sha256: HEX64, model_sha256: HEX64, config: metrics },
  task: {
    run: ID,
    round: ROUND,
    task: ID,
    type: pattern(NAME_RX, 'a message type'),
    model_sha256: optional(HEX64),
    deadline: SIZE,
    recipients: list(object({ org: ORG, payload_sha256: HEX64, payload_size: SIZE }), {
      uniqueBy: 'org',
      minLen: 1,
    }),
  },
  update: {
    run: ID,
    round: ROUND,
    task: ID,
    status: oneOf('ok', 'error'),
    update_sha256: optional(HEX64),
    update_size: SIZE,
    num_examples: SIZE,
    metrics,
    error: optional(text),
  },
  keys: { run: ID, round: ROUND, task: ID, keys: publicKeys },
  selection: { run: ID, round: ROUND, task: ID, selected: list(ORG, { uniqueBy: '' }) },
  close: {
    run: ID,
    round: ROUND,
    model_sha256: optional(HEX64),
    aggregated: list(object({ org: ORG, update_sha256: HEX64 }), { uniqueBy: 'org' }),
    dropouts: list(object({ org: ORG, stage: pattern(NAME_RX, 'a stage') })),
    rejected: list(object({ org: ORG, reason: text })),
    metrics,
  },
} as const satisfies Record<string, Record<string, Check>>;

export type Kind = keyof typeof SCHEMAS;
export const KINDS = Object.keys(SCHEMAS) as readonly Kind[];

/** True if `value` could be a run or task id (no record has any other). */
export function isId(value: string): boolean {
  return ID_RX.test(value);
}

/** True if `value` could be an organization id. */
export function isOrg(value: string): boolean {
  return ORG_RX.test(value);
}

/** True if `value` names a record kind. */
export function isKind(value: unknown): value is Kind {
  return typeof value === 'string' && Object.hasOwn(SCHEMAS, value);
}

/** Validate one record (already parsed JSON) and return it with its canonical text and hash. */
export function parseRecord(value: Json | undefined): ParsedRecord {
  if (!isObject(value)) throw invalid('a record must be a JSON object');
  const kind = value.kind;
  if (!isKind(kind)) {
    throw invalid(`kind: must be one of ${KINDS.join(', ')}, got ${show(kind)}`);
  }
  object({ ...COMMON, ...SCHEMAS[kind] })(value, '');
  checkConsistency(kind, value);
  const canonical = canonicalJson(value);
  const size = Buffer.byteLength(canonical, 'utf8');
  if (size > MAX_RECORD_BYTES) {
    throw invalid(`record is ${size} bytes; the limit is ${MAX_RECORD_BYTES}`);
  }
  const data = parseJson(canonical);
  if (!isObject(data)) throw new Error('internal: a canonical record is not an object');
  return { data, canonical, sha256: sha256Hex(canonical), kind };
}

/** Cross-field constraints a schema of independent fields cannot express. */
function checkConsistency(kind: Kind, value: JsonObject): void {
  if (kind === 'consortium') {
    const ids = objects(value, 'orgs').map((o) => str(o, 'id'));
    if (!ids.includes(str(value, 'aggregator'))) {
      throw invalid("aggregator: must be one of the consortium's orgs");
    }
  } else if (kind === 'update') {
    const ok = value.status === 'ok';
    if (ok && (value.update_sha256 === null || value.error !== null)) {
      throw invalid('an ok update needs update_sha256 and no error');
    }
    if (!ok && (value.update_sha256 !== null || !value.error)) {
      throw invalid('an error update needs an error message and no update_sha256');
    }
  }
}
