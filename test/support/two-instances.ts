import { afterAll, beforeAll } from '@jest/globals';
import { LedgerClient } from './ledger-client.js';
import { type StatementCounter, countStatements } from './statement-counter.js';
import { type TestApp, startTestApp } from './test-app.js';

/** An account load: the snapshot lookup that starts it (accounts are snapshotted). */
export const ACCOUNT_LOAD = /FROM snapshots\s+WHERE stream_id/;

export interface TwoInstances {
  /** The instance under test, its projections on. */
  readonly t: TestApp;
  /** A second instance on the same database, its projections off: the "other process". */
  readonly other: TestApp;
  readonly client: LedgerClient;
  /** The account loads `t` sends (ACCOUNT_LOAD). */
  readonly loads: StatementCounter;
}

/**
 * For a test file about what an instance reads of accounts: starts both instances before its tests
 * (the answer is filled in then) and closes them after.
 */
export function twoInstancesCountingAccountLoads(): TwoInstances {
  const instances = {} as { -readonly [K in keyof TwoInstances]: TwoInstances[K] };
  beforeAll(async () => {
    instances.t = await startTestApp({ LOG_LEVEL: 'error' });
    instances.other = await startTestApp({ LOG_LEVEL: 'error', PROJECTIONS_ENABLED: 'false' }, instances.t.database);
    instances.client = new LedgerClient(instances.t);
    instances.loads = countStatements(instances.t.dataSource, ACCOUNT_LOAD);
  }, 60_000);
  afterAll(async () => {
    await instances.other?.close();
    await instances.t?.close();
  });
  return instances;
}
