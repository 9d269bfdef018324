/**
 * World state as one transaction sees it, and the composite-key layout.
 *
 * Fabric does not let a transaction read its own writes (`getState` returns the committed value),
 * but a batch of records must see the records before it, as Python's `LedgerState.admit_all`
 * does. {@link TxState} therefore buffers writes, answers reads and partial-key listings from the
 * buffer first, and hands the buffer to `putState` only once every record has been admitted, in
 * sorted key order. A refused batch never calls `putState`.
 *
 * Key layout (`createCompositeKey(type, attributes)`; LevelDB range scans, no rich queries):
 *
 *   consortium  []                   the consortium record        written once by the aggregator
 *   run         [run]                a run record                 written once by the aggregator
 *   task        [run, task]          a task record                written once by the aggregator
 *   update      [run, task, org]     an organization's update     written once by that org
 *   keys        [run, task, org]     an organization's keys       written once by that org
 *   selection   [run, task]          the aggregator's selection   written once by the aggregator
 *   close       [run, round]         a round's close record       written once by the aggregator
 *   progress    [run]                {last_closed, max_task_round, tasks}   aggregator only
 *   round~task  [run, round, task]   {seq, task}: tasks of a round in the order they were opened
 *   head        []                   {ts, txId} of the newest publishing transaction
 *
 * Record keys hold an entry `{idx, org, record, sha256, ts, txId}` in canonical JSON. An
 * organization's transaction writes only its own keys and reads only write-once keys, so
 * transactions of different organizations in one round never conflict (no MVCC_READ_CONFLICT).
 *
 * `head` is the one key every publishing transaction writes, and it is written blind: no
 * transaction that writes it ever reads it (only the read-only `metadataHead` does). A peer's
 * MVCC check compares read sets only, so concurrent publishes in one block still all commit and
 * the last valid one in block order leaves its id there. A counter of records would need a
 * read-modify-write of one shared key, which is exactly the conflict point the layout avoids.
 */

import type { ChaincodeStub } from 'fabric-shim-api';

import { canonicalJson } from './canonical';
import { type Json, decodeUtf8, parseJson } from './json';

export type KeyType =
  | 'consortium'
  | 'run'
  | 'task'
  | 'update'
  | 'keys'
  | 'selection'
  | 'close'
  | 'progress'
  | 'round~task'
  | 'head';

/** A transaction's view of the world state: committed values overlaid with its own writes. */
export class TxState {
  private readonly pending = new Map<string, string>();

  constructor(private readonly stub: ChaincodeStub) {}

  key(type: KeyType, attributes: readonly string[]): string {
    return this.stub.createCompositeKey(type, [...attributes]);
  }

  /** The value at `key` (this transaction's write if any), or undefined if there is none. */
  async get(type: KeyType, attributes: readonly string[]): Promise<Json | undefined> {
    const key = this.key(type, attributes);
    const mine = this.pending.get(key);
    if (mine !== undefined) return parseJson(mine);
    const bytes = await this.stub.getState(key);
    return bytes.length === 0 ? undefined : parseJson(decodeUtf8(bytes));
  }

  /** True if a value exists at the key. */
  async has(type: KeyType, attributes: readonly string[]): Promise<boolean> {
    return (await this.get(type, attributes)) !== undefined;
  }

  /** Buffer a write; it reaches the ledger on {@link flush}. */
  put(type: KeyType, attributes: readonly string[], value: Json): void {
    this.pending.set(this.key(type, attributes), canonicalJson(value));
  }

  /** Every value under a partial composite key, committed and buffered, in key order. */
  async list(type: KeyType, attributes: readonly string[]): Promise<Json[]> {
    const prefix = this.key(type, attributes);
    const found = new Map<string, string>();
    const iterator = await this.stub.getStateByPartialCompositeKey(type, [...attributes]);
    try {
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
        found.set(next.value.key, decodeUtf8(next.value.value));
      }
    } finally {
      await iterator.close();
    }
    for (const [key, value] of this.pending) {
      if (key.startsWith(prefix)) found.set(key, value);
    }
    return sortedKeys(found).map((key) => parseJson(found.get(key) ?? 'null'));
  }

  /** Write the buffered values, in sorted key order (a deterministic write sequence). */
  async flush(): Promise<void> {
    for (const key of sortedKeys(this.pending)) {
      await this.stub.putState(key, Buffer.from(this.pending.get(key) ?? '', 'utf8'));
    }
    this.pending.clear();
  }
}

function sortedKeys(map: ReadonlyMap<string, unknown>): string[] {
  return [...map.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
