/**
 * The "fedchain" contract: `metadataPublish` (submit) and `metadataGet` / `metadataHead` /
 * `consortium` (evaluate).
 *
 * The writer is the caller's MSP id (`ctx.clientIdentity.getMSPID()`), which is the fedchain
 * organization id. Everything else is deterministic: the time is the transaction's timestamp,
 * writes go out in sorted key order, and no result depends on iteration order, so every
 * endorsing peer computes the same read/write set. Refusals throw `Error("<rule id>: ...")`.
 */

import { Context, Contract, Info, Param, Returns, Transaction } from 'fabric-contract-api';
import type { ChaincodeStub } from 'fabric-shim-api';

import { canonicalJson } from './canonical';
import { LedgerError, invalid } from './errors';
import { type Json, decodeUtf8, parseJson } from './json';
import { type ParsedRecord, parseRecord } from './records';
import { findEntries, parseQuery } from './query';
import { type TxMeta, admit } from './rules';
import { TxState } from './state';

/** The name of the one chaincode event each publishing transaction emits. */
export const EVENT_NAME = 'fedchain.records';
/** The most records one transaction may carry (a round phase is a handful). */
export const MAX_BATCH = 1024;

@Info({ title: 'fedchain', description: 'Federated-learning round metadata: publish and query ledger records' })
export class FedchainContract extends Contract {
  constructor() {
    super('fedchain');
  }

  /**
   * Admit a JSON array of records written by the caller's organization, all or none. Returns
   * `{"sha256": [<hash of each record's canonical bytes>], "ts": <tx time, Unix ms>, "txId": ...}`
   * and emits one `fedchain.records` event whose payload is the JSON array of canonical records.
   */
  @Transaction()
  @Param('recordsJson', 'string', 'a JSON array of one or more ledger records')
  @Returns('string')
  public async metadataPublish(ctx: Context, recordsJson: string): Promise<string> {
    const records = parseBatch(argumentText(ctx.stub, 1, recordsJson));
    const meta: TxMeta = { signer: ctx.clientIdentity.getMSPID(), txId: ctx.stub.getTxID(), ts: txMillis(ctx.stub) };
    const state = new TxState(ctx.stub);
    for (const [idx, record] of records.entries()) {
      await admit(state, record, meta, idx);
    }
    state.put('head', [], { ts: meta.ts, txId: meta.txId }); // a blind write: see state.ts
    await state.flush();
    const payload = `[${records.map((r) => r.canonical).join(',')}]`;
    ctx.stub.setEvent(EVENT_NAME, Buffer.from(payload, 'utf8'));
    return canonicalJson({ sha256: records.map((r) => r.sha256), ts: meta.ts, txId: meta.txId });
  }

  /**
   * Entries matching `{run?, round?, kind?, org?, task?}` (all optional; "" means everything),
   * as a JSON array of `{record, sha256, org, txId, ts}`.
   */
  @Transaction(false)
  @Param('queryJson', 'string', 'a JSON object {run?, round?, kind?, org?, task?}')
  @Returns('string')
  public async metadataGet(ctx: Context, queryJson: string): Promise<string> {
    const entries = await findEntries(new TxState(ctx.stub), parseQuery(queryJson));
    return canonicalJson(entries);
  }

  /**
   * The newest committed publishing transaction as `{"ts": <tx time, Unix ms>, "txId": ...}`, or
   * `null` before any (or when every record predates this function): one world-state read, so a
   * client can catch up with the peer by waiting for that transaction's event alone.
   */
  @Transaction(false)
  @Returns('string')
  public async metadataHead(ctx: Context): Promise<string> {
    return canonicalJson((await new TxState(ctx.stub).get('head', [])) ?? null);
  }

  /** The consortium entry `{record, sha256, org, txId, ts}`, or `null` before it is written. */
  @Transaction(false)
  @Returns('string')
  public async consortium(ctx: Context): Promise<string> {
    const [entry] = await findEntries(new TxState(ctx.stub), {
      run: undefined, round: undefined, kind: 'consortium', org: undefined, task: undefined,
    });
    return canonicalJson(entry ?? null);
  }
}

/** Parse and validate a batch; any malformed record refuses the whole batch before any rule runs. */
export function parseBatch(text: string): ParsedRecord[] {
  const value: Json = parseJson(text);
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_BATCH) {
    throw invalid(`the argument must be a JSON array of 1..${MAX_BATCH} records`);
  }
  return value.map((item, i) => {
    try {
      return parseRecord(item);
    } catch (error) {
      if (error instanceof LedgerError) throw invalid(`records[${i}]: ${error.detail}`);
      throw error;
    }
  });
}

/**
 * The argument's text, decoded strictly from the raw bytes when the stub exposes them (the
 * shim's `getBufferArgs`; its typings omit it). The contract API decodes arguments leniently,
 * turning invalid UTF-8 into U+FFFD, where the Python contract refuses the record.
 */
function argumentText(stub: ChaincodeStub, index: number, decoded: string): string {
  const raw = (stub as ChaincodeStub & { getBufferArgs?: () => Uint8Array[] }).getBufferArgs?.()[index];
  return raw === undefined ? decoded : decodeUtf8(raw);
}

/** The transaction's timestamp in Unix milliseconds (the proposal's, identical on every peer). */
function txMillis(stub: ChaincodeStub): number {
  const { seconds, nanos } = stub.getTxTimestamp();
  return seconds.toNumber() * 1000 + Math.floor(nanos / 1e6);
}
