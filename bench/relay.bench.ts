// Relay benchmark (issue 17): events/s the relay publishes to NATS JetStream and its lag under the
// HTTP deposit load, next to the same-run baseline: the same messages (subjects, ids, headers,
// bodies) published straight to JetStream from a loop, each acknowledgement awaited like the relay
// awaits it. Starts its own PostgreSQL database, nats-server and service process.
//   npm run bench:relay        (BENCH_RELAY_SECONDS, BENCH_RELAY_CONNECTIONS, BENCH_RELAY_ACCOUNTS)
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers as natsHeaders } from '@nats-io/transport-node';
import pg from 'pg';
import { call, startAppProcess } from '../test/support/app-process.js';
import { startNatsServer } from '../test/support/nats-server.js';
import { jetStreamCount, readJetStream } from '../test/support/jetstream-reads.js';
import { isMain, openBenchDatabase, percentile, report, round } from './bench-database.js';

const GROUP = 'relay';

export async function runRelayBench(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const seconds = Number(env.BENCH_RELAY_SECONDS ?? 10);
  const connections = Number(env.BENCH_RELAY_CONNECTIONS ?? 16);
  const accountCount = Number(env.BENCH_RELAY_ACCOUNTS ?? 200);
  const database = await openBenchDatabase('relay');
  const broker = await startNatsServer();
  const client = new pg.Pool({ connectionString: database.url, max: 2 });
  const app = await startAppProcess(database.url, { NATS_URL: broker.url });
  try {
    const accounts: string[] = [];
    for (let index = 0; index < accountCount; index++) {
      accounts.push((await call(app.url, 'POST', '/accounts', { ownerName: `Bench ${index}`, currency: 'EUR' })).body.id);
    }
    await waitForRelay(client, 120_000);

    // The service under deposit load; the relay's lag sampled meanwhile (events and ms behind).
    const startedAt = performance.now();
    const headBefore = await head(client);
    let deposits = 0;
    let running = true;
    const lagEvents: number[] = [];
    const lagMs: number[] = [];
    const sampler = (async () => {
      while (running) {
        const status = (await call(app.url, 'GET', '/admin/projections/nats-relay')).body;
        lagEvents.push(status.lagEvents);
        lagMs.push(status.lagMs);
        await sleep(100);
      }
    })();
    const worker = async (offset: number) => {
      for (let index = offset; performance.now() - startedAt < seconds * 1000; index += connections) {
        const response = await call(app.url, 'POST', `/accounts/${accounts[index % accounts.length]}/deposits`, { amount: 100 });
        if (response.status === 200) deposits++;
      }
    };
    await Promise.all(Array.from({ length: connections }, (_, offset) => worker(offset)));
    const loadSeconds = (performance.now() - startedAt) / 1000;
    await waitForRelay(client, 300_000);
    const drainedSeconds = (performance.now() - startedAt) / 1000;
    running = false;
    await sampler;
    const relayed = (await head(client)) - headBefore;
    lagEvents.sort((a, b) => a - b);
    lagMs.sort((a, b) => a - b);
    report('HTTP deposits under load', round(deposits / loadSeconds), 'requests/s', { group: GROUP, connections, seconds });
    report('relay: events published, load start to caught up', round(relayed / drainedSeconds), 'events/s', {
      group: GROUP,
      events: relayed,
    });
    report('relay: time to catch up after the load stopped', round((drainedSeconds - loadSeconds) * 1000), 'ms', { group: GROUP });
    report('relay lag under load, p50 / p99', `${percentile(lagMs, 50)} / ${percentile(lagMs, 99)}`, 'ms', { group: GROUP });
    report('relay lag under load, p50 / max', `${percentile(lagEvents, 50)} / ${lagEvents.at(-1) ?? 0}`, 'events', { group: GROUP });

    // The relay's own ceiling: a backlog written while the broker was down, drained once it is back
    // (timed from the first message of the backlog in the stream, so the reconnect does not count).
    const before = await jetStreamCount(broker.url, 'LEDGER');
    await broker.stop();
    const backlogStart = await head(client);
    await Promise.all(
      Array.from({ length: connections }, async (_, offset) => {
        for (let index = offset; index < accounts.length * 10; index += connections) {
          await call(app.url, 'POST', `/accounts/${accounts[index % accounts.length]}/deposits`, { amount: 100 });
        }
      }),
    );
    const backlog = (await head(client)) - backlogStart;
    await broker.start();
    let drainStart = 0;
    let drainedBefore = 0;
    for (;;) {
      drainedBefore = (await jetStreamCount(broker.url, 'LEDGER')) - before;
      if (drainedBefore > 0) break;
      await sleep(5);
    }
    drainStart = performance.now();
    await waitForRelay(client, 300_000);
    const drainRate = (backlog - drainedBefore) / ((performance.now() - drainStart) / 1000);
    report('relay: a backlog drained after a broker outage', round(drainRate), 'events/s', { group: GROUP, events: backlog });

    // Baseline: the same messages, straight to JetStream from a loop (another stream, same server).
    const messages = await readJetStream(broker.url, 'LEDGER');
    const connection = await connect({ servers: broker.url });
    try {
      await (await jetstreamManager(connection)).streams.add({ name: 'BASELINE', subjects: ['baseline.>'], duplicate_window: 120e9 });
      const js = jetstream(connection);
      const began = performance.now();
      for (const message of messages) {
        const headers = natsHeaders();
        for (const [key, value] of Object.entries(message.headers)) if (key !== 'Nats-Msg-Id') headers.set(key, value);
        await js.publish(`baseline${message.subject.slice('ledger'.length)}`, JSON.stringify(message.body), {
          msgID: message.msgId,
          headers,
        });
      }
      const baseline = messages.length / ((performance.now() - began) / 1000);
      report('baseline: the same messages published from a loop, each ack awaited', round(baseline), 'events/s', {
        group: GROUP,
        events: messages.length,
      });
    } finally {
      await connection.close();
    }
  } finally {
    await app.kill();
    await client.end();
    await broker.dispose();
    await database.close();
  }
}

async function head(client: pg.Pool): Promise<number> {
  return Number((await client.query<{ n: string }>('SELECT count(*)::text AS n FROM events')).rows[0].n);
}

async function waitForRelay(client: pg.Pool, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await client.query<{ behind: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM events e, projection_checkpoints c WHERE c.name = 'nats-relay'
         AND (e.transaction_id, e.position) > (c.transaction_id, c.position)) AS behind`,
    );
    if (!rows[0].behind) return;
    if (Date.now() > deadline) throw new Error('the relay did not catch up');
    await sleep(50);
  }
}

if (isMain(import.meta.url)) {
  runRelayBench().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
