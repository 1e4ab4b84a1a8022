import { type ChildProcess, fork } from 'node:child_process';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { CommandBus } from '@nestjs/cqrs';
import { accountStreamId } from '../src/accounts/account.js';
import { DepositMoney } from '../src/accounts/deposit-money/deposit-money.command.js';
import {
  ANY,
  EventStore,
  LeaseLostError,
  NO_STREAM,
  ProjectionCheckpoints,
  type RecordedEvent,
  runFenced,
} from '../src/event-sourcing/index.js';
import { distPath } from './support/app-process.js';
import {
  type EngineModule,
  Ticked,
  checkpointRow,
  eventually,
  startEngineModule,
  waitUntilCaughtUp,
} from './support/projection-fixtures.js';
import {
  Reacted,
  type ReactionBehaviour,
  type ReactionRecord,
  committedEffects,
  defineReactingProcessManager,
  newReactionBehaviour,
  overlaps,
} from './support/reaction-fixtures.js';
import { type TestApp, startTestApp } from './support/test-app.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

/**
 * Process managers (projections with no table, reacting with commands) under their lease:
 * - a reaction slower than the lease keeps it (the holder renews it while it works), on one engine
 *   and on two: each event's effect commits exactly once, the checkpoint advances, nothing overlaps;
 * - a batch of quick reactions that together outlast the lease moves the checkpoint in steps;
 * - the database refuses every write of a holder whose lease was taken over (ledger_fence, checked
 *   before COMMIT of each step), even one paused past its lease that does not know it yet.
 */

const LEASE_TTL_MS = 1_000;
const ENGINE = { leaseTtlMs: LEASE_TTL_MS, pollIntervalMs: 100, retryBaseMs: 10, batchWindowMs: 0 };
const EVENTS = [Ticked, Reacted];

async function appendTicks(engine: EngineModule, stream: string, count: number): Promise<RecordedEvent[]> {
  const appended = await engine.store.append(
    stream,
    Array.from({ length: count }, (_, n) => new Ticked({ n })),
    { expectedVersion: NO_STREAM },
  );
  return [...appended.events];
}

/** Every Ticked reacted to exactly once: one committed effect, one reaction (no redo, no refusal). */
function expectReactedOnce(ticks: readonly RecordedEvent[], effects: Map<number, number>, records: readonly ReactionRecord[]): void {
  const positions = ticks.map((event) => event.position);
  expect(Object.fromEntries(effects)).toEqual(Object.fromEntries(positions.map((position) => [position, 1])));
  expect(records.map((record) => [record.position, record.outcome]).sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual(
    positions.map((position) => [position, 'appended']),
  );
  expect(overlaps(records)).toEqual([]);
}

describe('a process manager whose reaction is slower than its lease', () => {
  const SLOW_MS = 1_500;
  let database: TestDatabase;
  const engines: EngineModule[] = [];

  // A database per test: a reacting projection reacts to every Ticked in the log.
  beforeEach(async () => {
    database = await createTestDatabase();
  });
  afterEach(async () => {
    for (const engine of engines.splice(0)) await engine.close();
    await database?.drop();
  });

  const start = async (name: string, behaviour: ReactionBehaviour, by: string) => {
    const engine = await startEngineModule({
      url: database.url,
      events: EVENTS,
      projections: [],
      processManagers: [defineReactingProcessManager(name, behaviour, by)],
      engine: ENGINE,
      poolSize: 6,
    });
    engines.push(engine);
    return engine;
  };

  it('one engine: each reaction runs once, its effect commits once, and the checkpoint reaches the end', async () => {
    const name = 'slow-alone';
    const behaviour = newReactionBehaviour(SLOW_MS);
    const engine = await start(name, behaviour, 'a');
    const ticks = await appendTicks(engine, 'slow-alone-ticks', 3);
    await waitUntilCaughtUp(engine.dataSource, [name], 30_000);
    expectReactedOnce(ticks, await committedEffects(engine.dataSource, name), behaviour.records);
  });

  it('two engines: one reacts at a time, a graceful handover in the middle redoes nothing', async () => {
    const name = 'slow-twins';
    const behaviour = newReactionBehaviour(SLOW_MS);
    const [a, b] = [await start(name, behaviour, 'a'), await start(name, behaviour, 'b')];
    const ticks = await appendTicks(a, 'slow-twins-ticks', 4);
    await eventually(
      'two reactions to end',
      async () => (behaviour.records.filter((record) => record.end).length >= 2 ? true : undefined),
      30_000,
    );
    // The holder stops (as on a deploy); the other engine takes the lease over and goes on.
    const holder = a.engine.isLeader(name) ? a : b;
    await holder.close();
    engines.splice(engines.indexOf(holder), 1);
    const other = holder === a ? b : a;
    await waitUntilCaughtUp(other.dataSource, [name], 30_000);
    expectReactedOnce(ticks, await committedEffects(other.dataSource, name), behaviour.records);
    expect(new Set(behaviour.records.map((record) => record.by)).size).toBe(2); // both took part
  });

  it('a batch of quick reactions that together outlast the lease advances the checkpoint in steps', async () => {
    const name = 'quick-many';
    const behaviour = newReactionBehaviour(120);
    const engine = await start(name, behaviour, 'a');
    const advances: number[] = [];
    engine.engine.progress.on('advanced', (projection: string, checkpoint: { position: number }) => {
      if (projection === name) advances.push(checkpoint.position);
    });
    const ticks = await appendTicks(engine, 'quick-many-ticks', 24); // one read batch (500), 24 × 120 ms ≈ 3 leases
    await waitUntilCaughtUp(engine.dataSource, [name], 30_000);
    expectReactedOnce(ticks, await committedEffects(engine.dataSource, name), behaviour.records);
    // Stopped after a third of the lease each time: several advances inside the one batch of ticks.
    const inside = advances.filter((position) => position < ticks[ticks.length - 1].position);
    expect(inside.length).toBeGreaterThanOrEqual(3);
  });
});

describe('the database fence', () => {
  const NAME = 'fenced-by-hand';
  let database: TestDatabase;
  let t: EngineModule;
  let client: pg.Client;

  beforeAll(async () => {
    database = await createTestDatabase();
    // Migrations and the store, no runner: the test plays the lease holders itself.
    t = await startEngineModule({ url: database.url, events: EVENTS, projections: [], engine: { enabled: false } });
    await t.checkpoints.ensure([NAME]);
    client = new pg.Client({ connectionString: database.url });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end();
    await t?.close();
    await database?.drop();
  });

  const expire = () =>
    t.dataSource.query(`UPDATE projection_checkpoints SET lease_expires_at = clock_timestamp() - interval '1 second' WHERE name = $1`, [
      NAME,
    ]);
  const fenced = (owner: string, token: string, stream: string) =>
    runFenced({ name: NAME, owner, token }, () => t.store.append(stream, [new Ticked({ n: 1 })], { expectedVersion: NO_STREAM }));

  it("refuses a stale holder's writes (taken over, older token, or expired) and commits none of them", async () => {
    const old = (await t.checkpoints.acquireLease(NAME, 'old-owner', 60_000))!;
    await expire();
    const current = (await t.checkpoints.acquireLease(NAME, 'new-owner', 60_000))!;
    expect(BigInt(current)).toBe(BigInt(old) + 1n);

    await expect(fenced('old-owner', old, 'fence-a')).rejects.toBeInstanceOf(LeaseLostError);
    // Inside a unit of work with several appends, and with ANY: refused as a whole.
    await expect(
      runFenced({ name: NAME, owner: 'old-owner', token: old }, () =>
        t.store.transaction(async (tx) => {
          await tx.append('fence-a', [new Ticked({ n: 1 })], { expectedVersion: ANY });
          await tx.append('fence-b', [new Ticked({ n: 2 })], { expectedVersion: ANY });
        }),
      ),
    ).rejects.toBeInstanceOf(LeaseLostError);
    // The right owner with a token of an earlier holding (a process that lost track and re-acquired).
    await expect(fenced('new-owner', old, 'fence-a')).rejects.toBeInstanceOf(LeaseLostError);
    expect(await t.store.readStream('fence-a')).toEqual([]);
    expect(await t.store.readStream('fence-b')).toEqual([]);

    await fenced('new-owner', current, 'fence-a'); // the holder itself writes
    expect(await t.store.readStream('fence-a')).toHaveLength(1);

    // Expired with nobody taking over: still refused (only a renewal while live extends a holding).
    await expire();
    await expect(fenced('new-owner', current, 'fence-c')).rejects.toBeInstanceOf(LeaseLostError);
    expect(await t.checkpoints.renewLease(NAME, 'new-owner', current, 60_000)).toBe(false);
    expect(await t.store.readStream('fence-c')).toEqual([]);
  });

  it('holds a takeover off from the check until the COMMIT of the step that passed it', async () => {
    const token = (await t.checkpoints.acquireLease(NAME, 'slow-holder', 300))!;
    await client.query('BEGIN');
    await client.query('SELECT ledger_fence($1, $2, $3)', [NAME, 'slow-holder', token]);
    await new Promise((resolve) => setTimeout(resolve, 600)); // the lease runs out while the step is open
    expect(await t.checkpoints.acquireLease(NAME, 'taker', 60_000)).toBeNull(); // the row is locked: not now
    await client.query('COMMIT');
    expect(await t.checkpoints.acquireLease(NAME, 'taker', 60_000)).toBe(String(BigInt(token) + 1n));
  });

  it('the command and projector roles may call it without reading the checkpoints; others may not', async () => {
    await expire();
    const live = (await t.checkpoints.acquireLease(NAME, 'role-holder', 60_000))!;
    const owner = 'role-holder';
    const as = async (role: string, statement: string, values: unknown[] = []) => {
      await client.query('BEGIN');
      try {
        await client.query(`SET LOCAL ROLE ${role}`);
        await client.query(statement, values);
        return 'ok';
      } catch (error) {
        return (error as { code?: string }).code ?? String(error);
      } finally {
        await client.query('ROLLBACK');
      }
    };
    const fence = 'SELECT ledger_fence($1, $2, $3)';
    for (const role of ['ledger_command', 'ledger_projector']) {
      expect(await as(role, fence, [NAME, owner, live])).toBe('ok');
      expect(await as(role, fence, [NAME, owner, String(BigInt(live) - 1n)])).toBe('LF001');
    }
    expect(await as('ledger_command', 'SELECT * FROM projection_checkpoints')).toBe('42501');
    expect(await as('ledger_query', fence, [NAME, owner, live])).toBe('42501');
  });
});

describe('a lease holder paused in the middle of a reaction, past its lease', () => {
  const NAME = 'paused-reactor';
  let database: TestDatabase;
  let engine: EngineModule | undefined;
  let child: ChildProcess | undefined;
  let output = '';
  let pool: pg.Pool;

  beforeAll(async () => {
    database = await createTestDatabase();
    pool = new pg.Pool({ connectionString: database.url, max: 2 });
  });
  afterAll(async () => {
    await pool?.end();
    if (child?.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
    await engine?.close();
    await database?.drop();
  });

  it('once woken, its step is refused by the database: the effect commits once, by the engine that took over', async () => {
    // The child engine first, alone, so that it holds the lease when the events come.
    child = fork(
      distPath('test', 'support', 'reaction-engine.child.js'),
      [JSON.stringify({ url: database.url, name: NAME, leaseTtlMs: LEASE_TTL_MS, sleepMs: 500 })],
      {
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      },
    );
    const orphanGuard = () => child?.kill('SIGKILL');
    process.once('exit', orphanGuard);
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const reacting: number[] = [];
    const ended: ReactionRecord[] = [];
    const ready = new Promise<string>((resolve, reject) => {
      child!.on('message', (message: { ready?: string; reacting?: number; ended?: ReactionRecord }) => {
        if (message.ready) resolve(message.ready);
        if (message.reacting !== undefined) {
          if (reacting.length === 0) child!.kill('SIGSTOP'); // mid-reaction: before its effect
          reacting.push(message.reacting);
        }
        if (message.ended) ended.push(message.ended);
      });
      child!.once('exit', (code) => reject(new Error(`child engine exited with ${code}:\n${output}`)));
    });
    const childOwner = await ready;
    await eventually(
      'the child to hold the lease',
      async () => ((await checkpointRow(pool, NAME))?.leaseOwner === childOwner ? true : undefined),
      20_000,
    );

    const behaviour = newReactionBehaviour(0);
    engine = await startEngineModule({
      url: database.url,
      events: EVENTS,
      projections: [],
      processManagers: [defineReactingProcessManager(NAME, behaviour, 'taker')],
      engine: ENGINE,
      poolSize: 6,
    });
    const ticks = await appendTicks(engine, 'paused-ticks', 3);
    await eventually('the child to start its first reaction (and be paused)', async () => (reacting.length > 0 ? true : undefined), 20_000);
    const paused = reacting[0];
    expect(paused).toBe(ticks[0].position);

    // The lease runs out; this process's engine takes over and reacts to every tick.
    await waitUntilCaughtUp(engine.dataSource, [NAME], 30_000);
    expect(Object.fromEntries(await committedEffects(engine.dataSource, NAME))).toEqual(
      Object.fromEntries(ticks.map((tick) => [tick.position, 1])),
    );

    child.kill('SIGCONT');
    await eventually('the woken child to finish its reaction', async () => ended.find((record) => record.position === paused), 20_000);
    expect(ended.find((record) => record.position === paused)?.outcome).toBe('refused');
    // Nothing of the woken holder committed, and the taker redid nothing twice.
    await waitUntilCaughtUp(engine.dataSource, [NAME], 30_000);
    expect(Object.fromEntries(await committedEffects(engine.dataSource, NAME))).toEqual(
      Object.fromEntries(ticks.map((tick) => [tick.position, 1])),
    );
    expect(behaviour.records.map((record) => record.outcome)).toEqual(['appended', 'appended', 'appended']);
    expect((await checkpointRow(engine.dataSource, NAME))?.leaseOwner).not.toBe(childOwner);
  });
});

describe('a fenced step through the command bus (as the transfer process manager makes them)', () => {
  const NAME = 'transfer-process';
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ PROJECTIONS_ENABLED: 'false' }); // the test plays the lease holders itself
  });
  afterAll(async () => {
    await t?.close();
  });

  it('the holding follows the command into its handler: a stale one deposits nothing, the live one deposits', async () => {
    const checkpoints = t.app.get(ProjectionCheckpoints);
    const commands = t.app.get(CommandBus);
    const store = t.app.get(EventStore);
    const opened = await t.http.post('/accounts').send({ ownerName: 'Fenced Owner', currency: 'EUR' });
    expect(opened.status).toBe(201);
    const stream = accountStreamId(opened.body.id);

    const old = (await checkpoints.acquireLease(NAME, 'old-owner', 60_000))!;
    await t.dataSource.query(
      `UPDATE projection_checkpoints SET lease_expires_at = clock_timestamp() - interval '1 second' WHERE name = $1`,
      [NAME],
    );
    const current = (await checkpoints.acquireLease(NAME, 'new-owner', 60_000))!;

    await expect(
      runFenced({ name: NAME, owner: 'old-owner', token: old }, () => commands.execute(new DepositMoney(opened.body.id, 50))),
    ).rejects.toBeInstanceOf(LeaseLostError);
    expect(await store.readStream(stream)).toHaveLength(1); // opened only
    await runFenced({ name: NAME, owner: 'new-owner', token: current }, () => commands.execute(new DepositMoney(opened.body.id, 50)));
    expect((await store.readStream(stream)).map((event) => event.type)).toEqual(['accounts.AccountOpened', 'accounts.MoneyDeposited']);
  });
});
