// Parallel reactions within one segment (issue 15): a process manager's segment reacts to the events
// of different keys concurrently (PROJECTION_REACTION_CONCURRENCY), each key's events still in order,
// on the real engine and PostgreSQL.
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Injectable } from '@nestjs/common';
import { NO_STREAM, type ProcessManager, ReactionHandlers, type RecordedEvent } from '../src/event-sourcing/index.js';
import { type EngineModule, Ticked, eventually, headOfLog, rows, startEngineModule } from './support/projection-fixtures.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

/** What the reactor does, set per test: called for every event, in the order the engine calls it. */
const behaviour: { react: (event: RecordedEvent<Ticked>) => Promise<void> } = { react: async () => undefined };

/** A process manager, keyed by the `key` prefix of its stream (`lane-<key>-…`). */
@Injectable()
class LaneReactor implements ProcessManager {
  readonly kind = 'process-manager';
  readonly name = 'lane-reactor';
  readonly handlers = new ReactionHandlers().on(Ticked, (event) => behaviour.react(event));
  keyOf(event: RecordedEvent): string {
    return event.streamId.split('-')[1];
  }
}

describe('a process manager reacts to different keys of one segment concurrently', () => {
  let database: TestDatabase;
  let t: EngineModule | undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });
  afterAll(() => database?.drop());

  const start = (reactionConcurrency: number, enabled = true) =>
    startEngineModule({
      url: database.url,
      events: [Ticked],
      projections: [],
      processManagers: [LaneReactor],
      // A long lease and a short poll: only the lanes decide how soon the steps run.
      engine: { enabled, reactionConcurrency, leaseTtlMs: 60_000, pollIntervalMs: 50, batchSize: 100 },
    });

  it("a step waiting for another key's step does not hold it back, and the checkpoint takes both", async () => {
    let bStarted!: () => void;
    const b = new Promise<void>((resolve) => (bStarted = resolve));
    const seen: string[] = [];
    behaviour.react = async (event) => {
      const key = event.streamId.split('-')[1];
      if (key === 'a') {
        // Reacted to one event at a time, this waits forever (until the lease's third stops the batch
        // and the next batch starts with this event again).
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            b,
            new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('b never started while a waited')), 10_000))),
          ]);
        } finally {
          clearTimeout(timer); // b won the race: the timer must not outlive the test (it held the jest worker open 10 s)
        }
      } else {
        bStarted();
      }
      seen.push(`${key}${event.data.n}`);
    };
    // Both events in the log before the reactor starts, so that its first batch holds both, a first.
    const writer = await start(4, false);
    await writer.store.append(`lane-a-${randomUUID()}`, [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
    await writer.store.append(`lane-b-${randomUUID()}`, [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM });
    const head = await headOfLog(writer.dataSource);
    await writer.close();
    t = await start(4);
    await eventually(
      'the reactor to pass both events',
      async () => {
        const [row] = await rows<{ position: string }>(
          t!.dataSource,
          `SELECT position FROM projection_checkpoints WHERE projection = 'lane-reactor'`,
        );
        return row && Number(row.position) >= head.position ? true : undefined;
      },
      30_000,
    );
    expect(seen).toEqual(['b1', 'a1']);
    const [row] = await rows<{ attempts: number; status: string }>(
      t.dataSource,
      `SELECT attempts, status FROM projection_checkpoints WHERE projection = 'lane-reactor'`,
    );
    expect(row).toEqual({ attempts: 0, status: 'running' }); // no step failed on the way
  });

  it('keeps each key in order and reacts to every event once, with steps of different keys overlapping', async () => {
    const keys = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5'];
    const seen = new Map<string, number[]>();
    let running = 0;
    let most = 0;
    behaviour.react = async (event) => {
      running++;
      most = Math.max(most, running);
      // A round trip to PostgreSQL, as a real step's commit is: the others run meanwhile.
      await t!.dataSource.query('SELECT pg_sleep(0.02)');
      const key = event.streamId.split('-')[1];
      seen.set(key, [...(seen.get(key) ?? []), event.data.n]);
      running--;
    };
    t = await start(3);
    // Each key one stream, appended in one interleaved sequence, so a batch mixes every key.
    const streams = new Map(keys.map((key) => [key, `lane-${key}-${randomUUID()}`]));
    for (let n = 0; n < 10; n++) {
      for (const key of keys) {
        await t.store.append(streams.get(key)!, [new Ticked({ n })], { expectedVersion: n === 0 ? NO_STREAM : n });
      }
    }
    const head = await headOfLog(t.dataSource);
    await eventually(
      'the reactor to pass every event',
      async () => {
        const [row] = await rows<{ position: string }>(
          t!.dataSource,
          `SELECT position FROM projection_checkpoints WHERE projection = 'lane-reactor'`,
        );
        return row && Number(row.position) >= head.position ? true : undefined;
      },
      60_000,
    );
    for (const key of keys) expect({ key, seen: seen.get(key) }).toEqual({ key, seen: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] });
    expect(most).toBeGreaterThan(1); // they overlapped
    expect(most).toBeLessThanOrEqual(3); // and never more than the concurrency
  });
});
