import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { LiveFeed } from '../src/event-log/live-feed.js';
import { testToken } from './support/auth.js';
import { eventually } from './support/projection-fixtures.js';
import { portOf } from './support/sse-client.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// Found in review (live feed slot leak): a client that goes away after its stream was admitted but
// before LiveConnection subscribed to the response's 'close' (here: while startingPoint() reads the
// head of the log) is never seen as gone. On a quiet log its slot is held forever (idle() writes a
// keep-alive to the dead socket every LIVE_FEED_HEARTBEAT_MS and never notices), so a client that
// does this LIVE_FEED_MAX_CONNECTIONS_PER_CLIENT times is locked out with 429 until an event arrives.

describe('a live stream aborted during its handshake frees its slot', () => {
  let t: TestApp;
  let port: number;
  beforeAll(async () => {
    t = await startTestApp({ LIVE_FEED_HEARTBEAT_MS: '200' });
    await t.app.listen(0, '127.0.0.1');
    port = portOf(t.app);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('the slot of a client gone while its starting point was read is released', async () => {
    const feed = t.app.get(LiveFeed);
    // Hold the starting point's read back: an ACCESS EXCLUSIVE lock on events (as a slow database would).
    const locker = t.dataSource.createQueryRunner();
    await locker.connect();
    await locker.startTransaction();
    try {
      await locker.query('LOCK TABLE events IN ACCESS EXCLUSIVE MODE');
      const client = request({
        host: '127.0.0.1',
        port,
        path: '/events/live',
        headers: { authorization: `Bearer ${testToken()}`, accept: 'text/event-stream' },
      });
      client.on('error', () => undefined);
      client.end();
      await eventually('the stream to be admitted', async () => (feed.slots.open === 1 ? true : undefined), 20_000, 20);
      client.destroy(); // the client goes while the server reads its starting point
      await sleep(300);
    } finally {
      // Even when the test fails: the lock held would keep the app from closing (its readers wait on it).
      await locker.rollbackTransaction();
      await locker.release();
    }
    // Nothing is written to the log: the server sends only keep-alives (every 200 ms here), and none of them notices the dead socket.
    await sleep(3000);
    expect(feed.slots.open).toBe(0);
  });
});
