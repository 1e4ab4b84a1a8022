import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { EventType, NO_STREAM, UnitOfWorkConflict } from '../src/event-sourcing/index.js';
import { type EventStoreModule, startEventStoreModule } from './support/event-store-module.js';

// The ordering invariant at the level of the database and the store, attacked directly:
// - a transaction whose id is older than the one that wrote a stream's head cannot append to it
//   (SQLSTATE LE001), whoever inserts, so transaction ids never decrease along a stream;
// - versions follow each other (LE002);
// - position, transaction_id and recorded_at are the database's, whatever an INSERT sends;
// - a unit of work that meets LE001 starts over on a new transaction and succeeds, in order.

@EventType('test.OrderNoted')
class OrderNoted {
  constructor(readonly note: string) {}
}

let m: EventStoreModule;
const clients: pg.Client[] = [];
beforeAll(async () => {
  m = await startEventStoreModule({ events: [OrderNoted], poolSize: 6 });
});
afterAll(async () => {
  await Promise.all(clients.map((client) => client.end()));
  await m.close();
});

async function connect(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: m.database.url });
  await client.connect();
  clients.push(client);
  return client;
}

function insert(client: pg.Client, streamId: string, version: number, extra = ''): Promise<pg.QueryResult> {
  return client.query(
    `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
     VALUES ($1, $2, 'test.OrderNoted', 1, $3, '{"note":"x"}', '{}') ${extra}`,
    [streamId, version, randomUUID()],
  );
}

describe('the events_guard_insert trigger', () => {
  it('refuses an append from a transaction older than the one that wrote the stream head (LE001), and nothing is written', async () => {
    const streamId = `order-${randomUUID()}`;
    await m.store.append(streamId, [new OrderNoted('v1')], { expectedVersion: NO_STREAM });
    const older = await connect();
    const younger = await connect();
    await older.query('BEGIN');
    await older.query('SELECT pg_current_xact_id()'); // the older transaction takes its id now
    await younger.query('BEGIN');
    await insert(younger, streamId, 2);
    await younger.query('COMMIT');
    await expect(insert(older, streamId, 3)).rejects.toMatchObject({ code: 'LE001' });
    await older.query('ROLLBACK');
    const { rows } = await older.query('SELECT version FROM events WHERE stream_id = $1 ORDER BY version', [streamId]);
    expect(rows.map((row) => row.version)).toEqual([1, 2]);
  });

  it('lets one transaction append several versions of a stream, and an older transaction append after an older head', async () => {
    const streamId = `order-${randomUUID()}`;
    const client = await connect();
    await client.query('BEGIN');
    const first = await insert(client, streamId, 1, 'RETURNING position');
    const second = await insert(client, streamId, 2, 'RETURNING position');
    await client.query('COMMIT');
    // One position per event, no value wasted: a position with no event would make a
    // read-your-writes wait for an event that never comes.
    expect(Number(second.rows[0].position)).toBe(Number(first.rows[0].position) + 1);
    const older = await connect();
    await older.query('BEGIN');
    await older.query('SELECT pg_current_xact_id()');
    await insert(older, streamId, 3); // the head (v2) was written before this transaction began
    await older.query('COMMIT');
    const { rows } = await client.query('SELECT version FROM events WHERE stream_id = $1 ORDER BY transaction_id, position', [streamId]);
    expect(rows.map((row) => row.version)).toEqual([1, 2, 3]);
  });

  it('refuses a version that follows no existing version (LE002)', async () => {
    const client = await connect();
    await expect(insert(client, `order-${randomUUID()}`, 2)).rejects.toMatchObject({ code: 'LE002' });
  });

  it('sets position, transaction_id and recorded_at itself, whatever the INSERT sends (even the owner, even OVERRIDING SYSTEM VALUE)', async () => {
    const client = await connect();
    const streamId = `order-${randomUUID()}`;
    await client.query('BEGIN');
    const {
      rows: [{ xid }],
    } = await client.query('SELECT pg_current_xact_id()::text AS xid');
    const {
      rows: [{ before }],
    } = await client.query('SELECT max(position)::bigint AS before FROM events');
    const {
      rows: [row],
    } = await client.query(
      `INSERT INTO events (position, stream_id, version, type, schema_version, event_id, data, metadata, recorded_at, transaction_id)
       OVERRIDING SYSTEM VALUE
       VALUES (1, $1, 1, 'test.OrderNoted', 1, $2, '{"note":"x"}', '{}', '2001-01-01T00:00:00Z', '3')
       RETURNING position::bigint AS position, transaction_id::text AS transaction_id, recorded_at`,
      [streamId, randomUUID()],
    );
    await client.query('COMMIT');
    expect(Number(row.position)).toBeGreaterThan(Number(before));
    expect(row.transaction_id).toBe(xid);
    expect(Math.abs(new Date(row.recorded_at).getTime() - Date.now())).toBeLessThan(60_000);
  });
});

describe('a unit of work that meets a younger stream head', () => {
  it('starts over on a new transaction, once, and appends in version order', async () => {
    const streamId = `order-${randomUUID()}`;
    await m.store.append(streamId, [new OrderNoted('v1')], { expectedVersion: NO_STREAM });
    const other = `order-${randomUUID()}`;
    const younger = await connect();
    let runs = 0;
    const result = await m.store.transaction(async (tx) => {
      runs++;
      // The first run takes its transaction id (an append elsewhere), then a younger transaction
      // writes the stream's next version: appending after it from this transaction is refused.
      await tx.append(`${other}-${runs}`, [new OrderNoted('elsewhere')], { expectedVersion: NO_STREAM });
      if (runs === 1) {
        await younger.query('BEGIN');
        await insert(younger, streamId, 2);
        await younger.query('COMMIT');
      }
      const version = (await m.store.streamVersion(streamId)) as number;
      return tx.append(streamId, [new OrderNoted(`after v${version}`)], { expectedVersion: version });
    });
    expect(runs).toBe(2);
    expect(result.version).toBe(3);
    const rows = await m.dataSource.query('SELECT version FROM events WHERE stream_id = $1 ORDER BY transaction_id, position', [streamId]);
    expect(rows.map((row: { version: number }) => row.version)).toEqual([1, 2, 3]);
    // The first run's append elsewhere was rolled back with it.
    expect(await m.store.streamVersion(`${other}-1`)).toBe(0);
  });

  it('is never retried under a savepoint: a nested unit of work passes the conflict up to the outermost one', async () => {
    const streamId = `order-${randomUUID()}`;
    await m.store.append(streamId, [new OrderNoted('v1')], { expectedVersion: NO_STREAM });
    const younger = await connect();
    const seen: unknown[] = [];
    let runs = 0;
    await m.store.transaction(async (tx) => {
      runs++;
      await tx.append(`order-${randomUUID()}`, [new OrderNoted('id taken')], { expectedVersion: NO_STREAM });
      if (runs === 1) await insert(younger, streamId, 2); // autocommit: a younger transaction
      try {
        await m.store.transaction(async (inner) => inner.append(streamId, [new OrderNoted('next')], { expectedVersion: 2 }));
      } catch (error) {
        seen.push(error);
        throw error;
      }
    });
    expect(runs).toBe(2);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toBeInstanceOf(UnitOfWorkConflict);
  });
});
