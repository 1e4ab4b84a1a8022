import { AsyncLocalStorage } from 'node:async_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from '@jest/globals';
import { StreamBusyError } from './errors.js';
import { StreamLanes } from './stream-lanes.js';

describe('StreamLanes', () => {
  it('runs the work of one stream one at a time, in the order it was queued', async () => {
    const lanes = new StreamLanes();
    const log: string[] = [];
    let running = 0;
    let most = 0;
    const work = (name: string, ms: number) => async () => {
      running++;
      most = Math.max(most, running);
      log.push(`start ${name}`);
      await sleep(ms);
      log.push(`end ${name}`);
      running--;
      return name;
    };
    const results = await Promise.all([lanes.run('a', work('1', 20)), lanes.run('a', work('2', 1)), lanes.run('a', work('3', 5))]);
    expect(results).toEqual(['1', '2', '3']);
    expect(most).toBe(1);
    expect(log).toEqual(['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
  });

  it('lets other streams run meanwhile', async () => {
    const lanes = new StreamLanes();
    const log: string[] = [];
    const slow = lanes.run('a', async () => {
      await sleep(30);
      log.push('a');
    });
    await lanes.run('b', async () => log.push('b'));
    await slow;
    expect(log).toEqual(['b', 'a']);
  });

  it('a failed work fails only its own caller; the next one runs', async () => {
    const lanes = new StreamLanes();
    const failed = lanes.run('a', async () => {
      await sleep(5);
      throw new Error('lost');
    });
    const thrownSync = lanes.run('a', () => {
      throw new Error('at once');
    });
    const next = lanes.run('a', async () => 'ran');
    await expect(failed).rejects.toThrow('lost');
    await expect(thrownSync).rejects.toThrow('at once');
    await expect(next).resolves.toBe('ran');
  });

  it('forgets a stream once nothing is queued on it', async () => {
    const lanes = new StreamLanes();
    await Promise.all(Array.from({ length: 100 }, (_, index) => lanes.run(`s${index % 10}`, async () => index)));
    await sleep(0);
    expect(lanes.size).toBe(0);
  });

  it('refuses work still waiting maxWaitMs after it was queued, then, while the work ahead still runs; its turn is skipped', async () => {
    const lanes = new StreamLanes(30);
    const ran: string[] = [];
    const started = performance.now();
    const slow = lanes.run('a', async () => {
      await sleep(400); // e.g. stuck on a row lock
      ran.push('slow');
    });
    const late = lanes.run('a', async () => {
      ran.push('late');
    });
    const refused = await late.then(
      () => undefined,
      (error: unknown) => error,
    );
    const refusedAfter = performance.now() - started;
    expect(refused).toBeInstanceOf(StreamBusyError);
    expect(refused).toMatchObject({ streamId: 'a', code: 'STREAM_BUSY', kind: 'unavailable' });
    expect((refused as StreamBusyError).waitedMs).toBeGreaterThanOrEqual(29);
    expect(refusedAfter).toBeLessThan(300); // not when the slow work ends (400 ms)
    expect(ran).toEqual([]);
    const next = lanes.run('a', async () => 'next', Number.POSITIVE_INFINITY); // no bound: waits for the slow one
    await slow;
    await expect(next).resolves.toBe('next');
    expect(ran).toEqual(['slow']);
    expect(lanes.size).toBeLessThanOrEqual(1);
    await sleep(0);
    expect(lanes.size).toBe(0);
  });

  it('work that queues more work on the lane it holds runs it at once instead of waiting for itself', async () => {
    const lanes = new StreamLanes();
    const inner = await Promise.race([
      lanes.run('a', () => lanes.run('a', async () => 'inner ran')),
      sleep(1000).then(() => 'waited for itself'),
    ]);
    expect(inner).toBe('inner ran');
    // Holding 'a' does not let it skip the queue of another stream, nor other callers skip 'a'.
    const order: string[] = [];
    const holder = lanes.run('a', async () => {
      await lanes.run('b', async () => order.push('b inside a'));
      await sleep(20);
      order.push('a');
    });
    const next = lanes.run('a', async () => order.push('next a'));
    await Promise.all([holder, next]);
    expect(order).toEqual(['b inside a', 'a', 'next a']);
  });

  it('only while the turn lasts: what a turn left running queues like anyone else once it is over', async () => {
    const lanes = new StreamLanes();
    const order: string[] = [];
    let leaked: Promise<unknown> | undefined;
    await lanes.run('a', async () => {
      // A timer started in the turn, firing after it ended (found in review: it skipped the queue).
      leaked = new Promise((resolve) => {
        setTimeout(() => {
          resolve(
            lanes.run('a', async () => {
              order.push('leaked start');
              await sleep(5);
              order.push('leaked end');
            }),
          );
        }, 10);
      });
    });
    const later = lanes.run('a', async () => {
      order.push('later start');
      await sleep(30);
      order.push('later end');
    });
    await Promise.all([later, leaked]);
    expect(order).toEqual(['later start', 'later end', 'leaked start', 'leaked end']);
  });

  it('a turn lasts until every work started in it has settled: nested work never overlaps the next turn', async () => {
    const lanes = new StreamLanes();
    const order: string[] = [];
    const nested = (name: string, ms: number) => async () => {
      order.push(`start ${name}`);
      await sleep(ms);
      order.push(`end ${name}`);
    };
    // Started in the turn and left running (review: it overlapped the next waiter).
    const first = lanes.run('a', async () => {
      void lanes.run('a', nested('detached', 40));
      await sleep(5);
    });
    const next = lanes.run('a', nested('next', 5));
    await Promise.all([first, next]);
    // Started by a continuation of the work's own promise, just as it settles.
    const third = lanes.run('a', () => {
      const done = sleep(5);
      void done.then(() => lanes.run('a', nested('continuation', 30)));
      return done;
    });
    const fourth = lanes.run('a', nested('fourth', 5));
    await Promise.all([third, fourth]);
    expect(order).toEqual([
      'start detached',
      'end detached',
      'start next',
      'end next',
      'start continuation',
      'end continuation',
      'start fourth',
      'end fourth',
    ]);
  });

  it('a work that returns no promise, or throws at once when re-entered, neither hangs the lane nor throws from run', async () => {
    const lanes = new StreamLanes();
    const blocker = lanes.run('a', () => sleep(5));
    const plain = lanes.run('a', (() => 42) as unknown as () => Promise<number>);
    await blocker;
    await expect(plain).resolves.toBe(42);
    const reentered = await lanes.run('a', async () => {
      const inner = lanes.run('a', () => {
        throw new Error('at once');
      });
      return inner.then(
        () => 'resolved',
        (error: unknown) => (error as Error).message,
      );
    });
    expect(reentered).toBe('at once');
    await expect(lanes.run('a', async () => 'next')).resolves.toBe('next');
  });

  it('a refused work leaves nothing behind while the work ahead is still stuck (review)', async () => {
    // A full collection on demand (jest runs without --expose-gc).
    setFlagsFromString('--expose-gc');
    const collect = runInNewContext('gc') as () => void;
    const lanes = new StreamLanes(1);
    let release!: () => void;
    const head = lanes.run('a', () => new Promise<void>((resolve) => (release = resolve))); // stuck on a lock, say
    const callers: Array<WeakRef<Promise<unknown>>> = [];
    const refusals: Array<Promise<unknown>> = [];
    collect();
    const heapBefore = process.memoryUsage().heapUsed;
    for (let index = 0; index < 5_000; index++) {
      const caller = lanes.run('a', async () => 'never');
      if (index % 50 === 0) callers.push(new WeakRef(caller));
      refusals.push(caller.catch((error: unknown) => error));
    }
    const answers = await Promise.all(refusals);
    expect(answers.every((answer) => answer instanceof StreamBusyError)).toBe(true);
    refusals.length = 0;
    answers.length = 0;
    await sleep(0);
    collect();
    const retained = process.memoryUsage().heapUsed - heapBefore;
    // A chain of promises behind the head kept every refused caller's promise (about 1.7 KB each).
    expect(callers.filter((caller) => caller.deref() !== undefined)).toHaveLength(0);
    expect(retained).toBeLessThan(4 * 1024 * 1024);
    expect(lanes.depth).toEqual({ waiting: 0, streams: 1 });
    release();
    await head;
    await sleep(0);
    expect(lanes.depth).toEqual({ waiting: 0, streams: 0 });
  });

  it('a work that ran is not kept alive by a long-lived resource opened in its turn, nor by turns queued from it (review)', async () => {
    setFlagsFromString('--expose-gc');
    const collect = runInNewContext('gc') as () => void;
    const lanes = new StreamLanes();
    const payloads: Array<WeakRef<Uint8Array>> = [];
    const intervals: NodeJS.Timeout[] = [];
    // A pooled socket or an idle timer opened during a turn keeps the lanes' async context alive.
    const openLongLived = () => intervals.push(setInterval(() => undefined, 1e6));
    const command = (open: boolean) => {
      const payload = new Uint8Array(1e6);
      payloads.push(new WeakRef(payload));
      return lanes.run('a', async () => {
        payload[0] = 1;
        if (open) openLongLived();
        await Promise.resolve();
      });
    };
    await Promise.all([lanes.run('a', () => sleep(5)), command(true), command(false)]);
    // Turns queued one after the other from the turn before (a timer it left behind).
    await new Promise<void>((finish) => {
      const next = (count: number) => {
        const payload = new Uint8Array(1e6);
        payloads.push(new WeakRef(payload));
        void lanes.run('a', async () => {
          payload[0] = 1;
          if (count === 19) {
            openLongLived();
            finish();
          } else setTimeout(next, 0, count + 1);
        });
      };
      next(0);
    });
    for (let pass = 0; pass < 3; pass++) {
      await sleep(10);
      collect();
    }
    const alive = payloads.filter((payload) => payload.deref() !== undefined).length;
    intervals.forEach(clearInterval);
    expect(alive).toBe(0);
  });

  it('drains a long queue in order, refusals taken out from anywhere in it', async () => {
    const lanes = new StreamLanes();
    let release!: () => void;
    const head = lanes.run('a', () => new Promise<void>((resolve) => (release = resolve)));
    const ran: number[] = [];
    const waiting = Array.from({ length: 10_000 }, (_, index) =>
      lanes.run('a', async () => void ran.push(index), index % 3 === 0 ? 1 : Number.POSITIVE_INFINITY).catch((error: unknown) => error),
    );
    await sleep(20); // every third one refused meanwhile, from the middle of the queue
    expect(lanes.depth.waiting).toBe(10_000 - Math.ceil(10_000 / 3));
    release();
    const answers = await Promise.all([head, ...waiting]);
    expect(answers.filter((answer) => answer instanceof StreamBusyError)).toHaveLength(Math.ceil(10_000 / 3));
    expect(ran).toEqual(Array.from({ length: 10_000 }, (_, index) => index).filter((index) => index % 3 !== 0)); // in order
    await sleep(0);
    expect(lanes.depth).toEqual({ waiting: 0, streams: 0 });
  });

  it('a queued work runs in the async context it was queued in, not in that of the turn before it', async () => {
    const lanes = new StreamLanes();
    const context = new AsyncLocalStorage<string>();
    let release!: () => void;
    const head = context.run('head', () => lanes.run('a', () => new Promise<void>((resolve) => (release = resolve))));
    const seen = context.run('caller', () => lanes.run('a', async () => context.getStore()));
    await sleep(0);
    context.run('releaser', () => release());
    await head;
    await expect(seen).resolves.toBe('caller');
  });

  it('counts the works waiting, refused or not, once each, and tells how long each one that ran waited', async () => {
    const lanes = new StreamLanes(40);
    const waits: number[] = [];
    lanes.onTurn((waitedMs) => waits.push(waitedMs));
    let release!: () => void;
    const head = lanes.run('a', () => new Promise<void>((resolve) => (release = resolve)));
    const refused = lanes.run('a', async () => 'never');
    const patient = lanes.run('a', async () => 'ran', Number.POSITIVE_INFINITY);
    await sleep(0);
    expect(lanes.depth).toEqual({ waiting: 2, streams: 1 });
    await expect(refused).rejects.toBeInstanceOf(StreamBusyError);
    expect(lanes.depth).toEqual({ waiting: 1, streams: 1 }); // the refused one stopped waiting when refused
    await sleep(30);
    release();
    await expect(patient).resolves.toBe('ran');
    await head;
    await sleep(0);
    expect(lanes.depth).toEqual({ waiting: 0, streams: 0 });
    expect(waits).toHaveLength(2); // the head and the patient one; the refused one never had a turn
    expect(waits[0]).toBe(0);
    expect(waits[1]).toBeGreaterThanOrEqual(60);
  });

  it('a turn listener that throws keeps no work from its turn and no lane blocked (review)', async () => {
    const lanes = new StreamLanes(50);
    let calls = 0;
    lanes.onTurn(() => {
      if (++calls === 1) throw new Error('listener failed once');
    });
    await expect(lanes.run('a', async () => 'first')).resolves.toBe('first');
    await expect(lanes.run('a', async () => 'next')).resolves.toBe('next');
    await sleep(0);
    expect(lanes.depth).toEqual({ waiting: 0, streams: 0 });
  });
});
