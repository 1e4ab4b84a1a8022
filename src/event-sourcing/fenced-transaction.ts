import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import type { LeaseFence } from './lease-fence.js';
import { settledTransactionStatus } from './transaction-status.js';

/**
 * Runs `work` in one transaction of `dataSource`, as `DataSource.transaction` does; under a lease
 * fence the transaction is committed by `LeaseFence.verifyAndCommit`: the lease check and the COMMIT
 * in one message, so that no pause of this process between the two holds the lease row's lock.
 *
 * As with any COMMIT, an error from that message on a lost connection is ambiguous: the server may
 * still run the message (its check may first wait for the row behind a takeover or a renewal) and
 * commit. Before, the check went alone and a connection lost during its wait could only roll back;
 * now the step is then counted as a failed attempt and met again, which process managers' steps, being
 * idempotent, make a no-op (test fenced-commit-edges).
 */
export async function inTransaction<T>(
  dataSource: DataSource,
  fence: LeaseFence | undefined,
  work: (manager: EntityManager) => Promise<T>,
): Promise<T> {
  if (!fence) return dataSource.transaction(work);
  const { result } = await transactionEndedBy(dataSource, work, (queryRunner) => fence.verifyAndCommit(queryRunner));
  return result;
}

/**
 * Runs `work` in one transaction of `dataSource` and ends it with `end`, which must send a last
 * statement and the COMMIT in one simple-protocol message (the COMMIT then runs only if that
 * statement did not raise): the lease fence of a unit of work, a read model's checkpoint move. It
 * answers what both answered. A raising `end` (or `work`) rolls the transaction back. `settings`,
 * when given, are statements sent with the START in its message (e.g. a SET LOCAL): no round trip more.
 */
export async function transactionEndedBy<T, E>(
  dataSource: DataSource,
  work: (manager: EntityManager) => Promise<T>,
  end: (queryRunner: QueryRunner) => Promise<E>,
  settings = '',
): Promise<{ result: T; ended: E }> {
  const queryRunner = dataSource.createQueryRunner();
  try {
    if (settings) await startTransactionWith(queryRunner, settings);
    else await queryRunner.startTransaction();
    const result = await work(queryRunner.manager);
    const ended = await end(queryRunner);
    // The server must say the session is out of its transaction ('I'): anything else (a driver or
    // TypeORM that ran the message otherwise) fails here and is rolled back below, rather than the
    // connection going back to the pool inside a transaction.
    const status = await settledTransactionStatus((queryRunner as { databaseConnection?: unknown }).databaseConnection);
    if (status !== null && status !== 'I')
      throw new Error(`a COMMIT sent with its last statement left the session in transaction status ${status}`);
    // TypeORM did not send that COMMIT: its query runner still counts the transaction as open, and
    // would roll back or nest into a transaction that no longer exists.
    markCommitted(queryRunner);
    return { result, ended };
  } catch (error) {
    // After a refused statement the transaction is open and aborted; after a failed COMMIT it is over
    // already, and the ROLLBACK only draws a warning. Its own failure must not hide `error`.
    if (queryRunner.isTransactionActive) await queryRunner.rollbackTransaction().catch(() => undefined);
    throw error;
  } finally {
    await queryRunner.release();
  }
}

/**
 * START TRANSACTION and `settings` in one simple-protocol message. The query runner is told its
 * transaction is open before the message goes, so that any failure of it is rolled back.
 */
async function startTransactionWith(queryRunner: QueryRunner, settings: string): Promise<void> {
  const client = (await queryRunner.connect()) as { query(text: string): Promise<unknown> };
  const state = queryRunner as unknown as { isTransactionActive: boolean; transactionDepth: number };
  state.isTransactionActive = true;
  state.transactionDepth = 1;
  await client.query(`START TRANSACTION; ${settings}`);
}

/** What TypeORM's commitTransaction() sets after its COMMIT (BaseQueryRunner's fields). */
function markCommitted(queryRunner: object): void {
  const state = queryRunner as { isTransactionActive: boolean; transactionDepth: number };
  state.isTransactionActive = false;
  state.transactionDepth = 0;
}
