import { type ChildProcess, fork } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { EmbeddedDatabase, EmbeddedDatabaseError } from '../src/database/embedded-database.js';
import { freePort } from './support/free-port.js';

const parent = mkdtempSync(join(tmpdir(), 'ledger-embedded-'));
chmodSync(parent, 0o755);
afterAll(() => rmSync(parent, { recursive: true, force: true }));

function startInChild(dir: string, port: number): Promise<ChildProcess> {
  const child = fork(join(import.meta.dirname, 'support/embedded-database.child.js'), [dir, String(port)], { stdio: 'ignore' });
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
  });
}

async function selectOne(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<{ one: number }>('SELECT 1 AS one')).rows[0].one;
  } finally {
    await client.end();
  }
}

function serverPid(dir: string): number {
  return Number(readFileSync(join(dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('embedded PostgreSQL', () => {
  it('stops the orphan left by a killed run, then starts and serves queries', async () => {
    const dir = join(parent, 'orphan');
    const port = await freePort();
    const child = await startInChild(dir, port);
    const orphanPid = serverPid(dir);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(isAlive(orphanPid)).toBe(true); // the crash left PostgreSQL running, holding the port

    const database = await EmbeddedDatabase.start({ dir, port, database: 'postgres' });
    try {
      expect(isAlive(orphanPid)).toBe(false);
      expect(await selectOne(database.url)).toBe(1);
    } finally {
      await database.stop();
    }
    expect(existsSync(join(dir, 'postmaster.pid'))).toBe(false);
  });

  it('refuses to touch a server another live instance is using', async () => {
    const dir = join(parent, 'shared');
    const port = await freePort();
    const child = await startInChild(dir, port);
    try {
      await expect(EmbeddedDatabase.start({ dir, port, database: 'postgres' })).rejects.toThrow(/in use by another running instance/);
      expect(await selectOne(`postgres://postgres:postgres@127.0.0.1:${port}/postgres`)).toBe(1);
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  });

  it('says clearly when its port is taken', async () => {
    const port = await freePort();
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    try {
      const start = EmbeddedDatabase.start({ dir: join(parent, 'busy'), port, database: 'postgres' });
      await expect(start).rejects.toBeInstanceOf(EmbeddedDatabaseError);
      await expect(start).rejects.toThrow(`Port ${port} on 127.0.0.1 is already in use`);
    } finally {
      squatter.close();
    }
  });
});
