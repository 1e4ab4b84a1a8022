import { setImmediate as tick } from 'node:timers/promises';
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { runInLanes } from './reaction-lanes.js';

interface Step {
  readonly key: string;
  readonly n: number;
  /** Ticks of the event loop the step takes (others interleave meanwhile). */
  readonly ticks: number;
  readonly fails: boolean;
}

const steps = fc.array(
  fc.record({
    key: fc.constantFrom('a', 'b', 'c', 'd', 'e'),
    ticks: fc.integer({ min: 0, max: 4 }),
    fails: fc.integer({ min: 0, max: 9 }).map((roll) => roll === 0), // one step in ten
  }),
  { maxLength: 30 },
);

describe('runInLanes', () => {
  it('keeps every key in batch order, runs at most `concurrency` at once, and reports the completed prefix and the first failure', async () => {
    await fc.assert(
      fc.asyncProperty(steps, fc.integer({ min: 1, max: 6 }), async (raw, concurrency) => {
        const events: Step[] = raw.map((step, n) => ({ ...step, n }));
        const startedPerKey = new Map<string, number[]>();
        const completed = new Set<number>();
        let running = 0;
        let most = 0;
        const outcome = await runInLanes(
          events,
          (event) => event.key,
          concurrency,
          () => true,
          async (event) => {
            startedPerKey.set(event.key, [...(startedPerKey.get(event.key) ?? []), event.n]);
            running++;
            most = Math.max(most, running);
            try {
              for (let i = 0; i < event.ticks; i++) await tick();
              if (event.fails) throw new Error(`step ${event.n}`);
              completed.add(event.n);
            } finally {
              running--;
            }
          },
        );
        expect(running).toBe(0); // nothing left in flight
        expect(most).toBeLessThanOrEqual(concurrency);
        for (const started of startedPerKey.values()) expect(started).toEqual([...started].sort((x, y) => x - y));
        // The prefix: every event before `done` completed, the one at `done` did not.
        for (let n = 0; n < outcome.done; n++) expect(completed.has(n)).toBe(true);
        if (outcome.done < events.length) expect(completed.has(outcome.done)).toBe(false);
        const firstFailure = events.find((event) => event.fails && startedPerKey.get(event.key)?.includes(event.n));
        expect(outcome.failure?.index).toBe(firstFailure?.n);
        if (!outcome.failure) expect(outcome.done).toBe(events.length);
        // Within a key, nothing starts after that key's failed step.
        for (const event of events.filter((e) => e.fails && startedPerKey.get(e.key)?.includes(e.n))) {
          expect(Math.max(...startedPerKey.get(event.key)!)).toBe(event.n);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('lets different keys overlap: a step of one key may wait for a step of another', async () => {
    let releaseA!: () => void;
    const bStarted = new Promise<void>((resolve) => (releaseA = resolve));
    const order: string[] = [];
    const outcome = await runInLanes(
      ['a1', 'a2', 'b1'],
      (event) => event[0],
      2,
      () => true,
      async (event) => {
        if (event === 'a1') await bStarted; // one at a time, this would wait forever
        if (event === 'b1') releaseA();
        order.push(event);
      },
    );
    expect(outcome).toEqual({ done: 3, completed: [true, true, true] });
    expect(order).toEqual(['b1', 'a1', 'a2']);
  });

  it('with a concurrency of 1, reacts to one event at a time in batch order', async () => {
    const order: number[] = [];
    await runInLanes(
      [0, 1, 2, 3, 4],
      (n) => String(n % 2),
      1,
      () => true,
      async (n) => {
        order.push(n);
        await tick();
      },
    );
    expect(order).toEqual([0, 1, 2, 3, 4]);
  });

  it('starts nothing but the first event once mayStart says no, and reports the prefix', async () => {
    const started: number[] = [];
    const outcome = await runInLanes(
      [0, 1, 2],
      (n) => String(n),
      3,
      () => false,
      async (n) => void started.push(n),
    );
    expect(started).toEqual([0]);
    expect(outcome).toEqual({ done: 1, completed: [true, false, false] });
  });

  it('never runs an event of a key whose earlier event did not start, even if later ones may start', async () => {
    const started: number[] = [];
    // Key of n: n % 2. Event 2 may not start; 4 (same key) must not run either; 1 and 3 run.
    const outcome = await runInLanes(
      [0, 1, 2, 3, 4],
      (n) => String(n % 2),
      2,
      (index) => index !== 2,
      async (n) => void started.push(n),
    );
    expect(started.sort()).toEqual([0, 1, 3]);
    expect(outcome).toEqual({ done: 2, completed: [true, true, false, true, false] });
  });
});
