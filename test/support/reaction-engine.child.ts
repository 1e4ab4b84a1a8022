// Runs the projection engine with one reacting projection (support/reaction-fixtures.ts) in a
// separate Node process, so that a test can pause it (SIGSTOP) in the middle of a reaction, let its
// lease run out and another engine take over, then wake it (SIGCONT). Compiled by tsc to
// dist/test/support/reaction-engine.child.js, which the test forks.
//
// argv[2]: JSON { url, name, leaseTtlMs, sleepMs }
// messages to the parent: { ready: owner }; { reacting: position } when a reaction starts (then it
// waits sleepMs before its effect); { ended: ReactionRecord } when it ends.
import 'reflect-metadata';
import { Ticked, startEngineModule } from './projection-fixtures.js';
import { Reacted, defineReactingProcessManager, newReactionBehaviour } from './reaction-fixtures.js';

interface ChildOptions {
  readonly url: string;
  readonly name: string;
  readonly leaseTtlMs: number;
  readonly sleepMs: number;
}

const options = JSON.parse(process.argv[2]) as ChildOptions;
const behaviour = newReactionBehaviour(options.sleepMs);
behaviour.onStart = (event) => void process.send?.({ reacting: event.position });
behaviour.onEnd = (record) => void process.send?.({ ended: record });

const engine = await startEngineModule({
  url: options.url,
  events: [Ticked, Reacted],
  projections: [],
  processManagers: [defineReactingProcessManager(options.name, behaviour, 'child')],
  engine: { leaseTtlMs: options.leaseTtlMs, pollIntervalMs: 50, retryBaseMs: 10, batchWindowMs: 0 },
  poolSize: 4,
  log: true,
});
process.send?.({ ready: engine.engine.owner });
setInterval(() => undefined, 60_000);
