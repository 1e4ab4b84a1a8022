import { expect } from '@jest/globals';
import type pg from 'pg';
import { call } from './app-process.js';
import type { RelayedMessage } from './jetstream-reads.js';
import { rows, seededRandom } from './projection-fixtures.js';

export { type RelayedMessage, jetStreamCount, readJetStream } from './jetstream-reads.js';

/**
 * The stream holds every committed event exactly once (one message per `<streamId>:<version>`, none
 * missing, none extra), each stream's versions in order on its subject, with the headers listed in
 * the README and the event as GET /events shows it as body.
 */
export async function expectRelayedExactlyOnce(client: pg.Pool, messages: readonly RelayedMessage[], baseUrl?: string): Promise<void> {
  const events = await rows<{ stream_id: string; version: number; position: string }>(
    client,
    'SELECT stream_id, version, position::text FROM events ORDER BY position',
  );
  const ids = messages.map((message) => message.msgId);
  const counts = new Map<string, number>();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  const repeated = [...counts].filter(([, count]) => count > 1);
  expect(repeated).toEqual([]);
  expect([...counts.keys()].sort()).toEqual(events.map((event) => `${event.stream_id}:${event.version}`).sort());

  const lastVersion = new Map<string, number>();
  for (const message of messages) {
    const [, category, id] = /^ledger\.events\.([^.]+)\.(.+)$/.exec(message.subject) ?? [];
    expect(`${category}-${id}`).toBe(message.body.streamId);
    expect(message.msgId).toBe(`${message.body.streamId}:${message.body.version}`);
    expect(message.headers['Ledger-Stream-Version']).toBe(String(message.body.version));
    expect(message.headers['Ledger-Position']).toBe(String(message.body.position));
    expect(message.headers['Ledger-Event-Type']).toBe(message.body.type);
    expect(message.headers['Ledger-Schema-Version']).toBe(String(message.body.schemaVersion));
    expect(message.headers['Ledger-Correlation-Id']).toBe(message.body.metadata.correlationId);
    expect(message.headers['Ledger-Causation-Id']).toBe(message.body.metadata.causationId);
    // In version order per subject: each message is the next version of its stream.
    const previous = lastVersion.get(message.subject) ?? 0;
    if (message.body.version !== previous + 1) {
      throw new Error(`${message.subject}: version ${message.body.version} after ${previous} (stream seq ${message.seq})`);
    }
    lastVersion.set(message.subject, message.body.version);
  }

  if (baseUrl) {
    // The body is the event exactly as GET /events shows it.
    const bodies = new Map(messages.map((message) => [message.msgId, message.body]));
    for (let after = 0; ;) {
      const page = await call(baseUrl, 'GET', `/events?after=${after}&limit=1000`);
      expect(page.status).toBe(200);
      for (const event of page.body.items) expect(bodies.get(`${event.streamId}:${event.version}`)).toEqual(event);
      if (page.body.items.length === 0) break;
      after = page.body.next;
    }
  }
}

/**
 * A mixed load over HTTP until `until()` says stop: deposits, withdrawals and transfers between
 * `accounts` on `workers` concurrent clients. Returns the number of accepted commands.
 */
export async function mixedLoad(
  baseUrl: string,
  accountIds: readonly string[],
  options: { workers: number; commands?: number; until?: () => boolean; seed?: number },
): Promise<number> {
  const random = seededRandom(options.seed ?? 17);
  let issued = 0;
  let accepted = 0;
  const more = () => (options.commands !== undefined ? issued < options.commands : !options.until!());
  const worker = async () => {
    while (more()) {
      issued++;
      const pick = () => accountIds[Math.floor(random() * accountIds.length)];
      const roll = random();
      const from = pick();
      let to = pick();
      if (to === from) to = accountIds[(accountIds.indexOf(from) + 1) % accountIds.length];
      const response =
        roll < 0.6
          ? await call(baseUrl, 'POST', `/accounts/${from}/deposits`, { amount: 100 + Math.floor(random() * 900) })
          : roll < 0.75
            ? await call(baseUrl, 'POST', `/accounts/${from}/withdrawals`, { amount: 1 + Math.floor(random() * 50) })
            : await call(baseUrl, 'POST', '/transfers', { fromAccountId: from, toAccountId: to, amount: 1 + Math.floor(random() * 200) });
      if (response.status < 300) accepted++;
      else if (response.status !== 409 && response.status !== 422)
        throw new Error(`unexpected ${response.status}: ${JSON.stringify(response.body)}`);
    }
  };
  await Promise.all(Array.from({ length: options.workers }, worker));
  return accepted;
}

export async function openAccounts(baseUrl: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let index = 0; index < count; index++) {
    const response = await call(baseUrl, 'POST', '/accounts', { ownerName: `Relay ${index}`, currency: 'EUR' });
    if (response.status !== 201) throw new Error(`open: ${response.status} ${JSON.stringify(response.body)}`);
    ids.push(response.body.id);
  }
  return ids;
}
