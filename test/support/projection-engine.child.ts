// Runs the projection engine with one counting projection in a separate Node process, so that a test
// can kill it the way a crash would (SIGKILL) in the middle of a batch. Compiled by `npm test` (tsc)
// to dist/test/support/projection-engine.child.js, which the test forks.
//
// argv[2]: JSON { url, name, batchSize, leaseTtlMs, sleepMs, pauseAtCall }
// messages to the parent: { ready: owner }, then { paused: { position, calls } } once the handler has
// applied `pauseAtCall` events in this process: it then never returns, leaving its batch transaction
// open (applied but uncommitted) until the process is killed.
import 'reflect-metadata';
import { defineCountingProjection, startEngineModule, Ticked } from './projection-fixtures.js';

interface ChildOptions {
  readonly url: string;
  readonly name: string;
  readonly batchSize: number;
  readonly leaseTtlMs: number;
  readonly sleepMs: number;
  readonly pauseAtCall: number;
  /** Segments of the counting projection (default 1). */
  readonly segments?: number;
}

const options = JSON.parse(process.argv[2]) as ChildOptions;
const Counting = defineCountingProjection(options.name, 'async', [Ticked]);
Counting.behaviour.sleepMs = options.sleepMs;
Counting.behaviour.onApplied = async (event, calls) => {
  if (calls !== options.pauseAtCall) return;
  process.send?.({ paused: { position: event.position, calls } });
  await new Promise(() => undefined); // mid-batch, forever
};

const engine = await startEngineModule({
  url: options.url,
  events: [Ticked],
  projections: [Counting],
  engine: {
    batchSize: options.batchSize,
    leaseTtlMs: options.leaseTtlMs,
    pollIntervalMs: 50,
    retryBaseMs: 10,
    segments: { default: options.segments ?? 1, byName: {} },
  },
  poolSize: 4,
  log: true,
});
process.send?.({ ready: engine.engine.owner });
setInterval(() => undefined, 60_000);
