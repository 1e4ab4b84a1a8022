import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { type TestApp, startTestApp } from './support/test-app.js';
import { type TestDatabase, createTestDatabase } from './support/test-database.js';

// Found in review (rebuild copies belong to whichever login made them): tables in `<schema>_rebuild`
// are owned by the LOGIN user that created them, not by ledger_projector. Another member of
// ledger_projector — the same service after a credential rotation (Vault-style dynamic users: a new
// login per instance or restart), another instance, or a hostile holder of projector credentials —
// can neither drop nor write that copy. A copy left by a rebuild that was interrupted (or planted)
// under one login makes every later rebuild of that projection fail, until a DBA steps in; the
// status stays 'requested' with lastError null (abandonRebuild drops the copy first, which fails the
// same way, so the failure is never recorded). The live projection keeps following (checked).

const PASSWORD = 'review-test-password';
let database: TestDatabase;
let owner: pg.Client;
const apps: TestApp[] = [];
const databases: TestDatabase[] = [];
const logins: string[] = [];

function urlAs(user: string, on: TestDatabase = database): string {
  const url = new URL(on.url);
  url.username = user;
  url.password = PASSWORD;
  return url.toString();
}

beforeAll(async () => {
  database = await createTestDatabase();
  const migrated = await startTestApp({ PROJECTIONS_ENABLED: 'false' }, database);
  await migrated.app.close();
  owner = new pg.Client({ connectionString: database.url });
  await owner.connect();
  const suffix = randomBytes(4).toString('hex');
  for (const name of ['before', 'after']) {
    const login = `ledger_test_projector_${name}_${suffix}`;
    await owner.query(`CREATE ROLE ${login} LOGIN PASSWORD '${PASSWORD}' IN ROLE ledger_projector`);
    logins.push(login);
  }
});

afterAll(async () => {
  for (const app of apps) await app.close();
  await owner?.end();
  for (const extra of databases) await extra.drop();
  await database?.drop();
  const server = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
  await server.connect();
  for (const login of logins) await server.query(`DROP ROLE IF EXISTS ${login}`);
  await server.end();
});

async function rebuildScenario(
  plantOldCopy: false | 'as-the-group' | 'as-the-login',
  database: TestDatabase,
  loginBefore: string,
  loginAfter: string,
): Promise<{ asRequested: boolean; liveFollows: boolean; rebuildEnded: boolean }> {
  if (plantOldCopy) {
    // 'as-the-group': what an interrupted rebuild under the old login leaves behind (ShadowTables.create
    // makes its copies as ledger_projector); 'as-the-login': a table that login made by hand, owned by it.
    const old = new pg.Client({ connectionString: urlAs(loginBefore, database) });
    await old.connect();
    if (plantOldCopy === 'as-the-group') await old.query('SET ROLE ledger_projector');
    await old.query('CREATE TABLE public_rebuild.account_summaries (LIKE public.account_summaries INCLUDING ALL)');
    await old.end();
  }
  const app = await startTestApp(
    {
      // The projector on the scenario's own database (the control runs on a database of its own).
      PROJECTOR_DATABASE_URL: urlAs(loginAfter, database),
      PROJECTION_POLL_INTERVAL_MS: '100',
      PROJECTION_MAX_ATTEMPTS: '2',
      PROJECTION_RETRY_BASE_MS: '50',
    },
    database,
  );
  apps.push(app);
  await app.http.post('/accounts').send({ ownerName: 'Rotated', currency: 'EUR' }).expect(201);
  await app.http.post('/admin/projections/account-summary/rebuild').expect(202);
  let asRequested = false;
  for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
    const status = (await app.http.get('/admin/projections/account-summary')).body;
    if (!status.rebuild) {
      // Over: swapped in (completed), or given up.
      asRequested = status.lastRebuildCompletedAt !== null;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // Meanwhile, does the live projection still follow the log? (its checkpoint reaches a fresh account within 20 s: generous, the suite runs on a loaded machine)
  const fresh = (await app.http.post('/accounts').send({ ownerName: 'Meanwhile', currency: 'EUR' }).expect(201)).body;
  let liveFollows = false;
  for (const deadline = Date.now() + 20_000; Date.now() < deadline;) {
    const status = (await app.http.get('/admin/projections/account-summary')).body;
    if (status.checkpoint.position >= fresh.position) {
      liveFollows = true;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // A rebuild given up leaves no rebuild in progress (its reason is logged, and shown in lastError
  // until the live runner's next batch clears it).
  const { rebuild } = (await app.http.get('/admin/projections/account-summary')).body as { rebuild: unknown };
  return { asRequested, liveFollows, rebuildEnded: rebuild === null };
}

describe('a rebuild works whichever projector login made an earlier copy (live projection checked too)', () => {
  it('control: with no leftover copy, the rebuild completes and the live projection follows', async () => {
    const clean = await createTestDatabase();
    databases.push(clean);
    const migrated = await startTestApp({ PROJECTIONS_ENABLED: 'false' }, clean);
    await migrated.app.close();
    expect(await rebuildScenario(false, clean, logins[0], logins[1])).toEqual({ asRequested: true, liveFollows: true, rebuildEnded: true });
  });

  it('rebuilds account-summary as a new projector login after an old login left a copy in public_rebuild', async () => {
    expect(await rebuildScenario('as-the-group', database, logins[0], logins[1])).toEqual({
      asRequested: true,
      liveFollows: true,
      rebuildEnded: true,
    });
  });

  it('a copy another login made by hand (not as the group) ends the rebuild as abandoned, not stuck, and the live projection follows', async () => {
    const other = await createTestDatabase();
    databases.push(other);
    const migrated = await startTestApp({ PROJECTIONS_ENABLED: 'false' }, other);
    await migrated.app.close();
    expect(await rebuildScenario('as-the-login', other, logins[0], logins[1])).toEqual({
      asRequested: false,
      liveFollows: true,
      rebuildEnded: true,
    });
  });
});
