import type { DataSource, EntityManager } from 'typeorm';
import { transactionEndedBy } from './fenced-transaction.js';
import type { ProjectionState } from './projection-checkpoint-row.js';
import { type CheckpointPass, advanceAllAndCommit } from './projection-advance-sql.js';
import { ProjectionApplyError } from './projection.js';
import { refusedByDatabase } from './group-commit.js';
import { settledTransactionStatus } from './transaction-status.js';

/** A read model's live batch, ready to commit: its writes, then the fenced move of its checkpoint. */
export interface ReadModelBatch {
  /** The batch's writes, in the transaction of `manager`. */
  readonly apply: (manager: EntityManager) => Promise<void>;
  /** Its checkpoint row's move, made with the COMMIT and only by the lease's holder. */
  readonly move: CheckpointPass;
  /** Never shares its transaction (Projection.commitsAlone). */
  readonly alone?: boolean;
}

interface Queued {
  readonly batch: ReadModelBatch;
  readonly resolve: (state: ProjectionState | null) => void;
  readonly reject: (error: unknown) => void;
}

/** Counters since start, read by tests. */
export interface ReadModelCommitStats {
  /** Transactions that carried more than one batch and committed. */
  shared: number;
  /** Shared transactions that failed, whose batches were then committed one by one. */
  retriedAlone: number;
}

/**
 * Read models' live batches that are ready in the same turn of the event loop share one
 * transaction: START, each batch's writes, then every checkpoint move and the COMMIT in one message
 * (advanceAllAndCommit). One append wakes every read model at once and their runners read the log
 * together (sharedReadBatch), so a lone deposit's two account read models used to commit in two
 * transactions of three round trips each; together they take four (docs/BENCHMARKS.md). A batch that
 * is alone goes as before, in a transaction of its own.
 *
 * Every guarantee stays per batch: each row is fenced on its own, and nothing commits unless every
 * move was made. When a batch's own writes fail (a handler's error), that batch gets its error, as
 * it would alone, and the others are committed again, each on its own. When the shared transaction
 * fails otherwise (a move refused, an error at COMMIT, a lost connection), every batch of it is
 * committed again on its own: each runner meets the outcome it would have met alone, its refusal or
 * its commit. After an ambiguous failure (a connection lost during the COMMIT) the shared
 * transaction may have committed: each retry is then refused by its own fence (its checkpoint has
 * moved) and rolled back, as after any lost COMMIT. The handlers of a batch committed again have run
 * twice, the first time in a transaction rolled back; a batch's writes are never committed twice.
 *
 * What sharing costs: a batch waits for its peers' writes. A lock is waited for SHARED_LOCK_TIMEOUT_MS
 * at most in a shared transaction (then each batch goes on its own, and only the held one waits); a
 * read model with slow handlers declares Projection.commitsAlone.
 *
 * Batches go in the order of their rows' names, so that two shared transactions lock the tables of
 * different projections in one order. A row moves at most once per transaction: a second batch of
 * the same row waits until the first is answered, so that its fence sees where the first left it.
 */
export class ReadModelBatchCommits {
  readonly stats: ReadModelCommitStats = { shared: 0, retriedAlone: 0 };
  private queued: Queued[] = [];
  /** Rows with a batch being committed: their next batch waits for its answer. */
  private readonly busyRows = new Set<string>();
  private flushScheduled = false;

  constructor(private readonly dataSource: () => DataSource) {}

  /** Commits the batch; answers its row as committed, or null when its move was refused (lease lost). */
  commit(batch: ReadModelBatch): Promise<ProjectionState | null> {
    if (batch.alone) return this.alone(batch);
    return new Promise((resolve, reject) => {
      this.queued.push({ batch, resolve, reject });
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.queued.length === 0) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      void this.flush();
    });
  }

  /** Everything queued whose row has no batch in flight, as one group; the rest stays queued. */
  private async flush(): Promise<void> {
    const group: Queued[] = [];
    const left: Queued[] = [];
    for (const queued of this.queued) {
      const row = queued.batch.move.name;
      if (this.busyRows.has(row)) {
        left.push(queued);
      } else {
        this.busyRows.add(row);
        group.push(queued);
      }
    }
    this.queued = left;
    if (group.length === 0) return; // each waits for its row's batch in flight, which flushes again
    try {
      await this.commitGroup(group);
    } finally {
      for (const queued of group) this.busyRows.delete(queued.batch.move.name);
      this.scheduleFlush();
    }
  }

  private async commitGroup(group: Queued[]): Promise<void> {
    if (group.length === 1) {
      await settle(group[0], this.alone(group[0].batch));
      return;
    }
    group.sort((a, b) => (a.batch.move.name < b.batch.move.name ? -1 : 1));
    let states: ProjectionState[] | null = null;
    let retried = group;
    try {
      states = await this.commitTogether(
        group.map((queued) => queued.batch),
        SHARED_LOCK_TIMEOUT,
      );
    } catch (error) {
      if (error instanceof BatchFailed && !CAUSED_BY_SHARING.has(sqlStateOf(error.cause) ?? '')) {
        // A batch whose own writes failed gets its error, as alone: tried once, counted once (its
        // handler is not run again at once, so PROJECTION_MAX_ATTEMPTS still counts its calls). Not
        // when sharing may be the cause: a lock waited for past SHARED_LOCK_TIMEOUT, a deadlock.
        group[error.index].reject(error.cause);
        retried = group.filter((_, index) => index !== error.index);
      } else if (!(error instanceof BatchFailed) && !(error instanceof BatchAborted) && !refusedByDatabase(error)) {
        // Ambiguous (a connection lost, maybe after the COMMIT went): what alone would answer. The
        // runners look at their rows again before anything else; applying again now could meet the
        // batch's own committed rows (found in review).
        for (const queued of group) queued.reject(error);
        return;
      }
    }
    if (states) {
      this.stats.shared++;
      group.forEach((queued, index) => queued.resolve(states[index]));
      return;
    }
    // Refused by the database as a whole (a move refused, an error at COMMIT, a lock or deadlock of
    // sharing, a batch that aborted the transaction without failing): nothing of it committed. Each
    // batch again on its own, to meet the outcome it would have met alone.
    this.stats.retriedAlone++;
    await Promise.all(retried.map((queued) => settle(queued, this.alone(queued.batch))));
  }

  private async alone(batch: ReadModelBatch): Promise<ProjectionState | null> {
    try {
      const states = await this.commitTogether([batch]);
      return states?.[0] ?? null;
    } catch (error) {
      throw error instanceof BatchFailed ? error.cause : error;
    }
  }

  /**
   * One transaction for `batches`; null when a move was refused (then nothing of it committed). A
   * batch's failing write is thrown as BatchFailed; with several batches, one that left the
   * transaction aborted without failing (it caught its own failed statement) as BatchAborted,
   * before the next batch runs into the abort and is blamed for it (found in review).
   */
  private async commitTogether(batches: readonly ReadModelBatch[], settings = ''): Promise<ProjectionState[] | null> {
    try {
      const { ended } = await transactionEndedBy(
        this.dataSource(),
        async (manager) => {
          for (const [index, batch] of batches.entries()) {
            try {
              await batch.apply(manager);
            } catch (error) {
              throw new BatchFailed(index, error);
            }
            if (batches.length > 1 && (await settledTransactionStatus(connectionOf(manager))) === 'E') throw new BatchAborted();
          }
        },
        async (queryRunner) => {
          const states = await advanceAllAndCommit(
            queryRunner,
            batches.map((batch) => batch.move),
          );
          // Thrown, so that transactionEndedBy rolls the refused transaction back.
          if (!states) throw new MoveRefused();
          return states;
        },
        settings,
      );
      return ended;
    } catch (error) {
      if (error instanceof MoveRefused) return null;
      throw error;
    }
  }
}

function connectionOf(manager: EntityManager): unknown {
  return (manager.queryRunner as { databaseConnection?: unknown } | undefined)?.databaseConnection;
}

/**
 * How long a batch of a shared transaction may wait for a lock (SET LOCAL lock_timeout, sent with
 * the START). A read model held back by a lock (an operator's LOCK TABLE, a rebuild's swap) would
 * otherwise hold back every batch of the transaction with it: past this, each goes on its own, and
 * only the held one waits (with no such limit, as before).
 */
export const SHARED_LOCK_TIMEOUT_MS = 100;
const SHARED_LOCK_TIMEOUT = `SET LOCAL lock_timeout = '${SHARED_LOCK_TIMEOUT_MS}ms'`;

/** SQLSTATEs sharing a transaction may cause: lock_not_available (SHARED_LOCK_TIMEOUT), deadlock, serialization failure. */
const CAUSED_BY_SHARING = new Set(['55P03', '40P01', '40001']);

/**
 * The SQLSTATE of a failed write: through ProjectionApplyError (the handler's error), TypeORM's
 * QueryFailedError (the driver's) and any `cause` a handler wrapped it in.
 */
function sqlStateOf(error: unknown): string | undefined {
  let current = error;
  for (let depth = 0; depth < 8 && current; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
    const inner = current as { error?: unknown; driverError?: unknown; cause?: unknown };
    current = current instanceof ProjectionApplyError ? inner.error : (inner.driverError ?? inner.cause);
  }
  return undefined;
}

class MoveRefused extends Error {}

/** A batch of a shared transaction left it aborted (25P02 for everything after it) without failing. */
class BatchAborted extends Error {}

/** The writes of the batch at `index` failed with `cause`. */
class BatchFailed extends Error {
  constructor(
    readonly index: number,
    override readonly cause: unknown,
  ) {
    super('a batch of the shared transaction failed');
  }
}

async function settle(queued: Queued, outcome: Promise<ProjectionState | null>): Promise<void> {
  try {
    queued.resolve(await outcome);
  } catch (error) {
    queued.reject(error);
  }
}
