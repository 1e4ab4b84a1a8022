// Relay benchmark (issue 17): events/s the relay publishes to NATS JetStream and its lag under the
// HTTP deposit load, then a backlog drained after a broker outage (the relay's own ceiling), next to
// the same run's baselines: the same messages (subjects, ids, headers, bodies) published straight to
// JetStream from a loop,
//   - one at a time, each acknowledgement awaited before the next publish;
//   - pipelined (the stronger): up to BENCH_RELAY_PIPELINE publishes in flight on one connection, sent
//     in log order (so each subject's messages are stored in order) and their acknowledgements awaited
//     in order; the stored sequence numbers are checked to follow the log order.
// The relay's drain rate is divided by the stronger of the two. Starts its own nats-server and
// service process (the compiled dist/src/main.js) on a fresh database of the run's PostgreSQL.
//   npm run bench:relay        (settings: BENCH_RELAY_* below; `npm run bench` runs it too)
import { setTimeout as sleep } from 'node:timers/promises';
import { type PubAck, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers as natsHeaders } from '@nats-io/transport-node';
import pg from 'pg';
import { call, startAppProcess } from '../test/support/app-process.js';
import { type RelayedMessage, jetStreamCount, readJetStream } from '../test/support/jetstream-reads.js';
import { startNatsServer } from '../test/support/nats-server.js';
import { type BenchServer, describeMachine, isMain, openBenchServer, percentile, report, round } from './bench-database.js';

const GROUP = 'relay';

export interface RelaySettings {
  /** Seconds of HTTP deposit load while the relay's lag is sampled. */
  readonly seconds: number;
  readonly connections: number;
  readonly accounts: number;
  /** Deposits written while the broker is down, drained once it is back. */
  readonly backlog: number;
  /** Publishes in flight at once in the pipelined baseline. */
  readonly pipeline: number;
  /** NATS_PUBLISH_CONCURRENCY given to the service ('service default' when unset). */
  readonly publishConcurrency: string;
}

export function relaySettings(env: NodeJS.ProcessEnv = process.env): RelaySettings {
  const accounts = Number(env.BENCH_RELAY_ACCOUNTS ?? 200);
  return {
    seconds: Number(env.BENCH_RELAY_SECONDS ?? 10),
    connections: Number(env.BENCH_RELAY_CONNECTIONS ?? 16),
    accounts,
    backlog: Number(env.BENCH_RELAY_BACKLOG ?? accounts * 10),
    pipeline: Number(env.BENCH_RELAY_PIPELINE ?? 256),
    publishConcurrency: env.NATS_PUBLISH_CONCURRENCY ?? 'service default',
  };
}

export async function runRelayBench(server: BenchServer, settings: RelaySettings = relaySettings()): Promise<void> {
  const { seconds, connections } = settings;
  const database = await server.database('bench_relay');
  const broker = await startNatsServer();
  const client = new pg.Pool({ connectionString: database.url, max: 2 });
  const app = await startAppProcess(database.url, {
    NATS_URL: broker.url,
    LOG_LEVEL: 'warn',
    ...(settings.publishConcurrency === 'service default' ? {} : { NATS_PUBLISH_CONCURRENCY: settings.publishConcurrency }),
  });
  try {
    const accounts: string[] = [];
    for (let index = 0; index < settings.accounts; index++) {
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
    report('HTTP deposits under load', round(deposits / loadSeconds), 'requests/s', {
      group: GROUP,
      key: 'relay.deposits',
      connections,
      seconds,
    });
    report('relay: events published, load start to caught up', round(relayed / drainedSeconds), 'events/s', {
      group: GROUP,
      key: 'relay.published',
      events: relayed,
    });
    report('relay: time to catch up after the load stopped', round((drainedSeconds - loadSeconds) * 1000), 'ms', {
      group: GROUP,
      key: 'relay.catch-up',
    });
    report('relay lag under load (checkpoint), p50 / p99', `${percentile(lagMs, 50)} / ${percentile(lagMs, 99)}`, 'ms', {
      group: GROUP,
      key: 'relay.lag.ms',
      samples: lagMs.length,
    });
    report('relay lag under load (checkpoint), p50 / max', `${percentile(lagEvents, 50)} / ${lagEvents.at(-1) ?? 0}`, 'events', {
      group: GROUP,
      key: 'relay.lag.events',
    });

    // The relay's own ceiling: a backlog written while the broker was down, drained once it is back
    // (timed from the first message of the backlog in the stream, so the reconnect does not count).
    const before = await jetStreamCount(broker.url, 'LEDGER');
    await broker.stop();
    const backlogStart = await head(client);
    await Promise.all(
      Array.from({ length: connections }, async (_, offset) => {
        for (let index = offset; index < settings.backlog; index += connections) {
          await call(app.url, 'POST', `/accounts/${accounts[index % accounts.length]}/deposits`, { amount: 100 });
        }
      }),
    );
    const backlog = (await head(client)) - backlogStart;
    await broker.start();
    let drainedBefore = 0;
    for (;;) {
      drainedBefore = (await jetStreamCount(broker.url, 'LEDGER')) - before;
      if (drainedBefore > 0) break;
      await sleep(5);
    }
    const drainStart = performance.now();
    await waitForRelay(client, 300_000);
    const drainRate = (backlog - drainedBefore) / ((performance.now() - drainStart) / 1000);
    report('relay: a backlog drained after a broker outage', round(drainRate), 'events/s', {
      group: GROUP,
      key: 'relay.drain',
      events: backlog,
    });

    // Baselines: the same messages, straight to JetStream from a loop (other streams, same server).
    const messages = await readJetStream(broker.url, 'LEDGER');
    // What the figures above stand on: every event of the log in the stream, once (a relay that
    // moved its checkpoint without publishing, or published twice, would show here).
    const logged = await head(client);
    const distinct = new Set(messages.map((message) => message.msgId)).size;
    report(
      'relay: events in the stream ÷ events in the log (distinct message ids; duplicates)',
      `${distinct} / ${logged}; ${messages.length - distinct}`,
      'events',
      {
        group: GROUP,
        key: 'relay.exactly-once',
        complete: distinct === logged,
        duplicates: messages.length - distinct,
      },
    );
    const sequential = await publishFromLoop(broker.url, 'BASELINE_SEQUENTIAL', messages, 1);
    report('baseline: the same messages published from a loop, one at a time (each ack awaited)', round(sequential.rate), 'events/s', {
      group: GROUP,
      key: 'relay.baseline.sequential',
      events: messages.length,
    });
    const pipelined = await publishFromLoop(broker.url, 'BASELINE_PIPELINED', messages, settings.pipeline);
    report(
      `baseline: the same messages published from a loop, pipelined (${settings.pipeline} in flight, acks awaited in order)`,
      round(pipelined.rate),
      'events/s',
      {
        group: GROUP,
        key: 'relay.baseline.pipelined',
        events: messages.length,
        inLogOrder: pipelined.inOrder,
        pipeline: settings.pipeline,
      },
    );
    const stronger = Math.max(sequential.rate, pipelined.rate);
    report('relay drain ÷ the stronger baseline', round(drainRate / stronger, 2), '×', {
      group: GROUP,
      key: 'relay.drain.ratio-to-baseline',
      baseline: pipelined.rate >= sequential.rate ? 'pipelined' : 'one at a time',
    });
  } finally {
    await app.kill();
    await client.end();
    await broker.dispose();
    await database.close();
  }
}

/**
 * Publishes `messages` in their order to a new stream, with at most `window` publishes in flight and
 * the acknowledgements awaited in order. One connection sends in the order of the calls, so the
 * stream stores them in log order; `inOrder` checks it (each ack's sequence one past the previous).
 */
async function publishFromLoop(
  natsUrl: string,
  stream: string,
  messages: readonly RelayedMessage[],
  window: number,
): Promise<{ rate: number; inOrder: boolean }> {
  const connection = await connect({ servers: natsUrl });
  try {
    const prefix = stream.toLowerCase();
    await (await jetstreamManager(connection)).streams.add({ name: stream, subjects: [`${prefix}.>`], duplicate_window: 120e9 });
    const js = jetstream(connection);
    const inFlight: Array<Promise<PubAck>> = [];
    let inOrder = true;
    let lastSeq = 0;
    const settle = async () => {
      const ack = await inFlight.shift()!;
      if (ack.seq !== lastSeq + 1) inOrder = false;
      lastSeq = ack.seq;
    };
    const began = performance.now();
    for (const message of messages) {
      const headers = natsHeaders();
      for (const [key, value] of Object.entries(message.headers)) if (key !== 'Nats-Msg-Id') headers.set(key, value);
      inFlight.push(
        js.publish(`${prefix}${message.subject.slice('ledger'.length)}`, JSON.stringify(message.body), { msgID: message.msgId, headers }),
      );
      if (inFlight.length >= window) await settle();
    }
    while (inFlight.length > 0) await settle();
    return { rate: messages.length / ((performance.now() - began) / 1000), inOrder };
  } finally {
    await connection.close();
  }
}

async function head(client: pg.Pool): Promise<number> {
  return Number((await client.query<{ n: string }>('SELECT count(*)::text AS n FROM events')).rows[0].n);
}

/** Until no segment of the relay has an event past its checkpoint. */
async function waitForRelay(client: pg.Pool, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await client.query<{ behind: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM events e, projection_checkpoints c WHERE c.projection = 'nats-relay'
         AND (e.transaction_id, e.position) > (c.transaction_id, c.position)) AS behind`,
    );
    if (!rows[0].behind) return;
    if (Date.now() > deadline) throw new Error('the relay did not catch up');
    await sleep(50);
  }
}

if (isMain(import.meta.url)) {
  const server = await openBenchServer();
  try {
    console.error(`machine: ${JSON.stringify(await describeMachine(server.url))}`);
    await runRelayBench(server);
  } finally {
    await server.close();
  }
}
