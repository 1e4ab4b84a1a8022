import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DataSource, type EntityManager } from 'typeorm';
import { dataSourceOptions } from '../src/database/data-source-options.js';
import { EventTypeRegistry } from '../src/event-sourcing/event-type.registry.js';
import { StreamReads } from '../src/event-sourcing/stream-reads.js';
import { startTestApp } from './support/test-app.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

// Review (prepared statements): the EventStore reads through the ambient unit of work's manager
// (`ambient.getStore()?.manager`). A read that runs after that unit of work ended (work that left a
// read pending behind it) used to be refused by TypeORM (QueryRunnerAlreadyReleasedError). prepared()
// goes straight to the runner's pg connection, which is back in the pool: the read runs on whichever
// borrower holds it now, inside that borrower's transaction.

let database: TestDatabase;
let dataSource: DataSource;

beforeAll(async () => {
  database = await createTestDatabase();
  await (await startTestApp({}, database)).close(); // migrates
  dataSource = await new DataSource(dataSourceOptions(database.url, 1)).initialize();
}, 120_000);
afterAll(async () => {
  await dataSource?.destroy();
  await database?.drop();
});

describe('a stream read through a unit of work that has ended', () => {
  it('is refused, never run inside another borrower’s transaction', async () => {
    let ended: EntityManager | undefined;
    await dataSource.transaction(async (manager) => {
      ended = manager;
    });
    const reads = new StreamReads(() => ended!, new EventTypeRegistry());

    // Another borrower (the pool's one connection) appends in a transaction it will roll back.
    const other = dataSource.createQueryRunner();
    await other.connect();
    await other.startTransaction();
    await other.query(
      `INSERT INTO events (stream_id, version, type, event_id, data, metadata)
       VALUES ('review-phantom', 1, 'review.Phantom', gen_random_uuid(), '{}', '{}')`,
    );
    const answer = await reads.streamVersion('review-phantom').then(
      (version) => `version ${version}`,
      (error: unknown) => (error as Error).constructor.name,
    );
    await other.rollbackTransaction();
    await other.release();

    // Before the change: QueryRunnerProviderAlreadyReleasedError (TypeORM's refusal). A version of 1 is an event nobody committed.
    expect(answer).toMatch(/AlreadyReleasedError$/);
  });
});
