import type pg from 'pg';
import { type EntityManager, QueryFailedError, type QueryRunner } from 'typeorm';
import { LEASE_LOST_SQLSTATE } from './lease-fence.js';
import { type ProjectionState, type Row, toState } from './projection-checkpoint-row.js';
import type { Checkpoint } from './recorded-event.js';
import { type PreparedStatement, prepared, sql } from './sql.js';
import { finiteNumberLiteral, textLiteral, wholeNumberLiteral } from './sql-literals.js';

/**
 * Ends a process manager's batch (projection-reactions.ts): its steps committed in transactions of
 * their own, so the checkpoint's move is alone in its transaction, and one fenced autocommit
 * statement is that transaction. Moves the checkpoint from `from` to `to` (resetting attempts and
 * renewing the lease) and writes `completedAhead`, or, with no `to`, writes only `completedAhead`
 * (the checkpoint did not move: attempts are kept, a failure is counted after this), only while
 * `owner` holds the lease with this token, the process manager runs and the stored checkpoint is
 * still exactly `from`. Answers the row as it now stands, or null when any of that no longer held.
 * Before: START, a SELECT … FOR UPDATE of the row, the UPDATE, COMMIT — four round trips.
 */
export async function advanceReaction(
  manager: EntityManager,
  name: string,
  holder: { readonly owner: string; readonly token: string },
  from: Checkpoint,
  to: Checkpoint | undefined,
  ttlMs: number,
  completedAhead: readonly number[],
): Promise<ProjectionState | null> {
  const fence = `WHERE name = $1 AND lease_owner = $2 AND lease_token = $3::bigint AND lease_expires_at > clock_timestamp()
         AND status = 'running' AND transaction_id = $4::xid8 AND position = $5`;
  const fenced = [name, holder.owner, holder.token, from.transactionId, from.position];
  const { rows } = to
    ? await sql<Row>(
        manager,
        `UPDATE projection_checkpoints
           SET transaction_id = $6::xid8, position = $7, attempts = 0, updated_at = now(),
               last_error = NULL, failed_position = NULL, failed_at = NULL, completed_ahead = $9::bigint[],
               lease_expires_at = clock_timestamp() + make_interval(secs => $8::double precision / 1000)
         ${fence}
         RETURNING *`,
        [...fenced, to.transactionId, to.position, ttlMs, completedAhead],
      )
    : await sql<Row>(
        manager,
        `UPDATE projection_checkpoints SET completed_ahead = $6::bigint[], updated_at = now()
         ${fence}
         RETURNING *`,
        [...fenced, completedAhead],
      );
  return rows.length ? toState(rows[0]) : null;
}

/**
 * Ends a read model's live batch: in the one message that commits the transaction which applied the
 * batch, moves the live checkpoint from `from` to `to` and renews the lease (ledger_advance_checkpoint,
 * migration 1764230400020), only while `owner` holds the lease with this token, the projection runs,
 * and the stored checkpoint is still exactly `from`. Answers the row as it now stands, committed;
 * null when any of that no longer held: the function raised, the COMMIT did not run, and the caller
 * rolls the batch back.
 *
 * As with any COMMIT, an error from a connection lost during the message is ambiguous: the server
 * may still run it once the row is free (it may be waiting behind a lease renewal or a takeover's
 * lock) and commit the batch with its checkpoint. Both stay consistent, and nothing is applied twice:
 * the runner reloads its row after the error, and a batch from the old checkpoint would be refused.
 * Only the error is spurious, and the local `advanced` signal for that batch is not given (a query
 * waiting on it looks again after its fallback interval, or at the next batch). Test
 * read-model-commit-review.
 *
 * Why fenced at the end: locking the row with a SELECT … FOR UPDATE before applying cost a round
 * trip per batch, and a holder that lost the lease while applying finds the row changed under it.
 * Why with the COMMIT: the move locks the row, and sent on its own it stayed locked for a round trip
 * more — across any pause of this process there, during which a takeover waited (test
 * read-model-commit); it is also one round trip fewer per batch. Simple protocol, so the values go
 * in as literals (sql-literals.ts): strings quoted by the driver, numbers and ids checked first.
 */
export async function advanceAndCommit(
  queryRunner: QueryRunner,
  name: string,
  owner: string,
  token: string,
  from: Checkpoint,
  to: Checkpoint,
  ttlMs: number,
): Promise<ProjectionState | null> {
  const moved = await advanceAllAndCommit(queryRunner, [{ name, owner, token, from, to, ttlMs }]);
  return moved?.[0] ?? null;
}

/**
 * advanceAndCommit for the batches of several read models applied in one transaction
 * (read-model-batch-commits.ts): every move and the COMMIT in one message, the COMMIT run only if
 * every move was made. Answers the rows in the order of `moves`, committed; null when any move was
 * refused (which one is not told: the caller retries each batch on its own). One row at most once.
 */
export async function advanceAllAndCommit(queryRunner: QueryRunner, moves: readonly CheckpointPass[]): Promise<ProjectionState[] | null> {
  if (new Set(moves.map((move) => move.name)).size !== moves.length) throw new Error('a checkpoint row can move only once per message');
  const client = (await queryRunner.connect()) as pg.PoolClient;
  const message = [...moves.map(advanceCall), 'COMMIT'].join('; ');
  let results: Array<pg.QueryResult<Row>>;
  try {
    results = (await client.query<Row>(message)) as unknown as Array<pg.QueryResult<Row>>;
  } catch (error) {
    if ((error as { code?: string }).code === LEASE_LOST_SQLSTATE) return null;
    throw new QueryFailedError(message, [], error as Error); // the COMMIT may be what failed (a deferred constraint)
  }
  return moves.map((_, index) => toState(results[index].rows[0]));
}

function advanceCall({ name, owner, token, from, to, ttlMs }: CheckpointPass): string {
  return (
    `SELECT * FROM ledger_advance_checkpoint(${textLiteral(name)}, ${textLiteral(owner)}, ${wholeNumberLiteral(token)}::bigint, ` +
    `'${wholeNumberLiteral(from.transactionId)}'::xid8, ${wholeNumberLiteral(from.position)}, ` +
    `'${wholeNumberLiteral(to.transactionId)}'::xid8, ${wholeNumberLiteral(to.position)}, ${finiteNumberLiteral(ttlMs)}::double precision)`
  );
}

/** A segment's checkpoint to move from `from` to `to` past events it does not handle, by its lease's holder. */
export interface CheckpointPass {
  readonly name: string;
  readonly owner: string;
  readonly token: string;
  readonly from: Checkpoint;
  readonly to: Checkpoint;
  readonly ttlMs: number;
}

/** Prepared: its planning took twice its execution (docs/BENCHMARKS.md). */
const ADVANCE_PAST_SQL: PreparedStatement = {
  name: 'ledger_checkpoints_advance_past_v1',
  text: `UPDATE projection_checkpoints AS c
     SET transaction_id = p.to_transaction, position = p.to_position, attempts = 0, updated_at = now(),
         last_error = NULL, failed_position = NULL, failed_at = NULL,
         lease_expires_at = clock_timestamp() + make_interval(secs => p.ttl_ms / 1000)
     FROM unnest($1::text[], $2::text[], $3::bigint[], $4::xid8[], $5::bigint[], $6::xid8[], $7::bigint[], $8::double precision[])
          AS p(name, owner, token, from_transaction, from_position, to_transaction, to_position, ttl_ms)
     WHERE c.name = p.name AND c.lease_owner = p.owner AND c.lease_token = p.token AND c.lease_expires_at > clock_timestamp()
       AND c.status = 'running' AND c.transaction_id = p.from_transaction AND c.position = p.from_position
     RETURNING c.name`,
};

/**
 * Moves live checkpoints past events their projections do not handle, in one autocommit statement,
 * each row fenced like a batch: only while its `owner` holds the lease with this token, the
 * projection runs, and the stored checkpoint is still exactly `from`. Answers the names of the rows
 * it moved (those where all of that still held). One name at most once.
 */
export async function advancePast(manager: EntityManager, passes: readonly CheckpointPass[]): Promise<Set<string>> {
  const rows = await prepared<{ name: string }>(manager, ADVANCE_PAST_SQL, [
    passes.map((pass) => pass.name),
    passes.map((pass) => pass.owner),
    passes.map((pass) => pass.token),
    passes.map((pass) => pass.from.transactionId),
    passes.map((pass) => pass.from.position),
    passes.map((pass) => pass.to.transactionId),
    passes.map((pass) => pass.to.position),
    passes.map((pass) => pass.ttlMs),
  ]);
  return new Set(rows.map((row) => row.name));
}
