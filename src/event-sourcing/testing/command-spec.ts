import { AssertionError, deepStrictEqual, fail } from 'node:assert/strict';
import type { INestApplicationContext } from '@nestjs/common';
import { type Command, CommandBus } from '@nestjs/cqrs';
import { DataSource } from 'typeorm';
import { EventStore } from '../event-store.js';
import { NO_STREAM } from '../expected-version.js';

/** What commandSpec needs of the application: a Nest context (TestingModule, INestApplication). */
export type CommandSpecApp = Pick<INestApplicationContext, 'get'>;

/** An event the command should have appended: its stream, the version it got, its data. */
export interface ExpectedEvent {
  readonly streamId: string;
  readonly version: number;
  readonly data: object;
}

/**
 * Given/when/then for a command against the real store, through the real Nest module graph:
 *
 *   const spec = commandSpec(() => moduleRef);
 *   await spec.given(accountStreamId(id), [opened, deposited(100, 100)])
 *     .when(new WithdrawMoney(id, 30))
 *     .then([{ streamId: accountStreamId(id), version: 3, data: withdrawn(30, 70) }]);
 *   await spec.given(…).when(new WithdrawMoney(id, 500)).thenThrows(InsufficientFundsError);
 *
 * `given` appends through EventStore.append (stored, upcast and read back as any event); `when` sends
 * the command on the CommandBus to its handler; `then` compares every event appended to the log
 * while the command ran (in any stream, in log order, read back through the store) with the expected
 * ones, and `thenThrows` checks the error's class and that the log did not move. Each test uses
 * streams of its own (fresh ids): the database is shared by the tests of a file.
 */
export function commandSpec(app: () => CommandSpecApp) {
  const given = (history: ReadonlyArray<readonly [string, readonly object[]]>) => ({
    /** More events, in another stream or the same one. */
    given: (streamId: string, events: readonly object[]) => given([...history, [streamId, events]]),
    when: <R>(command: Command<R>) => scenario(history, command),
  });

  function scenario<R>(history: ReadonlyArray<readonly [string, readonly object[]]>, command: Command<R>) {
    async function run(): Promise<{ outcome: { result: R } | { error: unknown }; before: number }> {
      const store = app().get(EventStore);
      for (const [streamId, events] of history) {
        const version = await store.streamVersion(streamId);
        await store.append(streamId, events, { expectedVersion: version === 0 ? NO_STREAM : version });
      }
      const before = await lastPosition();
      try {
        return { outcome: { result: await app().get(CommandBus).execute(command) }, before };
      } catch (error) {
        return { outcome: { error }, before };
      }
    }

    async function lastPosition(): Promise<number> {
      const [row] = (await app().get(DataSource).query('SELECT coalesce(max(position), 0)::text AS position FROM events')) as [
        { position: string },
      ];
      return Number(row.position);
    }

    /** The events appended after `before`, in log order, as the store reads them back. */
    async function appendedAfter(before: number): Promise<ExpectedEvent[]> {
      const rows = (await app()
        .get(DataSource)
        .query('SELECT stream_id, version FROM events WHERE position > $1 ORDER BY position', [before])) as Array<{
        stream_id: string;
        version: number;
      }>;
      const store = app().get(EventStore);
      const appended: ExpectedEvent[] = [];
      for (const row of rows) {
        const [event] = await store.readStream(row.stream_id, { fromVersion: row.version, toVersion: row.version });
        appended.push({ streamId: event.streamId, version: event.version, data: event.data });
      }
      return appended;
    }

    return {
      /** The command succeeded and appended exactly these events; resolves to the command's result. */
      async then(expected: readonly ExpectedEvent[]): Promise<R> {
        const { outcome, before } = await run();
        if ('error' in outcome) throw outcome.error;
        const appended = await appendedAfter(before);
        try {
          deepStrictEqual(appended, expected);
        } catch (error) {
          if (!(error instanceof AssertionError)) throw error;
          throw new AssertionError({
            message: `${command.constructor.name}: other events appended than expected\n${error.message}`,
            actual: appended,
            expected,
            operator: 'deepStrictEqual',
          });
        }
        return outcome.result;
      },
      /** The command was refused with this error class, and nothing at all was appended. */
      async thenThrows<E extends Error>(errorClass: new (...args: never[]) => E, check?: (error: E) => void): Promise<void> {
        const { outcome, before } = await run();
        if (!('error' in outcome)) fail(`${command.constructor.name}: expected ${errorClass.name} to be thrown, it succeeded`);
        if (!(outcome.error instanceof errorClass)) throw outcome.error;
        check?.(outcome.error);
        const appended = await appendedAfter(before);
        if (appended.length) fail(`${command.constructor.name} was refused but appended ${JSON.stringify(appended)}`);
      },
    };
  }

  return {
    /** Events already in a stream before the command (appended through the store, in this order). */
    given: (streamId: string, events: readonly object[]) => given([[streamId, events]]),
    /** No history at all: the command meets empty streams. */
    when: <R>(command: Command<R>) => scenario([], command),
  };
}
