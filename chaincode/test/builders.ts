/**
 * Small record builders for the contract tests, shaped like generate.py's (org1 aggregates;
 * org2 and org3 train). The shared vector files remain the conformance reference.
 */

import { createHash } from 'node:crypto';

export const [AGG, A, B] = ['org1', 'org2', 'org3'] as const;
export type Rec = Record<string, unknown>;

/** A distinct lowercase hex SHA-256 per label. */
export function h(label: string): string {
  return createHash('sha256').update(label).digest('hex');
}

export function consortium(org: string = AGG): Rec {
  const orgs = [AGG, A, B].map((id) => ({ id, ca_sha256: h(`ca-${id}`) }));
  return { v: 1, kind: 'consortium', org, name: 'hospitals', aggregator: AGG, orgs };
}

export function run(runId = 'r1'): Rec {
  return {
    v: 1, kind: 'run', org: AGG, run: runId, app_sha256: h('app'), strategy_sha256: h('strategy'),
    model_sha256: h('model'), config: { rounds: 3 },
  };
}

export function task(taskId: string, round: number, to: readonly string[] = [AGG, A, B], runId = 'r1'): Rec {
  const recipients = to.map((org) => ({ org, payload_sha256: h('payload'), payload_size: 1024 }));
  return {
    v: 1, kind: 'task', org: AGG, run: runId, round, task: taskId, type: 'train',
    model_sha256: h('model'), deadline: 1_790_000_000_000, recipients,
  };
}

export function update(org: string, taskId: string, round: number, runId = 'r1'): Rec {
  return {
    v: 1, kind: 'update', org, run: runId, round, task: taskId, status: 'ok',
    update_sha256: h(`update-${runId}-${taskId}-${org}`), update_size: 2048, num_examples: 120,
    metrics: { accuracy: 0.875 }, error: null,
  };
}

export function keys(org: string, taskId: string, round: number, runId = 'r1'): Rec {
  return { v: 1, kind: 'keys', org, run: runId, round, task: taskId, keys: { enc: '11'.repeat(32) } };
}

export function selection(taskId: string, round: number, selected: readonly string[], runId = 'r1'): Rec {
  return { v: 1, kind: 'selection', org: AGG, run: runId, round, task: taskId, selected };
}

export function close(round: number, aggregated: readonly (readonly [string, string])[], runId = 'r1'): Rec {
  return {
    v: 1, kind: 'close', org: AGG, run: runId, round, model_sha256: h(`model-${round}`),
    aggregated: aggregated.map(([org, taskId]) => ({ org, update_sha256: h(`update-${runId}-${taskId}-${org}`) })),
    dropouts: [], rejected: [], metrics: { accuracy: 0.9 },
  };
}

/** The JSON argument of metadataPublish for these records. */
export function batch(...records: Rec[]): string {
  return JSON.stringify(records);
}
