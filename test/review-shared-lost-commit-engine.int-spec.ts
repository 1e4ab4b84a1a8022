// Hostile review (found, fixed), through the engine: a connection lost during a shared COMMIT message
// that the server committed. Each batch was then applied again alone; a read model keyed by the event (not
// idempotent, as most are) fails its first INSERT with 23505 before its fence is checked, and the
// engine counts that as a failed attempt of a batch that committed. At PROJECTION_MAX_ATTEMPTS=1
// the read model is stopped ('failed', failed_position behind its checkpoint).
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import { type EntityManager } from 'typeorm';
import { NO_STREAM, type Projection, ProjectionHandlers, type RecordedEvent } from '../src/event-sourcing/index.js';
import { type EngineModule, Ticked, checkpointRow, eventually, startEngineModule, withClient } from './support/projection-fixtures.js';
import { type DatabaseProxy, startCuttingProxy } from './support/tcp-proxy.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

function defineKeyed(name: string) {
  const table = `${name.replace(/[^a-z0-9]/gi, '_')}_rows`;
  @Injectable()
  class Keyed implements Projection {
    static readonly table = table;
    readonly name = name;
    readonly mode = 'async' as const;
    readonly tables = [table];
    readonly handlers = new ProjectionHandlers().on(Ticked, async (event: RecordedEvent, manager: EntityManager) => {
      await manager.query(`INSERT INTO ${table} (position) VALUES ($1)`, [event.position]);
    });
  }
  Object.defineProperty(Keyed, 'name', { value: `Keyed_${table}` });
  return Keyed;
}

const Left = defineKeyed('review-lost-left');
const Right = defineKeyed('review-lost-right');

describe('a connection lost during a shared COMMIT that committed', () => {
  let database: TestDatabase;
  let proxy: DatabaseProxy;
  let engine: EngineModule;
  let cut = false;
  let armed = false;

  beforeAll(async () => {
    database = await createTestDatabase();
    // Migrations by a first engine straight on the database, then the tables.
    const setup = await startEngineModule({ url: database.url, events: [Ticked], projections: [] });
    await setup.close();
    await withClient(database.url, async (client) => {
      for (const table of [Left.table, Right.table]) await client.query(`CREATE TABLE ${table} (position bigint PRIMARY KEY)`);
    });
    // The first SHARED end of batch (two moves in one message) reaches the server; its answer is lost.
    proxy = await startCuttingProxy(
      database.url,
      (text) => armed && !cut && (cut = text.split('ledger_advance_checkpoint').length - 1 >= 2),
    );
    engine = await startEngineModule({
      url: proxy.url,
      events: [Ticked],
      projections: [Left, Right],
      engine: { leaseTtlMs: 60_000, pollIntervalMs: 5_000, retryBaseMs: 10, batchWindowMs: 0, maxAttempts: 1 },
    });
    await eventually('both to hold their leases', async () =>
      (await checkpointRow(engine.dataSource, 'review-lost-left'))?.leaseOwner &&
      (await checkpointRow(engine.dataSource, 'review-lost-right'))?.leaseOwner
        ? true
        : undefined,
    );
  });
  afterAll(async () => {
    await engine?.close();
    await proxy?.close();
    await database?.drop();
  });

  it('stops neither read model: each batch committed once, nothing counted as a failure', async () => {
    armed = true;
    for (let n = 1; n <= 20 && !cut; n++) {
      await engine.store.append(`review-lost-${n}`, [new Ticked({ n })], { expectedVersion: NO_STREAM });
      await sleep(300);
    }
    expect(cut).toBe(true);
    await sleep(2_000);
    const state = await withClient(
      database.url,
      async (client) =>
        (
          await client.query(
            `SELECT name, status, attempts, failed_position, position, last_error FROM projection_checkpoints WHERE projection LIKE 'review-lost-%' ORDER BY name`,
          )
        ).rows,
    );
    for (const row of state) {
      expect(row.last_error).toBeNull();
      expect(row.status).toBe('running');
    }
  });
});
