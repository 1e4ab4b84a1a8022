// Group-commits appends under load in a separate Node process, so that a test can kill it the way a
// crash would (SIGKILL) with statements in flight. Compiled by `npm test` (tsc) to
// dist/test/support/group-commit.child.js, which test/group-commit-crash.int-spec.ts forks.
//
// argv[2]: JSON { url, writers, poolSize }. Each writer appends 1 to 3 events at a time to streams of
// its own, at the exact expected version, and prints `ack <streamId> <version>` on stdout only once
// the append is acknowledged. Each event's data says which append it belongs to and how many events
// that append has, so the parent can tell a half-written append from a whole one.
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { EventType, NO_STREAM } from '../../src/event-sourcing/index.js';
import { startEngineModule } from './projection-fixtures.js';

@EventType('test.GroupCrashTicked')
class GroupCrashTicked {
  readonly appendId!: string;
  readonly of!: number;
  readonly index!: number;
  constructor(data: GroupCrashTicked) {
    Object.assign(this, data);
  }
}

const STREAMS_PER_WRITER = 3;
const options = JSON.parse(process.argv[2]) as { url: string; writers: number; poolSize: number };
const engine = await startEngineModule({
  url: options.url,
  events: [GroupCrashTicked],
  projections: [],
  engine: { enabled: false },
  poolSize: options.poolSize,
});

async function writer(): Promise<never> {
  const streams = Array.from({ length: STREAMS_PER_WRITER }, () => ({ id: `crash-${randomUUID()}`, version: 0 }));
  for (let turn = 0; ; turn++) {
    const stream = streams[turn % STREAMS_PER_WRITER];
    const appendId = randomUUID();
    const of = 1 + (turn % 3);
    const events = Array.from({ length: of }, (_, index) => new GroupCrashTicked({ appendId, of, index }));
    const result = await engine.store.append(stream.id, events, { expectedVersion: stream.version === 0 ? NO_STREAM : stream.version });
    stream.version = result.version;
    process.stdout.write(`ack ${stream.id} ${result.version}\n`);
  }
}

process.send?.({ ready: true });
await Promise.all(Array.from({ length: options.writers }, () => writer()));
