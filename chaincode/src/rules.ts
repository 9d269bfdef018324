/**
 * The ledger's write rules, a mirror of Python's `fedchain.ledger.rules.LedgerState` kept in
 * world state instead of memory. Each refusal carries the same stable rule id, in the same order
 * of checks, so the shared sequence vectors reach the same outcome on both sides.
 *
 * One deliberate addition: the consortium record must be signed by the organization it names
 * (`identity.mismatch`). Python's rules skip the identity check for that record because its
 * backends know their signer; on a shared channel any member could otherwise bootstrap the
 * consortium in the aggregator's name.
 */

import { LedgerError } from './errors';
import { type JsonObject, num, obj, objects, str, strings } from './json';
import type { Kind, ParsedRecord } from './records';
import type { KeyType, TxState } from './state';

/** Who writes, and the transaction's id and timestamp (Unix ms) every entry records. */
export interface TxMeta {
  readonly signer: string;
  readonly txId: string;
  readonly ts: number;
}

interface Consortium {
  readonly orgs: ReadonlySet<string>;
  readonly aggregator: string;
}

interface Progress {
  last_closed: number;
  max_task_round: number;
  tasks: number;
}

interface RoundTask {
  readonly seq: number;
  readonly task: string;
}

const AGGREGATOR_KINDS: ReadonlySet<Kind> = new Set<Kind>(['run', 'task', 'selection', 'close']);

type Handler = (state: TxState, record: JsonObject, consortium: Consortium) => Promise<void>;

const HANDLERS: Readonly<Record<Exclude<Kind, 'consortium'>, Handler>> = {
  run: admitRun,
  task: admitTask,
  update: (state, record) => admitAnswer(state, record, 'update'),
  keys: (state, record) => admitAnswer(state, record, 'keys'),
  selection: admitSelection,
  close: admitClose,
};

/** Check `record` written by `meta.signer` against the state; buffer its entry if allowed. */
export async function admit(state: TxState, record: ParsedRecord, meta: TxMeta, idx: number): Promise<void> {
  const consortium = await loadConsortium(state);
  if (record.kind === 'consortium') {
    admitConsortium(record.data, consortium, meta.signer);
  } else {
    await HANDLERS[record.kind](state, record.data, checkIdentity(record, meta.signer, consortium));
  }
  const [type, attributes] = recordKey(record.kind, record.data);
  const entry: JsonObject = {
    idx,
    org: meta.signer,
    record: record.data,
    sha256: record.sha256,
    ts: meta.ts,
    txId: meta.txId,
  };
  state.put(type, attributes, entry);
}

/** Where a record's entry lives (see the layout in state.ts). */
export function recordKey(kind: Kind, data: JsonObject): [KeyType, string[]] {
  switch (kind) {
    case 'consortium':
      return ['consortium', []];
    case 'run':
      return ['run', [str(data, 'run')]];
    case 'task':
    case 'selection':
      return [kind, [str(data, 'run'), str(data, 'task')]];
    case 'update':
    case 'keys':
      return [kind, [str(data, 'run'), str(data, 'task'), str(data, 'org')]];
    case 'close':
      return ['close', [str(data, 'run'), String(num(data, 'round'))]];
  }
}

/** The consortium as written on the ledger, or undefined before it is. */
export async function loadConsortium(state: TxState): Promise<Consortium | undefined> {
  const entry = await state.get('consortium', []);
  if (entry === undefined) return undefined;
  const record = obj(entry, 'record');
  const orgs = objects(record, 'orgs');
  return { orgs: new Set(orgs.map((o) => str(o, 'id'))), aggregator: str(record, 'aggregator') };
}

function admitConsortium(record: JsonObject, consortium: Consortium | undefined, signer: string): void {
  const org = str(record, 'org');
  if (consortium !== undefined) {
    throw new LedgerError('consortium.exists', 'the consortium record is already written');
  }
  if (org !== signer) {
    throw new LedgerError('identity.mismatch', `${signer} cannot write a record as ${org}`);
  }
  if (org !== str(record, 'aggregator')) {
    throw new LedgerError('consortium.signer', 'the aggregator writes the consortium record');
  }
}

/** Python's `_check_identity`: consortium first, the signer's own org, a member, the right role. */
function checkIdentity(record: ParsedRecord, signer: string, consortium: Consortium | undefined): Consortium {
  const org = str(record.data, 'org');
  if (consortium === undefined) {
    throw new LedgerError('consortium.first', 'the first record must be the consortium');
  }
  if (org !== signer) {
    throw new LedgerError('identity.mismatch', `${signer} cannot write a record as ${org}`);
  }
  if (!consortium.orgs.has(org)) {
    throw new LedgerError('org.unknown', `${org} is not in the consortium`);
  }
  if (AGGREGATOR_KINDS.has(record.kind) && org !== consortium.aggregator) {
    throw new LedgerError('role.aggregator_only', `only the aggregator (${consortium.aggregator}) writes ${record.kind}`);
  }
  return consortium;
}

async function admitRun(state: TxState, record: JsonObject): Promise<void> {
  const run = str(record, 'run');
  if (await state.has('run', [run])) {
    throw new LedgerError('run.duplicate', `run ${run} already exists`);
  }
  saveProgress(state, run, { last_closed: -1, max_task_round: -1, tasks: 0 });
}

async function admitTask(state: TxState, record: JsonObject, consortium: Consortium): Promise<void> {
  const [run, taskId, rnd] = [str(record, 'run'), str(record, 'task'), num(record, 'round')];
  const progress = await loadProgress(state, run);
  if (await state.has('task', [run, taskId])) {
    throw new LedgerError('task.duplicate', `task ${taskId} already exists`);
  }
  if (rnd <= progress.last_closed || rnd < progress.max_task_round) {
    throw new LedgerError(
      'round.not_increasing',
      `round ${rnd} is behind the run (last closed ${progress.last_closed}, latest task round ${progress.max_task_round})`,
    );
  }
  const unknown = [...new Set(recipients(record))].filter((o) => !consortium.orgs.has(o)).sort();
  if (unknown.length > 0) {
    throw new LedgerError('org.unknown', `${unknown.join(', ')} not in the consortium`);
  }
  state.put('round~task', [run, String(rnd), taskId], { seq: progress.tasks, task: taskId });
  saveProgress(state, run, {
    ...progress,
    max_task_round: Math.max(progress.max_task_round, rnd),
    tasks: progress.tasks + 1,
  });
}

/** An organization's answer to a task: its update, or its secure-aggregation public keys. */
async function admitAnswer(state: TxState, record: JsonObject, kind: 'update' | 'keys'): Promise<void> {
  const task = await openTask(state, record);
  const [run, taskId, org] = [str(record, 'run'), str(record, 'task'), str(record, 'org')];
  if (!recipients(task).includes(org)) {
    throw new LedgerError(`${kind}.not_recipient`, 'the task is not addressed to ' + org);
  }
  if (await state.has(kind, [run, taskId, org])) {
    const what = kind === 'update' ? `answered ${taskId}` : 'published keys';
    throw new LedgerError(`${kind}.duplicate`, `${org} already ${what}`);
  }
}

async function admitSelection(state: TxState, record: JsonObject): Promise<void> {
  await openTask(state, record);
  const [run, taskId] = [str(record, 'run'), str(record, 'task')];
  if (await state.has('selection', [run, taskId])) {
    throw new LedgerError('selection.duplicate', `task ${taskId} already has one`);
  }
  for (const org of [...new Set(strings(record, 'selected'))].sort()) {
    const update = await state.get('update', [run, taskId, org]);
    if (update === undefined || obj(update, 'record').status !== 'ok') {
      throw new LedgerError('selection.not_announced', `${org} announced no ok update`);
    }
  }
}

async function admitClose(state: TxState, record: JsonObject): Promise<void> {
  const [run, rnd] = [str(record, 'run'), num(record, 'round')];
  const progress = await loadProgress(state, run);
  if (rnd <= progress.last_closed || (await state.has('close', [run, String(rnd)]))) {
    throw new LedgerError('round.closed', `round ${rnd} of ${run} is already closed`);
  }
  const tasks = await roundTasks(state, run, rnd);
  if (tasks.length === 0) {
    throw new LedgerError('close.no_task', `round ${rnd} has no task to close`);
  }
  for (const item of objects(record, 'aggregated')) {
    await checkAggregated(state, run, tasks, str(item, 'org'), str(item, 'update_sha256'));
  }
  const participants = new Set<string>();
  for (const taskId of tasks) {
    const task = obj(await state.get('task', [run, taskId]), 'record');
    recipients(task).forEach((org) => participants.add(org));
  }
  const listed = [...objects(record, 'dropouts'), ...objects(record, 'rejected')];
  for (const item of listed) {
    const org = str(item, 'org');
    if (!participants.has(org)) throw new LedgerError('close.not_participant', `${org} had no task`);
  }
  saveProgress(state, run, { ...progress, last_closed: rnd });
}

/** Python's `_check_aggregated`: the first task of the round (in opening order) with that update. */
async function checkAggregated(state: TxState, run: string, tasks: readonly string[], org: string, digest: string): Promise<void> {
  for (const taskId of tasks) {
    const update = await state.get('update', [run, taskId, org]);
    if (update !== undefined && obj(update, 'record').update_sha256 === digest) {
      const selection = await state.get('selection', [run, taskId]);
      if (selection !== undefined && !strings(obj(selection, 'record'), 'selected').includes(org)) {
        throw new LedgerError('close.not_selected', `${org}'s update was not selected`);
      }
      return;
    }
  }
  throw new LedgerError('close.not_announced', `no update ${digest.slice(0, 12)} from ${org}`);
}

/** Python's `_open_task`, reading only write-once keys (an organization's transaction reads these). */
async function openTask(state: TxState, record: JsonObject): Promise<JsonObject> {
  const [run, taskId, rnd] = [str(record, 'run'), str(record, 'task'), num(record, 'round')];
  if (!(await state.has('run', [run]))) {
    throw new LedgerError('run.unknown', `run ${run} has not been started`);
  }
  const entry = await state.get('task', [run, taskId]);
  if (entry === undefined) {
    throw new LedgerError('task.unknown', `task ${taskId} is not on the ledger`);
  }
  const task = obj(entry, 'record');
  const taskRound = num(task, 'round');
  if (taskRound !== rnd) {
    throw new LedgerError('task.round_mismatch', `task ${taskId} is in round ${taskRound}`);
  }
  if (await state.has('close', [run, String(taskRound)])) {
    throw new LedgerError('round.closed', `round ${taskRound} of ${run} is closed`);
  }
  return task;
}

/** The run's progress (aggregator-only state); a run without one has not been started. */
async function loadProgress(state: TxState, run: string): Promise<Progress> {
  const value = await state.get('progress', [run]);
  if (value === undefined) {
    throw new LedgerError('run.unknown', `run ${run} has not been started`);
  }
  return { last_closed: num(value, 'last_closed'), max_task_round: num(value, 'max_task_round'), tasks: num(value, 'tasks') };
}

function saveProgress(state: TxState, run: string, progress: Progress): void {
  state.put('progress', [run], { ...progress });
}

/** The task ids of a round, in the order the aggregator opened them. */
async function roundTasks(state: TxState, run: string, rnd: number): Promise<string[]> {
  const rows = (await state.list('round~task', [run, String(rnd)])).map(
    (row): RoundTask => ({ seq: num(row, 'seq'), task: str(row, 'task') }),
  );
  return rows.sort((a, b) => a.seq - b.seq).map((row) => row.task);
}

function recipients(task: JsonObject): string[] {
  return objects(task, 'recipients').map((r) => str(r, 'org'));
}
