/**
 * The chaincode's one error type. Its message starts with a stable rule id and ": ", exactly as
 * the Python `RuleViolation` does, so a client (and the shared vector files) can tell which rule
 * refused a write: `record.invalid: num_examples: must be ...`, `update.duplicate: ...`.
 */

/** Every rule id the ledger contract defines (see src/fedchain/ledger/rules.py), plus ours. */
export const RULE_IDS = [
  'record.invalid',
  'query.invalid',
  'consortium.first',
  'consortium.exists',
  'consortium.signer',
  'identity.mismatch',
  'org.unknown',
  'role.aggregator_only',
  'run.duplicate',
  'run.unknown',
  'task.duplicate',
  'task.unknown',
  'task.round_mismatch',
  'round.closed',
  'round.not_increasing',
  'update.not_recipient',
  'update.duplicate',
  'keys.not_recipient',
  'keys.duplicate',
  'selection.duplicate',
  'selection.not_announced',
  'close.no_task',
  'close.not_announced',
  'close.not_selected',
  'close.not_participant',
] as const;

/** A stable rule id; `query.invalid` (a malformed metadataGet query) is the chaincode's own. */
export type RuleId = (typeof RULE_IDS)[number];

/** A refused transaction: `rule` is the stable id, `detail` the human-readable reason. */
export class LedgerError extends Error {
  constructor(
    readonly rule: RuleId,
    readonly detail: string,
  ) {
    super(`${rule}: ${detail}`);
    this.name = 'LedgerError';
  }
}

/** A malformed, oversized or wrongly typed record (Python's `RecordError`). */
export function invalid(detail: string): LedgerError {
  return new LedgerError('record.invalid', detail);
}
