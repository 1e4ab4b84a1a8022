import { fork } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { distPath } from './support/app-process.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';
import { rows, withClient } from './support/projection-fixtures.js';

// A process killed (SIGKILL) while it group-commits under load: every append it acknowledged is in the
// store at its version, and every append is there whole or not at all (one statement, one commit).

const ACKS_BEFORE_KILL = 600;

describe('group commit: a process killed under load', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(() => database?.drop());

  it('loses no acknowledged append and leaves no append half-written', async () => {
    const child = fork(
      distPath('test', 'support', 'group-commit.child.js'),
      [JSON.stringify({ url: database.url, writers: 32, poolSize: 12 })],
      {
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      },
    );
    const orphanGuard = () => child.kill('SIGKILL');
    process.once('exit', orphanGuard);
    const acked = new Map<string, number>(); // stream → highest acknowledged version
    let acks = 0;
    let pending = '';
    let errors = '';
    child.stderr!.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (chunk: Buffer) => {
          const lines = (pending + chunk.toString()).split('\n');
          pending = lines.pop()!;
          for (const line of lines) {
            const [word, stream, version] = line.split(' ');
            if (word !== 'ack') continue;
            acked.set(stream, Math.max(acked.get(stream) ?? 0, Number(version)));
            // Killed from inside the handler: the child is in full flight, statements outstanding.
            if (++acks === ACKS_BEFORE_KILL) {
              child.kill('SIGKILL');
              resolve();
            }
          }
        });
        child.once('exit', (code, signal) => {
          if (signal !== 'SIGKILL') reject(new Error(`the child exited early (${code}):\n${errors}`));
        });
      });
      await exited;
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      process.off('exit', orphanGuard);
    }

    // Statements the child left in flight finish (or not) in the server: wait until none is running.
    await withClient(database.url, async (client) => {
      for (let tries = 0; tries < 500; tries++) {
        const [{ running }] = await rows<{ running: number }>(
          client,
          `SELECT count(*)::int AS running FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'`,
        );
        if (running === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const stored = await rows<{ stream_id: string; version: number; append_id: string; of: number; transaction_id: string }>(
        client,
        `SELECT stream_id, version, data->>'appendId' AS append_id, (data->>'of')::int AS of, transaction_id
         FROM events WHERE stream_id LIKE 'crash-%' ORDER BY stream_id, version`,
      );
      const versions = new Map<string, number[]>();
      for (const row of stored) versions.set(row.stream_id, [...(versions.get(row.stream_id) ?? []), row.version]);
      // Every acknowledged append is there, at its version.
      expect(acked.size).toBe(96);
      for (const [stream, version] of acked) expect(versions.get(stream)?.length ?? 0).toBeGreaterThanOrEqual(version);
      // Each stream is 1..n without a gap, and each append is whole, in one transaction.
      for (const [, list] of versions) expect(list).toEqual(list.map((_, index) => index + 1));
      const appends = new Map<string, typeof stored>();
      for (const row of stored) appends.set(row.append_id, [...(appends.get(row.append_id) ?? []), row]);
      for (const [, events] of appends) {
        expect(events).toHaveLength(events[0].of);
        expect(new Set(events.map((event) => event.transaction_id)).size).toBe(1);
      }
      // Under this load the appends were grouped: fewer commits than appends.
      expect(new Set(stored.map((row) => row.transaction_id)).size).toBeLessThan(appends.size);
    });
  }, 120_000);
});
