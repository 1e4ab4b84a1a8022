import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { EventNotifier } from '../src/event-sourcing/index.js';
import { eventually } from './support/projection-fixtures.js';
import { type TestApp, startTestApp } from './support/test-app.js';

/**
 * From the hostile review of f5a0304 (watched failing then: 40,001 entries, 40,000 of them expired):
 * ListeningPeers.any() pruned forgotten entries only up to the first live one (Map insertion order),
 * and a real peer that keeps saying `here` stays first, so every distinct id ever heard (forged ones
 * included: NOTIFY needs no privilege) stayed in memory for the life of the process. Now at most
 * MAX_PEERS (1,000) ids are held, and forgotten ones are pruned at least once a second.
 */
describe('review: the peers map under many distinct (expired) ids', () => {
  const QUIET = { PROJECTION_POLL_INTERVAL_MS: '60000', PROJECTION_LEASE_TTL_MS: '600000' };
  let writer: TestApp;
  let reader: TestApp;
  let client: pg.Client;

  const expiresAt = (app: TestApp) =>
    (app.app.get(EventNotifier) as unknown as { peers: { expiresAt: Map<string, number> } }).peers.expiresAt;

  beforeAll(async () => {
    writer = await startTestApp({ ...QUIET, PROJECTIONS_ENABLED: 'false' });
    reader = await startTestApp(QUIET, writer.database); // a real peer: the writer's first entry
    client = new pg.Client({ connectionString: writer.database.url });
    await client.connect();
  }, 60_000);
  afterAll(async () => {
    await client?.end();
    await reader?.close();
    await writer?.close();
  });

  it('forgets ids whose TTL ran out (bounded by the live peers), while a real peer is present', async () => {
    await eventually('the writer to hear the reader', async () => (expiresAt(writer).size === 1 ? true : undefined));
    // 20 000 distinct ids, each stating a 10 ms interval: forgotten 50 ms later by the rules.
    await client.query(`SELECT pg_notify('ledger_instances', 'here:ghost-' || i || ':10') FROM generate_series(1, 20000) AS i`);
    await client.query(`SELECT pg_notify('events_appended', 'appended:old-ghost-' || i) FROM generate_series(1, 20000) AS i`);
    // The writer has heard them all once an append it makes after them is seen on its own connection.
    await eventually('the ghosts to be heard', async () =>
      expiresAt(writer).has('old-ghost-20000') || expiresAt(writer).size >= 1000 ? true : undefined,
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(expiresAt(writer).size).toBeLessThanOrEqual(1000);
    await new Promise((resolve) => setTimeout(resolve, 10_500)); // past every ghost's TTL (10 s at most)
    // Appends call peers.any(), which prunes.
    for (let index = 0; index < 3; index++) {
      await writer.http
        .post('/accounts')
        .send({ ownerName: `Prune ${index}`, currency: 'EUR' })
        .expect(201);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = performance.now();
    const map = expiresAt(writer);
    const expired = [...map.values()].filter((at) => at <= now).length;
    expect({ size: map.size, expired }).toEqual({ size: 1, expired: 0 }); // the reader alone
  }, 60_000);
});
