/**
 * Chaincode entry point: `fabric-chaincode-node` loads this module (package.json "main") and
 * serves the contracts it exports.
 */

import { FedchainContract } from './contract';

export { EVENT_NAME, FedchainContract, MAX_BATCH, parseBatch } from './contract';
export { canonicalJson, sha256Hex } from './canonical';
export { LedgerError, RULE_IDS, type RuleId } from './errors';
export { JsonFloat, parseJson } from './json';
export { KINDS, parseRecord } from './records';

export const contracts = [FedchainContract];
