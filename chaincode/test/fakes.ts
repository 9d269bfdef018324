/**
 * An in-memory peer for unit tests: a versioned world state, and per-transaction stubs that
 * behave as Fabric's do where the chaincode could tell the difference:
 *
 * - reads see committed state only (no read-your-writes), writes are buffered;
 * - a missing key reads as an empty buffer; partial composite keys scan in byte order;
 * - `commitBlock` validates each transaction's read set (keys and range scans) against the
 *   versions written by earlier transactions of the block, as the peer's MVCC check does, and
 *   marks conflicting ones MVCC_READ_CONFLICT / PHANTOM_READ_CONFLICT instead of applying them.
 */

import { createHash } from 'node:crypto';

import { Context } from 'fabric-contract-api';
import type { ChaincodeStub, ClientIdentity, Iterators, Timestamp } from 'fabric-shim-api';
import Long from 'long';

import { FedchainContract } from '../src/contract';

const NS = '\u0000';
const MAX_RUNE = '\u{10FFFF}';

interface Versioned {
  readonly value: Buffer;
  readonly version: number;
}

/** What one simulated transaction did: its reads, scans, writes and event. */
export class FakeTx {
  readonly reads = new Map<string, number | null>();
  readonly scans: { start: string; end: string; keys: string[] }[] = [];
  readonly writes: [string, string][] = [];
  readonly events: { name: string; payload: string }[] = [];
  /** Range-scan iterators opened and not yet closed (the chaincode must close them all). */
  openIterators = 0;

  constructor(
    private readonly world: FakeWorld,
    readonly txId: string,
    readonly millis: number,
    readonly args: Uint8Array[],
  ) {}

  /** The subset of ChaincodeStub the contract uses, bound to this transaction. */
  stub(): ChaincodeStub {
    const fake = {
      getTxID: () => this.txId,
      getTxTimestamp: (): Timestamp => ({
        seconds: Long.fromNumber(Math.floor(this.millis / 1000)),
        nanos: (this.millis % 1000) * 1e6 + 123,
      }),
      getBufferArgs: () => this.args,
      createCompositeKey: createCompositeKey,
      getState: (key: string) => Promise.resolve(this.getState(key)),
      putState: (key: string, value: Uint8Array) => {
        this.writes.push([key, Buffer.from(value).toString('utf8')]);
        return Promise.resolve();
      },
      getStateByPartialCompositeKey: (type: string, attributes: string[]) =>
        Promise.resolve(this.scan(createCompositeKey(type, attributes))),
      setEvent: (name: string, payload: Uint8Array) => {
        this.events.push({ name, payload: Buffer.from(payload).toString('utf8') });
      },
    };
    return fake as unknown as ChaincodeStub;
  }

  private getState(key: string): Buffer {
    const current = this.world.state.get(key);
    this.reads.set(key, current?.version ?? null);
    return current?.value ?? Buffer.alloc(0);
  }

  private scan(start: string): Iterators.StateQueryIterator {
    const end = start + MAX_RUNE;
    const keys = this.world.keysBetween(start, end);
    this.scans.push({ start, end, keys });
    const results: Iterators.KV[] = keys.map((key) => ({ namespace: 'fedchain', key, value: this.world.state.get(key)?.value ?? Buffer.alloc(0) }));
    this.openIterators += 1;
    return {
      next: () => {
        const value = results.shift();
        const done = { done: true } as Iterators.NextResult<Iterators.KV>;
        return Promise.resolve(value === undefined ? done : { value, done: false });
      },
      close: () => {
        this.openIterators -= 1;
        return Promise.resolve();
      },
    };
  }
}

/** Mirror of the shim's createCompositeKey (including its refusal of empty parts). */
export function createCompositeKey(type: string, attributes: string[]): string {
  for (const part of [type, ...attributes]) {
    if (part.length === 0) throw new Error('object type or attribute not a non-zero length string');
  }
  return NS + type + NS + attributes.map((a) => a + NS).join('');
}

export type Validation = 'VALID' | 'MVCC_READ_CONFLICT' | 'PHANTOM_READ_CONFLICT';

/** The committed world state with per-key versions. */
export class FakeWorld {
  readonly state = new Map<string, Versioned>();
  private version = 0;

  keysBetween(start: string, end: string): string[] {
    const [lo, hi] = [Buffer.from(start), Buffer.from(end)];
    return [...this.state.keys()]
      .filter((k) => Buffer.compare(Buffer.from(k), lo) >= 0 && Buffer.compare(Buffer.from(k), hi) < 0)
      .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  }

  /** Validate and apply simulated transactions in order, as a peer commits one block. */
  commitBlock(txs: readonly FakeTx[]): Validation[] {
    return txs.map((tx) => {
      for (const [key, version] of tx.reads) {
        if ((this.state.get(key)?.version ?? null) !== version) return 'MVCC_READ_CONFLICT';
      }
      for (const scan of tx.scans) {
        if (this.keysBetween(scan.start, scan.end).join('\n') !== scan.keys.join('\n')) return 'PHANTOM_READ_CONFLICT';
      }
      this.version += 1;
      for (const [key, value] of tx.writes) {
        this.state.set(key, { value: Buffer.from(value, 'utf8'), version: this.version });
      }
      return 'VALID';
    });
  }

  /** A comparable copy of the committed state. */
  snapshot(): [string, string][] {
    return [...this.state].map(([k, v]) => [k, v.value.toString('utf8')]);
  }
}

/** The outcome of one call: the rule id that refused it ("ok" if none), its result, its tx. */
export interface Outcome {
  readonly outcome: string;
  readonly result: string | undefined;
  readonly tx: FakeTx;
}

/** A ledger of one channel: a world state, the contract, a clock and a tx counter. */
export class FakeLedger {
  readonly world = new FakeWorld();
  readonly contract = new FedchainContract();
  private counter = 0;

  constructor(private readonly startMillis = 1_790_000_000_000) {}

  /** Simulate (endorse) one transaction by `signer` without committing it. */
  async simulate(signer: string, fn: 'metadataPublish' | 'metadataGet' | 'metadataHead' | 'consortium', arg?: string | Uint8Array): Promise<Outcome> {
    this.counter += 1;
    const txId = createHash('sha256').update(`tx-${this.counter}`).digest('hex');
    const bytes = typeof arg === 'string' ? Buffer.from(arg, 'utf8') : arg;
    const args = [Buffer.from(fn), ...(bytes === undefined ? [] : [bytes])];
    const tx = new FakeTx(this.world, txId, this.startMillis + this.counter * 1500, args);
    const ctx = new Context();
    ctx.stub = tx.stub();
    ctx.clientIdentity = { getMSPID: () => signer } as unknown as ClientIdentity;
    const text = bytes === undefined ? '' : Buffer.from(bytes).toString('utf8');
    try {
      const result = fn === 'consortium' || fn === 'metadataHead' ? await this.contract[fn](ctx) : await this.contract[fn](ctx, text);
      return { outcome: 'ok', result, tx };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return { outcome: message.split(': ', 1)[0] ?? message, result: message, tx };
    }
  }

  /** Submit one transaction: simulate it and, if the chaincode accepted it, commit it alone. */
  async submit(signer: string, arg: string | Uint8Array): Promise<Outcome> {
    const done = await this.simulate(signer, 'metadataPublish', arg);
    if (done.outcome === 'ok') {
      const [validation] = this.world.commitBlock([done.tx]);
      if (validation !== 'VALID') throw new Error(`a lone transaction failed validation: ${String(validation)}`);
    }
    return done;
  }

  /** Evaluate metadataHead and parse its answer, with the transaction (to see what it read). */
  async head(): Promise<{ head: unknown; tx: FakeTx }> {
    const done = await this.simulate('org2', 'metadataHead');
    if (done.outcome !== 'ok' || done.result === undefined) throw new Error(`metadataHead failed: ${String(done.result)}`);
    return { head: JSON.parse(done.result), tx: done.tx };
  }

  /** Evaluate metadataGet and parse its answer. */
  async get(query: object | string): Promise<unknown[]> {
    const done = await this.simulate('org1', 'metadataGet', typeof query === 'string' ? query : JSON.stringify(query));
    if (done.outcome !== 'ok' || done.result === undefined) throw new Error(`metadataGet failed: ${String(done.result)}`);
    return JSON.parse(done.result) as unknown[];
  }
}
