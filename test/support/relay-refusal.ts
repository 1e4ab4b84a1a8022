import { expect } from '@jest/globals';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { type AppProcess, call } from './app-process.js';
import { checkpointRow, untilNothingHeldBack } from './projection-fixtures.js';
import { readJetStream } from './relay-fixtures.js';

/**
 * The relay refusal scenario of the relay restart tests, up to the restart: one account opened and
 * published; the stream's max_msg_size lowered so that a bigger AccountOpened is refused while the
 * lanes publish five small ones past it (the engine retries the refused one: the checkpoint is held);
 * then the operator's fix — the service stopped (graceful), the limit raised — and a pause past the
 * (shortened, 1 s) duplicate window, as a restart is past the production 2 minutes. The caller starts
 * the service again as its case needs and counts the messages.
 */
export async function refuseOneEventThenStop(app: AppProcess, brokerUrl: string, client: pg.Pool): Promise<void> {
  const open = async (ownerName: string) => {
    const response = await call(app.url, 'POST', '/accounts', { ownerName, currency: 'EUR' });
    expect(response.status).toBe(201);
  };
  await open('x');
  let messages: Awaited<ReturnType<typeof readJetStream>> = [];
  for (let i = 0; i < 100 && messages.length === 0; i++) {
    await sleep(100);
    messages = await readJetStream(brokerUrl, 'LEDGER').catch(() => []);
  }
  expect(messages).toHaveLength(1);
  const headerBytes = Object.entries(messages[0].headers).reduce((sum, [k, v]) => sum + k.length + v.length + 4, 12);
  const size = JSON.stringify(messages[0].body).length + headerBytes;
  const connection = await connect({ servers: brokerUrl });
  try {
    const manager = await jetstreamManager(connection);
    const info = await manager.streams.info('LEDGER');
    // A bigger AccountOpened (a 100-character owner name) is refused; the small ones are not.
    await manager.streams.update('LEDGER', { ...info.config, max_msg_size: size + 50, duplicate_window: 1_000_000_000 });

    await open('y'.repeat(100));
    for (let i = 0; i < 5; i++) await open(`s${i}`);
    // The 4 s are timed from when the relay can read these events: a transaction of another test file
    // (the commit-safe horizon is server-wide) may hold them back for a while.
    await untilNothingHeldBack(client);
    await sleep(4_000); // the lanes publish s0..s4 past the refused event; the engine retries it
    const stuck = await checkpointRow(client, 'nats-relay');
    expect(stuck?.attempts).toBeGreaterThan(0); // the refusal holds the checkpoint

    // The operator's fix: raise the limit, restart the service (graceful).
    await app.stop();
    await manager.streams.update('LEDGER', { ...info.config, max_msg_size: -1, duplicate_window: 1_000_000_000 });
  } finally {
    await connection.close(); // even when the test fails: an open client would go on reconnecting after this file
  }
  await sleep(1_500); // past the (shortened) duplicate window, as a restart is past 2 minutes
}

/** The messages of the LEDGER stream stored more than once (by Nats-Msg-Id), with how many times. */
export async function repeatedMessages(brokerUrl: string): Promise<Array<[string, number]>> {
  const stored = await readJetStream(brokerUrl, 'LEDGER');
  const counts = new Map<string, number>();
  for (const message of stored) counts.set(message.msgId, (counts.get(message.msgId) ?? 0) + 1);
  const repeated = [...counts].filter(([, count]) => count > 1);
  console.log(`${stored.length} messages, repeated: ${JSON.stringify(repeated)}`);
  return repeated;
}
