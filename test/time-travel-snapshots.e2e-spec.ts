import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CommandBus } from '@nestjs/cqrs';
import { accountDecider, accountStreamId } from '../src/accounts/account.js';
import { DepositMoney } from '../src/accounts/deposit-money/deposit-money.command.js';
import { WithdrawMoney } from '../src/accounts/withdraw-money/withdraw-money.command.js';
import { EventStore, fold } from '../src/event-sourcing/index.js';
import { type ApiEvent, accountEvents, foldAccount } from './support/history-fold.js';
import { rows, seededRandom } from './support/projection-fixtures.js';
import { insertLegacyRows } from './support/legacy-rows.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// Time travel starts from the newest snapshot at or before the point asked for (not from the first
// event), and its answers stay exactly those of a full fold. The reference is support/history-fold.ts,
// an independent fold of the events GET /accounts/{id}/events shows, cut as the API documents: at a
// version, or before the first event recorded after an instant. A second instance on the same
// database with snapshots off (account:0) must answer the same.

const INTERVAL = 20;
const LENGTH = 301;
const codec = accountDecider.snapshots!;

let t: TestApp; // account:20
let plain: TestApp; // account:0: never reads snapshots
beforeAll(async () => {
  t = await startTestApp({ SNAPSHOT_INTERVALS: `account:${INTERVAL}` });
  plain = await startTestApp({ SNAPSHOT_INTERVALS: 'account:0' }, t.database);
});
afterAll(async () => {
  await plain?.close();
  await t?.close();
});

const iso = (ms: number) => new Date(ms).toISOString();

/** The reference: the events before the first one recorded after the instant. */
function prefixAsOf(events: readonly ApiEvent[], instant: number): ApiEvent[] {
  const cut = events.findIndex((event) => Date.parse(event.recordedAt) > instant);
  return cut === -1 ? [...events] : events.slice(0, cut);
}

async function snapshotVersions(id: string): Promise<Array<{ version: number; schema_version: number }>> {
  return rows(t.dataSource, 'SELECT version, schema_version FROM snapshots WHERE stream_id = $1 ORDER BY version, schema_version', [
    accountStreamId(id),
  ]);
}

/** The codec's JSON of the full fold up to `version` (what a snapshot at that version must hold). */
async function stateJsonAt(id: string, version: number): Promise<unknown> {
  const events = await t.app.get(EventStore).readStream(accountStreamId(id), { toVersion: version });
  return JSON.parse(
    JSON.stringify(
      codec.encode(
        fold(
          accountDecider,
          events.map((event) => event.data as never),
        ),
      ),
    ),
  );
}

type Point = { atVersion: number } | { asOf: string };

/** Every point whose answer differs from the reference (on either instance). */
async function mismatches(id: string, events: readonly ApiEvent[], points: readonly Point[]): Promise<unknown[]> {
  const found: unknown[] = [];
  for (const point of points) {
    const prefix = 'atVersion' in point ? events.slice(0, point.atVersion) : prefixAsOf(events, Date.parse(point.asOf));
    const expected = prefix.length > 0 ? foldAccount(prefix) : undefined;
    for (const [name, app] of [
      ['account:20', t],
      ['account:0', plain],
    ] as const) {
      const response = await app.http.get(`/accounts/${id}/state`).query(point);
      const ok = expected ? response.status === 200 && JSON.stringify(response.body) === JSON.stringify(expected) : response.status === 404;
      if (!ok) found.push({ name, point, expectedVersion: expected?.version, status: response.status, body: response.body });
    }
  }
  return found;
}

describe('time travel over a snapshotted account of a few hundred events', () => {
  const ids = { history: '' };
  let events: ApiEvent[];

  beforeAll(async () => {
    // Through the CommandBus, as an HTTP command runs from its handler on: each crossing of a
    // multiple of the interval writes a snapshot.
    const bus = t.app.get(CommandBus);
    const response = await t.http.post('/accounts').send({ ownerName: 'Snapshot History', currency: 'EUR' }).expect(201);
    ids.history = response.body.id;
    for (let version = 1; version < LENGTH; version++) {
      await bus.execute(version % 5 === 4 ? new WithdrawMoney(ids.history, 3) : new DepositMoney(ids.history, 10 + (version % 7)));
    }
    events = await accountEvents(t, ids.history);
    expect(events).toHaveLength(LENGTH);
  });

  it('keeps one snapshot per interval crossing, each the state at its version', async () => {
    const expectedVersions = Array.from({ length: Math.floor(LENGTH / INTERVAL) }, (_, index) => (index + 1) * INTERVAL);
    expect(await snapshotVersions(ids.history)).toEqual(
      expectedVersions.map((version) => ({ version, schema_version: codec.schemaVersion })),
    );
    for (const version of [INTERVAL, 100, 300]) {
      const [row] = await rows<{ state: unknown }>(t.dataSource, 'SELECT state FROM snapshots WHERE stream_id = $1 AND version = $2', [
        accountStreamId(ids.history),
        version,
      ]);
      expect({ version, state: row.state }).toEqual({ version, state: await stateJsonAt(ids.history, version) });
    }
  });

  it('answers exactly as a full fold at random versions and instants, and at every snapshot’s version and instant', async () => {
    const random = seededRandom(12);
    const first = Date.parse(events[0].recordedAt);
    const last = Date.parse(events.at(-1)!.recordedAt);
    const points: Point[] = [];
    for (let index = 0; index < 120; index++) points.push({ atVersion: 1 + Math.floor(random() * LENGTH) });
    for (let index = 0; index < 120; index++) points.push({ asOf: iso(first - 3 + Math.floor(random() * (last - first + 6))) });
    for (let version = INTERVAL; version < LENGTH; version += INTERVAL) {
      points.push({ atVersion: version - 1 }, { atVersion: version }, { atVersion: version + 1 });
      const at = Date.parse(events[version - 1].recordedAt);
      points.push({ asOf: iso(at - 1) }, { asOf: iso(at) }, { asOf: iso(at + 1) });
    }
    points.push({ atVersion: 1 }, { atVersion: LENGTH }, { asOf: iso(first) }, { asOf: iso(last) });
    expect(await mismatches(ids.history, events, points)).toEqual([]);
  });

  it('starts from the newest snapshot at or before the point (control: a wrong snapshot shows), and ignores one of another schema version', async () => {
    const streamId = accountStreamId(ids.history);
    // A forged owner name survives the fold (no later event sets it), so it shows wherever the fold
    // started from this snapshot.
    const wrong = { ...((await stateJsonAt(ids.history, 100)) as object), ownerName: 'Forged' };
    const ownerAt = async (app: TestApp, point: Point) =>
      (await app.http.get(`/accounts/${ids.history}/state`).query(point)).body.ownerName;
    const hundredAt = Date.parse(events[99].recordedAt);
    const afterHundred = events.findIndex((event) => Date.parse(event.recordedAt) > hundredAt); // the first event of a later ms
    const original = (
      await rows<{ state: unknown }>(t.dataSource, 'SELECT state FROM snapshots WHERE stream_id = $1 AND version = 100', [streamId])
    )[0].state;
    try {
      await t.dataSource.query('UPDATE snapshots SET state = $2 WHERE stream_id = $1 AND version = 100', [streamId, JSON.stringify(wrong)]);
      // Versions 100…119 start from the snapshot at 100; 99 from the one at 80, 120 from the one at 120.
      for (const version of [100, 101, 110, 119])
        expect({ version, owner: await ownerAt(t, { atVersion: version }) }).toEqual({ version, owner: 'Forged' });
      for (const version of [1, 99, 120, 121, LENGTH])
        expect({ version, owner: await ownerAt(t, { atVersion: version }) }).toEqual({ version, owner: 'Snapshot History' });
      // As of the instant v100 was recorded: the prefix ends at v100 or a little later (same ms), before v120.
      expect(afterHundred).toBeGreaterThanOrEqual(100);
      if (afterHundred !== -1 && afterHundred < 120) expect(await ownerAt(t, { asOf: iso(hundredAt) })).toBe('Forged');
      const ninetyNineAt = Date.parse(events[98].recordedAt);
      if (prefixAsOf(events, ninetyNineAt).length < 100) expect(await ownerAt(t, { asOf: iso(ninetyNineAt) })).toBe('Snapshot History');
      // With snapshots off, the same database answers from the events alone.
      expect(await ownerAt(plain, { atVersion: 100 })).toBe('Snapshot History');

      // The same wrong state at an older or a newer schema version: ignored (the fold starts at 80).
      await t.dataSource.query('UPDATE snapshots SET schema_version = $2 WHERE stream_id = $1 AND version = 100', [
        streamId,
        codec.schemaVersion - 1,
      ]);
      await t.dataSource.query(
        `INSERT INTO snapshots (stream_id, aggregate, schema_version, version, position, state) VALUES ($1, 'account', $2, 110, $3, $4)`,
        [streamId, codec.schemaVersion + 1, events[109].position, JSON.stringify({ garbage: true })],
      );
      expect(
        await mismatches(
          ids.history,
          events,
          [100, 101, 110, 115, 119].map((atVersion) => ({ atVersion })),
        ),
      ).toEqual([]);
    } finally {
      await t.dataSource.query('DELETE FROM snapshots WHERE stream_id = $1 AND version IN (100, 110) AND schema_version <> $2', [
        streamId,
        codec.schemaVersion,
      ]);
      await t.dataSource.query(
        `INSERT INTO snapshots (stream_id, aggregate, schema_version, version, position, state) VALUES ($1, 'account', $2, 100, $3, $4)
        ON CONFLICT (stream_id, schema_version, version) DO UPDATE SET state = EXCLUDED.state`,
        [streamId, codec.schemaVersion, events[99].position, JSON.stringify(original)],
      );
    }
    expect(
      await mismatches(
        ids.history,
        events,
        [99, 100, 101, 119, 120].map((atVersion) => ({ atVersion })),
      ),
    ).toEqual([]);
  });

  it('the command side reads the newest snapshot with one backward step of the primary key (EXPLAIN)', async () => {
    // Enough rows for the planner to prefer an index: 400 streams × 30 snapshots.
    await t.dataSource.query(
      `INSERT INTO snapshots (stream_id, aggregate, schema_version, version, position, state)
      SELECT 'account-explain-' || s, 'account', $1, v * 20, v, '{"status":"none"}'::jsonb
      FROM generate_series(1, 400) s, generate_series(1, 30) v`,
      [codec.schemaVersion],
    );
    await t.dataSource.query('ANALYZE snapshots');
    for (const bound of [2_147_483_647, 250]) {
      const plan = (
        await rows<{ 'QUERY PLAN': string }>(
          t.dataSource,
          `EXPLAIN SELECT version, position, state FROM snapshots
           WHERE stream_id = $1 AND schema_version = $3 AND version <= $4 AND aggregate = $2
           ORDER BY version DESC LIMIT 1`,
          ['account-explain-7', 'account', codec.schemaVersion, bound],
        )
      )
        .map((row) => row['QUERY PLAN'])
        .join('\n');
      expect(plan).toMatch(/Index Scan Backward using snapshots_pkey/);
      expect(plan).toMatch(/Index Cond: \(\(stream_id = 'account-explain-7'::text\) AND \(schema_version = \d+\) AND \(version <= \d+\)\)/);
      expect(plan).not.toMatch(/Sort|Seq Scan/);
    }
    // The command side runs it prepared: its generic plan (what PostgreSQL may settle on) as well.
    const generic = await t.dataSource.transaction(async (manager) => {
      await manager.query('SET LOCAL plan_cache_mode = force_generic_plan');
      await manager.query(`PREPARE newest_snapshot(text, text, int, int) AS SELECT version, position, state FROM snapshots
        WHERE stream_id = $1 AND schema_version = $3 AND version <= $4 AND aggregate = $2 ORDER BY version DESC LIMIT 1`);
      const plan = (await manager.query(
        `EXPLAIN EXECUTE newest_snapshot('account-explain-7', 'account', ${codec.schemaVersion}, 2147483647)`,
      )) as Array<{ 'QUERY PLAN': string }>;
      await manager.query('DEALLOCATE newest_snapshot');
      return plan.map((row) => row['QUERY PLAN']).join('\n');
    });
    expect(generic).toMatch(/Index Scan Backward using snapshots_pkey/);
    expect(generic).toMatch(/Index Cond: \(\(stream_id = \$1\) AND \(schema_version = \$3\) AND \(version <= \$4\)\)/);
    expect(generic).not.toMatch(/Sort|Seq Scan/);
    await t.dataSource.query(`DELETE FROM snapshots WHERE stream_id LIKE 'account-explain-%'`);
  });
});

describe('time travel with snapshots over rows whose recorded_at is not in version order', () => {
  // Rows written before recorded_at was clock_timestamp() can be out of version order. A snapshot
  // must be chosen by version inside the prefix, never because its event was recorded by the
  // instant: at +30 below, v3 (recorded at +20) has a snapshot, but v2 is not recorded yet, so the
  // answer is the state after v1.
  // Written as legacy rows (insertLegacyRows): the insert trigger would set recorded_at itself.
  const id = randomUUID();
  const streamId = accountStreamId(id);
  const base = Date.parse('2026-03-01T10:00:00.000Z');
  const deposit = (amount: number, balanceAfter: number) => ({
    type: 'accounts.MoneyDeposited',
    schemaVersion: 2,
    data: { accountId: id, amount, balanceAfter, reference: null },
  });
  const plan: Array<{ at: number; event: { type: string; schemaVersion: number; data: object } }> = [
    {
      at: 0,
      event: { type: 'accounts.AccountOpened', schemaVersion: 1, data: { accountId: id, ownerName: 'Out Of Order', currency: 'EUR' } },
    },
    { at: 40, event: deposit(100, 100) },
    { at: 20, event: deposit(10, 110) },
    { at: 60, event: deposit(1, 111) },
    { at: 50, event: deposit(5, 116) },
    { at: 80, event: deposit(1000, 1116) },
  ];
  let events: ApiEvent[];

  beforeAll(async () => {
    await insertLegacyRows(
      t.dataSource,
      plan.map(({ at, event }, index) => {
        const eventId = randomUUID();
        const metadata = { eventId, correlationId: eventId, causationId: eventId, actor: 'legacy-import', occurredAt: iso(base + at) };
        return { streamId, version: index + 1, ...event, eventId, metadata, recordedAt: iso(base + at) };
      }),
    );
    events = await accountEvents(t, id);
    for (const version of [3, 5]) {
      await t.dataSource.query(
        `INSERT INTO snapshots (stream_id, aggregate, schema_version, version, position, state) VALUES ($1, 'account', $2, $3, $4, $5)`,
        [streamId, codec.schemaVersion, version, events[version - 1].position, JSON.stringify(await stateJsonAt(id, version))],
      );
    }
  });

  it('every millisecond gives the state after a prefix, from a snapshot inside it', async () => {
    const points: Point[] = Array.from({ length: 92 }, (_, at) => ({ asOf: iso(base - 1 + at) }));
    expect(await mismatches(id, events, points)).toEqual([]);
    expect((await t.http.get(`/accounts/${id}/state`).query({ asOf: iso(base + 30) })).body).toMatchObject({ version: 1, balance: 0 });
    expect((await t.http.get(`/accounts/${id}/state`).query({ asOf: iso(base + 55) })).body).toMatchObject({ version: 3, balance: 110 });
  });
});
