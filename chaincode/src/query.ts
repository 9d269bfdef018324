/**
 * `metadataGet`: entries matching a query `{run?, round?, kind?, org?, task?}`, found with
 * partial composite keys (LevelDB range scans) and filtered exactly as Python's `Query.matches`
 * does: every field that is set must equal the record's (a record without the field never
 * matches it). Entries are returned in (ts, txId, idx) order: transaction time, then transaction,
 * then position in the transaction. The commit order itself is the block order the chaincode
 * events carry; chaincode cannot see block numbers.
 */

import { LedgerError } from './errors';
import { type Json, type JsonObject, isObject, parseJson } from './json';
import { KINDS, type Kind, isId, isOrg } from './records';
import type { TxState } from './state';

export interface Query {
  readonly run: string | undefined;
  readonly round: number | undefined;
  readonly kind: string | undefined;
  readonly org: string | undefined;
  readonly task: string | undefined;
}

const FIELDS = ['run', 'round', 'kind', 'org', 'task'] as const;
const TASK_KINDS: ReadonlySet<Kind> = new Set<Kind>(['task', 'update', 'keys', 'selection']);

/** Parse the query argument ("" or "{}" means everything); refuse it with `query.invalid`. */
export function parseQuery(text: string): Query {
  let value: Json = null;
  try {
    value = text.trim() === '' ? {} : parseJson(text);
  } catch (error) {
    throw new LedgerError('query.invalid', error instanceof LedgerError ? error.detail : String(error));
  }
  if (!isObject(value)) throw new LedgerError('query.invalid', 'the query must be a JSON object');
  const unknown = Object.keys(value).filter((k) => !(FIELDS as readonly string[]).includes(k)).sort();
  if (unknown.length > 0) {
    throw new LedgerError('query.invalid', `unknown fields [${unknown.join(', ')}]; allowed: ${FIELDS.join(', ')}`);
  }
  const optionalText = (name: string): string | undefined => {
    const v = value[name] ?? null;
    if (v === null) return undefined;
    if (typeof v !== 'string') throw new LedgerError('query.invalid', `${name} must be a string or null`);
    return v;
  };
  const round = value.round ?? null;
  if (round !== null && typeof round !== 'number') {
    throw new LedgerError('query.invalid', 'round must be an integer or null');
  }
  return { run: optionalText('run'), round: round ?? undefined, kind: optionalText('kind'), org: optionalText('org'), task: optionalText('task') };
}

/** The entries matching `query`, each as `{org, record, sha256, ts, txId}`, in (ts, txId, idx) order. */
export async function findEntries(state: TxState, query: Query): Promise<JsonObject[]> {
  if (!plausible(query)) return [];
  const kinds = query.kind === undefined ? KINDS : KINDS.filter((k) => k === query.kind);
  const found: Found[] = [];
  for (const kind of kinds) {
    for (const prefix of await prefixes(state, kind, query)) {
      for (const entry of await state.list(kind, prefix)) {
        if (isObject(entry) && matches(entry, query)) found.push(toFound(entry));
      }
    }
  }
  found.sort(byLedgerPosition);
  return found.map((f) => f.out);
}

/** The partial keys to scan for one kind: as narrow as the query allows. */
async function prefixes(state: TxState, kind: Kind, query: Query): Promise<string[][]> {
  const { run, round, task, org } = query;
  if (run === undefined || kind === 'consortium') return [[]];
  if (kind === 'run') return [[run]];
  if (kind === 'close') return round === undefined ? [[run]] : [[run, String(round)]];
  let tasks: string[] | undefined;
  if (task !== undefined) {
    tasks = [task];
  } else if (round !== undefined && TASK_KINDS.has(kind)) {
    const rows = await state.list('round~task', [run, String(round)]);
    tasks = rows.filter(isObject).map((row) => row.task).filter((t): t is string => typeof t === 'string');
  }
  if (tasks === undefined) return [[run]];
  const withOrg = (kind === 'update' || kind === 'keys') && org !== undefined;
  return tasks.map((t) => (withOrg ? [run, t, org] : [run, t]));
}

/** False if a filter value is one no record can have (it also could not be a key attribute). */
function plausible(query: Query): boolean {
  const ids = [query.run, query.task].filter((v) => v !== undefined);
  return ids.every(isId) && (query.org === undefined || isOrg(query.org));
}

function matches(entry: JsonObject, query: Query): boolean {
  const record = entry.record;
  if (!isObject(record)) return false;
  return (
    (query.kind === undefined || record.kind === query.kind) &&
    (query.org === undefined || record.org === query.org) &&
    (query.run === undefined || record.run === query.run) &&
    (query.round === undefined || record.round === query.round) &&
    (query.task === undefined || record.task === query.task)
  );
}

/** A stored entry with its sort key: `out` is what metadataGet returns for it. */
interface Found {
  readonly ts: number;
  readonly txId: string;
  readonly idx: number;
  readonly out: JsonObject;
}

function toFound(entry: JsonObject): Found {
  const { org = null, record = null, sha256 = null, ts = null, txId = null, idx = null } = entry;
  if (typeof ts !== 'number' || typeof txId !== 'string' || typeof idx !== 'number') {
    throw new Error('internal: a stored entry lacks ts, txId or idx');
  }
  return { ts, txId, idx, out: { org, record, sha256, ts, txId } };
}

function byLedgerPosition(a: Found, b: Found): number {
  if (a.ts !== b.ts) return a.ts - b.ts;
  if (a.txId !== b.txId) return a.txId < b.txId ? -1 : 1;
  return a.idx - b.idx;
}
