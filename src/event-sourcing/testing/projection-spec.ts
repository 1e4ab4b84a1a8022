import { AssertionError, deepStrictEqual } from 'node:assert/strict';
import type { DataSource, EntityManager } from 'typeorm';
import { type Projection, applyToProjection, handlesAny } from '../projection.js';
import type { RecordedEvent } from '../recorded-event.js';

export type Row = Record<string, unknown>;

export interface ProjectionSpecOptions {
  /** A DataSource on a database with the real migrations applied (or a getter, for beforeAll). */
  readonly dataSource: DataSource | (() => DataSource);
  /** Reads the projection's tables, e.g. `SELECT … FROM account_summaries ORDER BY id`: rows compare in order. */
  readonly rows: string;
  /**
   * The roles the events are applied and the rows read as (SET LOCAL ROLE), so a table the
   * migration forgot to grant fails the test as it would fail in production. Defaults to the
   * service's roles; null: as the connected user (who must otherwise be a superuser or a member).
   */
  readonly roles?: { readonly apply: string; readonly read: string } | null;
}

const DEFAULT_ROLES = { apply: 'ledger_projector', read: 'ledger_query' };
const ROLE_NAME = /^[a-z_][a-z0-9_]*$/;

/**
 * Given/when/then for a projection, on a real PostgreSQL:
 *
 *   const spec = projectionSpec(new AccountSummaryProjection(), { dataSource, rows: 'SELECT … ORDER BY id' });
 *   await spec.given([opened]).when([deposited]).then([{ id, balance: '100', … }]);
 *   await spec.given([opened]).when([deposited]).thenIdempotent();
 *
 * The events (built with TestEventLog, as the store records them) go through applyToProjection —
 * what the projection engine calls, inline or in a runner or a rebuild — after the same handlesAny
 * filter the runner applies: `given` as one batch, then `when` as the next. Every check runs in a
 * transaction of its own that is rolled back, so tests share one database and leave nothing behind.
 */
export function projectionSpec(projection: Projection, options: ProjectionSpecOptions) {
  const roles = options.roles === undefined ? DEFAULT_ROLES : options.roles;
  if (roles && !(ROLE_NAME.test(roles.apply) && ROLE_NAME.test(roles.read)))
    throw new Error(`projectionSpec: invalid role names ${JSON.stringify(roles)}`);
  const dataSource = () => (typeof options.dataSource === 'function' ? options.dataSource() : options.dataSource);

  /** Applies the batches in order, reads the rows, rolls everything back. */
  async function rowsAfter(batches: ReadonlyArray<readonly RecordedEvent[]>): Promise<Row[]> {
    const runner = dataSource().createQueryRunner();
    await runner.connect();
    try {
      await runner.startTransaction();
      const manager: EntityManager = runner.manager;
      if (roles) await manager.query(`SET LOCAL ROLE ${roles.apply}`);
      for (const batch of batches) {
        if (handlesAny(projection, batch)) await applyToProjection(projection, batch, manager);
      }
      if (roles) await manager.query(`SET LOCAL ROLE ${roles.read}`);
      return (await manager.query(options.rows)) as Row[];
    } finally {
      if (runner.isTransactionActive) await runner.rollbackTransaction();
      await runner.release();
    }
  }

  function same(actual: Row[], expected: readonly Row[], how: string): void {
    try {
      deepStrictEqual(actual, expected);
    } catch (error) {
      if (!(error instanceof AssertionError)) throw error;
      throw new AssertionError({ message: `${projection.name}, ${how}:\n${error.message}`, actual, expected, operator: 'deepStrictEqual' });
    }
  }

  function scenario(given: readonly RecordedEvent[], when: readonly RecordedEvent[]) {
    const all = [...given, ...when];
    return {
      /**
       * The rows equal `expected` after the events are applied as given (history, then the new
       * batch) and after they are applied one event per batch: a set-based applyBatch must not
       * depend on how the log is cut into batches.
       */
      async then(expected: readonly Row[]): Promise<void> {
        same(await rowsAfter([given, when]), expected, 'given then when');
        same(await rowsAfter(all.map((event) => [event])), expected, 'one event per batch');
      },
      /**
       * Applying an event already applied changes nothing (a runner that crashed before its
       * commit, a rebuild that overlaps the live checkpoint): the `when` batch again, everything
       * again, and each event again on its own after all of them — an older event replayed after
       * newer ones must not bring an older state back.
       */
      async thenIdempotent(): Promise<void> {
        const once = await rowsAfter([given, when]);
        same(await rowsAfter([given, when, when]), once, 'the new batch applied twice');
        same(await rowsAfter([given, when, all]), once, 'every event applied twice');
        for (const [index, event] of all.entries()) {
          same(
            await rowsAfter([given, when, [event]]),
            once,
            `event ${index} (position ${event.position}) applied again after all of them`,
          );
        }
      },
    };
  }

  return {
    /** Events the projection has already applied (one batch). */
    given(history: readonly RecordedEvent[]) {
      return { ...scenario(history, []), when: (batch: readonly RecordedEvent[]) => scenario(history, batch) };
    },
  };
}
