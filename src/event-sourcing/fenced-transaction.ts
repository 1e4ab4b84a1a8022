import type { DataSource, EntityManager } from 'typeorm';
import type { LeaseFence } from './lease-fence.js';

/**
 * Runs `work` in one transaction of `dataSource`, as `DataSource.transaction` does; under a lease
 * fence the transaction is committed by `LeaseFence.verifyAndCommit`: the lease check and the COMMIT
 * in one message, so that no pause of this process between the two holds the lease row's lock.
 */
export async function inTransaction<T>(
  dataSource: DataSource,
  fence: LeaseFence | undefined,
  work: (manager: EntityManager) => Promise<T>,
): Promise<T> {
  if (!fence) return dataSource.transaction(work);
  const queryRunner = dataSource.createQueryRunner();
  try {
    await queryRunner.startTransaction();
    const result = await work(queryRunner.manager);
    await fence.verifyAndCommit(queryRunner);
    // TypeORM did not send that COMMIT: its query runner still counts the transaction as open, and
    // would roll back or nest into a transaction that no longer exists.
    markCommitted(queryRunner);
    return result;
  } catch (error) {
    // After a refused check the transaction is open and aborted; after a failed COMMIT it is over
    // already, and the ROLLBACK only draws a warning. Its own failure must not hide `error`.
    if (queryRunner.isTransactionActive) await queryRunner.rollbackTransaction().catch(() => undefined);
    throw error;
  } finally {
    await queryRunner.release();
  }
}

/** What TypeORM's commitTransaction() sets after its COMMIT (BaseQueryRunner's fields). */
function markCommitted(queryRunner: object): void {
  const state = queryRunner as { isTransactionActive: boolean; transactionDepth: number };
  state.isTransactionActive = false;
  state.transactionDepth = 0;
}
