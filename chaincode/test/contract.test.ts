/**
 * The contract's transactions beyond the shared vectors: results and events, metadataGet
 * filters, metadataHead, refusal leaving no trace, concurrency (no hot keys across
 * organizations), determinism, strict argument decoding, and the transaction metadata the peer sees.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import 'reflect-metadata';

import { sha256Hex } from '../src/canonical';
import { EVENT_NAME, FedchainContract } from '../src/contract';
import { parseJson } from '../src/json';
import { parseRecord } from '../src/records';
import { A, AGG, B, type Rec, batch, close, consortium, keys, run, selection, task, update } from './builders';
import { FakeLedger, type FakeTx, createCompositeKey } from './fakes';

/** The key every publish writes blind and metadataHead reads. */
const HEAD = createCompositeKey('head', []);

interface Logged {
  org: string;
  record: Record<string, unknown>;
  sha256: string;
  ts: number;
  txId: string;
}

/** A ledger plus the test's own log of what was accepted, in submission order. */
async function populated(steps: readonly [string, Rec[]][]): Promise<{ ledger: FakeLedger; log: Logged[] }> {
  const ledger = new FakeLedger();
  const log: Logged[] = [];
  for (const [signer, records] of steps) {
    const done = await ledger.submit(signer, batch(...records));
    assert.equal(done.outcome, 'ok', String(done.result));
    for (const record of records) {
      const parsed = parseRecord(parseJson(JSON.stringify(record)));
      log.push({ org: signer, record: JSON.parse(parsed.canonical) as Record<string, unknown>, sha256: parsed.sha256, ts: done.tx.millis, txId: done.tx.txId });
    }
  }
  return { ledger, log };
}

const TWO_RUNS: [string, Rec[]][] = [
  [AGG, [consortium(), run('r1'), task('t1', 1)]],
  [A, [keys(A, 't1', 1)]],
  [A, [update(A, 't1', 1)]],
  [B, [update(B, 't1', 1)]],
  [AGG, [run('r2'), task('t1', 1, [A], 'r2'), task('t1-eval', 1, [B], 'r2')]],
  [AGG, [selection('t1', 1, [A, B]), close(1, [[A, 't1'], [B, 't1']])]],
  [AGG, [task('t2', 2, [A, B])]],
  [B, [update(B, 't1-eval', 1, 'r2')]],
  [A, [update(A, 't2', 2)]],
  [A, [update(A, 't1', 1, 'r2')]],
];

describe('metadataPublish', () => {
  it('returns each record hash, the tx time and id, and emits one event of canonical records', async () => {
    const ledger = new FakeLedger();
    const records = [consortium(), run(), task('t1', 1)];
    const done = await ledger.submit(AGG, batch(...records));
    assert.equal(done.outcome, 'ok', String(done.result));
    const canonical = records.map((r) => parseRecord(parseJson(JSON.stringify(r))).canonical);
    assert.equal(done.result, JSON.stringify({ sha256: canonical.map(sha256Hex), ts: done.tx.millis, txId: done.tx.txId }));
    assert.deepEqual(done.tx.events, [{ name: EVENT_NAME, payload: `[${canonical.join(',')}]` }]);
  });

  it('refuses a whole batch when its last record is malformed, writing nothing', async () => {
    const ledger = new FakeLedger();
    const bad = { ...task('t1', 1), deadline: -1 };
    const done = await ledger.submit(AGG, batch(consortium(), run(), bad));
    assert.equal(done.outcome, 'record.invalid');
    assert.match(String(done.result), /records\[2\]: deadline/);
    assert.deepEqual([done.tx.writes, done.tx.events, ledger.world.snapshot()], [[], [], []]);
  });

  it('refuses arguments that are not a non-empty array of records', async () => {
    const ledger = new FakeLedger();
    for (const arg of ['', '[]', '{}', 'null', JSON.stringify(consortium()), '[1]']) {
      assert.equal((await ledger.submit(AGG, arg)).outcome, 'record.invalid', arg);
    }
  });

  it('decodes the argument strictly: invalid UTF-8 and a BOM are refused, other text kept', async () => {
    const ledger = new FakeLedger();
    await ledger.submit(AGG, batch(consortium(), run(), task('t1', 1)));
    const failed = { ...update(A, 't1', 1), status: 'error', update_sha256: null, error: 'naïve 😀' };
    const good = Buffer.from(batch(failed), 'utf8');
    const broken = Buffer.from(good);
    broken[broken.indexOf(0xc3)] = 0xff;
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), good]);
    assert.equal((await ledger.submit(A, broken)).outcome, 'record.invalid');
    assert.equal((await ledger.submit(A, bom)).outcome, 'record.invalid');
    const done = await ledger.submit(A, good);
    assert.equal(done.outcome, 'ok', String(done.result));
    assert.ok(done.tx.events[0]?.payload.includes('"error":"naïve 😀"'));
  });

  it('refuses floats where Python wants integers, and prints integral floats as integers', async () => {
    const ledger = new FakeLedger();
    await ledger.submit(AGG, batch(consortium(), run(), task('t1', 1)));
    const text = JSON.stringify([update(A, 't1', 1)]);
    for (const bad of [text.replace('"round":1', '"round":1.0'), text.replace('"num_examples":120', '"num_examples":1.2e2')]) {
      assert.equal((await ledger.submit(A, bad)).outcome, 'record.invalid', bad);
    }
    const done = await ledger.submit(A, text.replace('"accuracy":0.875', '"accuracy":1.0'));
    assert.equal(done.outcome, 'ok', String(done.result));
    assert.match(done.tx.events[0]?.payload ?? '', /"metrics":\{"accuracy":1\}/);
  });

  it('follows Python in letting an unclosed earlier round take answers after a later close', async () => {
    const ledger = new FakeLedger();
    const steps: [string, Rec[], string][] = [
      [AGG, [consortium(), run(), task('t1', 1), task('t2', 2)], 'ok'],
      [A, [update(A, 't2', 2)], 'ok'],
      [AGG, [close(2, [[A, 't2']])], 'ok'],
      [A, [update(A, 't1', 1)], 'ok'],
      [AGG, [close(1, [[A, 't1']])], 'round.closed'],
      [B, [update(B, 't2', 2)], 'round.closed'],
    ];
    for (const [signer, records, expect] of steps) {
      assert.equal((await ledger.submit(signer, batch(...records))).outcome, expect);
    }
  });
});

describe('metadataGet', () => {
  const queries: object[] = [
    {}, { kind: 'update' }, { run: 'r1' }, { run: 'r2' }, { run: 'r1', round: 1 }, { round: 1 },
    { round: 2 }, { org: A }, { task: 't1' }, { run: 'r1', task: 't2', org: A, kind: 'update' },
    { run: 'r2', round: 1, kind: 'update' }, { run: 'r1', round: 1, kind: 'keys', org: A },
    { kind: 'close', round: 1 }, { run: 'r1', round: 1, kind: 'close' }, { kind: 'consortium' },
    { run: 'nope' }, { kind: 'unknown' }, { org: 'bad id' }, { run: null, round: null, task: null },
    { run: 'r1', round: 2, org: B }, { run: 'r2', kind: 'run' }, { task: 't1', kind: 'close' },
  ];

  it('answers every filter combination as Python Query.matches would, in ledger order', async () => {
    const { ledger, log } = await populated(TWO_RUNS);
    for (const query of queries) {
      const q = query as Record<string, unknown>;
      const want = log.filter((e) =>
        ['kind', 'org', 'run', 'round', 'task'].every((f) => q[f] === undefined || q[f] === null || e.record[f] === q[f]),
      );
      assert.deepEqual(await ledger.get(query), want, JSON.stringify(query));
    }
    assert.equal((await ledger.get('')).length, log.length);
  });

  it('refuses malformed queries with query.invalid', async () => {
    const { ledger } = await populated(TWO_RUNS.slice(0, 1));
    for (const bad of ['[]', 'nope', '{"foo":1}', '{"round":"1"}', '{"round":1.0}', '{"round":1.5}', '{"run":5}']) {
      assert.equal((await ledger.simulate(A, 'metadataGet', bad)).outcome, 'query.invalid', bad);
    }
  });

  it('consortium() is null before the consortium record and its entry after', async () => {
    const ledger = new FakeLedger();
    assert.equal((await ledger.simulate(A, 'consortium')).result, 'null');
    await ledger.submit(AGG, batch(consortium()));
    const entry = JSON.parse(String((await ledger.simulate(A, 'consortium')).result)) as Logged;
    assert.deepEqual(entry, (await ledger.get({ kind: 'consortium' }))[0]);
    assert.equal(entry.org, AGG);
  });
});

describe('metadataHead', () => {
  it('is null on an empty ledger, then names the newest publishing transaction, in one read', async () => {
    const ledger = new FakeLedger();
    const empty = await ledger.head();
    assert.equal(empty.head, null);
    assert.deepEqual([[...empty.tx.reads.keys()], empty.tx.scans, empty.tx.writes], [[HEAD], [], []]);
    for (const [signer, records] of TWO_RUNS) {
      const done = await ledger.submit(signer, batch(...records));
      assert.equal(done.outcome, 'ok', String(done.result));
      assert.ok(!done.tx.reads.has(HEAD), 'a publish must never read the head key (it would conflict)');
      const { head, tx } = await ledger.head();
      assert.deepEqual(head, { ts: done.tx.millis, txId: done.tx.txId });
      assert.deepEqual([tx.reads.size, tx.scans.length, tx.writes.length], [1, 0, 0]);
    }
  });

  it('a refused publish leaves the head where it was', async () => {
    const { ledger } = await populated(TWO_RUNS.slice(0, 3));
    const before = (await ledger.head()).head;
    assert.equal((await ledger.submit(A, batch(update(A, 't1', 1)))).outcome, 'update.duplicate');
    assert.deepEqual((await ledger.head()).head, before);
    assert.notEqual(before, null);
  });
});

describe('concurrency and determinism', () => {
  const opened: [string, Rec[]][] = [[AGG, [consortium(), run(), task('t1', 1)]]];

  it("organizations' answers in one round, simulated together, all commit (no shared hot key)", async () => {
    const { ledger } = await populated(opened);
    const txs: FakeTx[] = [];
    for (const [signer, record] of [[A, keys(A, 't1', 1)], [B, keys(B, 't1', 1)], [A, update(A, 't1', 1)], [B, update(B, 't1', 1)]] as const) {
      const done = await ledger.simulate(signer, 'metadataPublish', batch(record));
      assert.equal(done.outcome, 'ok', String(done.result));
      // Every publish also writes the shared head key, but blind (never read): no conflict.
      for (const [key] of done.tx.writes.filter(([k]) => k !== HEAD)) {
        assert.ok(key.endsWith(`\u0000${signer}\u0000`), `${signer} wrote a key that is not its own: ${JSON.stringify(key)}`);
      }
      assert.ok(done.tx.writes.some(([k]) => k === HEAD) && !done.tx.reads.has(HEAD));
      txs.push(done.tx);
    }
    // The aggregator opening the next round at the same time, committed first, does not
    // invalidate them: they read no key that the aggregator's transactions update.
    txs.unshift((await ledger.simulate(AGG, 'metadataPublish', batch(task('t2', 2)))).tx);
    assert.deepEqual(ledger.world.commitBlock(txs), ['VALID', 'VALID', 'VALID', 'VALID', 'VALID']);
    const last = txs[txs.length - 1];
    assert.deepEqual((await ledger.head()).head, { ts: last?.millis, txId: last?.txId }, 'the last in block order');
  });

  it('an answer racing the close of its round is invalidated at commit', async () => {
    const { ledger } = await populated([...opened, [A, [update(A, 't1', 1)]]]);
    const closing = await ledger.simulate(AGG, 'metadataPublish', batch(close(1, [[A, 't1']])));
    const late = await ledger.simulate(B, 'metadataPublish', batch(update(B, 't1', 1)));
    assert.deepEqual([closing.outcome, late.outcome], ['ok', 'ok']);
    assert.deepEqual(ledger.world.commitBlock([closing.tx, late.tx]), ['VALID', 'MVCC_READ_CONFLICT']);
  });

  it('the same transactions give byte-identical writes, events and results, whatever the key order', async () => {
    const reversed = (r: Rec): Rec => Object.fromEntries(Object.entries(r).reverse());
    const runs = await Promise.all([false, true].map(async (reverse) => {
      const ledger = new FakeLedger();
      const trace: unknown[] = [];
      for (const [signer, records] of TWO_RUNS) {
        const done = await ledger.submit(signer, batch(...records.map(reverse ? reversed : (r) => r)));
        trace.push([done.outcome, done.result, done.tx.writes, done.tx.events]);
        const keys = done.tx.writes.map(([k]) => k);
        assert.deepEqual(keys, [...keys].sort(), 'writes go out in sorted key order');
      }
      return { trace, state: ledger.world.snapshot() };
    }));
    assert.deepEqual(runs[0], runs[1]);
  });

  it('keeps entries under the documented composite keys', async () => {
    const { ledger, log } = await populated(opened);
    const stored = new Map(ledger.world.snapshot());
    const entry = stored.get(createCompositeKey('task', ['r1', 't1']));
    assert.deepEqual(JSON.parse(String(entry)), { idx: 2, ...log[2] });
    assert.deepEqual(JSON.parse(String(stored.get(createCompositeKey('progress', ['r1'])))), { last_closed: -1, max_task_round: 1, tasks: 1 });
    assert.deepEqual(JSON.parse(String(stored.get(createCompositeKey('round~task', ['r1', '1', 't1'])))), { seq: 0, task: 't1' });
    assert.deepEqual(JSON.parse(String(stored.get(HEAD))), { ts: log[2]?.ts, txId: log[2]?.txId });
  });
});

describe('transaction metadata', () => {
  it('declares metadataPublish as submit and the getters as evaluate, with string arguments', () => {
    const declared = Reflect.getMetadata('fabric:transactions', FedchainContract.prototype) as {
      name: string; tag: string[]; parameters: { name: string; schema: { type: string } }[];
    }[];
    const summary = Object.fromEntries(declared.map((t) => [t.name, [t.tag[0], t.parameters.map((p) => `${p.name}:${p.schema.type}`)]]));
    assert.deepEqual(summary, {
      metadataPublish: ['SUBMIT', ['recordsJson:string']],
      metadataGet: ['EVALUATE', ['queryJson:string']],
      metadataHead: ['EVALUATE', []],
      consortium: ['EVALUATE', []],
    });
    assert.equal(new FedchainContract().getName(), 'fedchain');
  });
});
