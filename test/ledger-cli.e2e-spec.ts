import { execFile, execFileSync } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ALL_SCOPES } from '../src/auth/scopes.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

// `ledger` as an operator runs it: from a production install of this working tree (`npm ci`,
// `npm run build`, `npm prune --omit=dev`: no TypeScript, no ts-node, no @nestjs/cli left), through
// `npx ledger …`, in production mode, against the test's PostgreSQL. Nothing of the repository's own
// node_modules or dist/ is used.

const ROOT = join(import.meta.dirname, '..');
const SECRET = 'an-operator-secret-of-at-least-32-characters';
const INSTALL_MS = 10 * 60_000; // npm ci + nest build + prune: about a minute on a warm cache, far more under load

let install: string;
let database: TestDatabase;

interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The project's files as they stand: tracked and new, ignored ones left out. */
function workingTreeFiles(): string[] {
  return execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' })
    .split('\0')
    .filter((file) => file && existsSync(join(ROOT, file)))
    .sort();
}

/** The project's files as they stand, into a fresh directory. */
function copyWorkingTree(target: string): void {
  for (const file of workingTreeFiles()) {
    mkdirSync(dirname(join(target, file)), { recursive: true });
    cpSync(join(ROOT, file), join(target, file));
  }
}

/** Where npm finds packages (a cache or proxy set by the environment), nothing else of it. */
const NPM_ACCESS = [
  'npm_config_cache',
  'npm_config_registry',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'http_proxy',
  'https_proxy',
  'no_proxy',
];

/** A minimal environment: no DATABASE_URL, NODE_ENV or other npm_* of the test run leaks into the command. */
function environment(extra: Record<string, string>): NodeJS.ProcessEnv {
  const access = Object.fromEntries(NPM_ACCESS.filter((name) => process.env[name]).map((name) => [name, process.env[name]]));
  return { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), ...access, ...extra };
}

function npm(args: string[], timeout = INSTALL_MS): void {
  execFileSync('npm', args, { cwd: install, env: environment({}), stdio: 'pipe', timeout });
}

/** `npx --no ledger …`: --no, so that a missing bin fails instead of fetching some other "ledger" package. */
function ledger(args: string[], env: Record<string, string> = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile('npx', ['--no', 'ledger', ...args], { cwd: install, env: environment(env), timeout: 120_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A loopback port that was free a moment ago, so that a connection to it is refused. */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

function production(): Record<string, string> {
  return { NODE_ENV: 'production', JWT_SECRET: SECRET, DATABASE_URL: database.url };
}

function expectNoStackTrace(outcome: Outcome): void {
  expect(outcome.stderr).not.toMatch(/^\s+at /m);
  expect(outcome.stdout).not.toMatch(/^\s+at /m);
}

/**
 * Set by .ci/run, which runs the suite twice (two PostgreSQL servers): the production install of one
 * working tree is built once, under this directory keyed by the tree's content, and the second run
 * uses it as it stands (the commands below only read it). Unset: a throwaway install per run.
 */
const SHARED_INSTALLS = process.env.LEDGER_CLI_INSTALL_CACHE;
const INSTALLED_MARK = '.ledger-cli-installed';

/** Builds the production install of the working tree in `target` (empty). */
function buildInstall(target: string): void {
  install = target;
  copyWorkingTree(install);
  npm(['ci', '--prefer-offline', '--no-audit', '--no-fund']);
  npm(['run', 'build']);
  npm(['prune', '--omit=dev', '--no-audit', '--no-fund']);
  // npm keeps `typescript` in a production install: it is an optional peer of @nestjs/swagger and of
  // nest-commander's cosmiconfig, and npm keeps an optional peer that is present. Moved out of reach,
  // so that every command below proves it runs without TypeScript.
  const typescript = join(install, 'node_modules', 'typescript');
  if (existsSync(typescript)) renameSync(typescript, join(install, 'typescript.moved-away'));
}

/** The working tree's files and contents, hashed: a shared install is reused only for the same tree. */
function treeKey(): string {
  const hash = createHash('sha256');
  for (const file of workingTreeFiles())
    hash
      .update(file)
      .update('\0')
      .update(readFileSync(join(ROOT, file)))
      .update('\0');
  return hash.digest('hex').slice(0, 16);
}

beforeAll(async () => {
  if (SHARED_INSTALLS) {
    const target = join(SHARED_INSTALLS, treeKey());
    if (existsSync(join(target, INSTALLED_MARK))) install = target;
    else {
      rmSync(target, { recursive: true, force: true });
      mkdirSync(target, { recursive: true });
      buildInstall(target);
      writeFileSync(join(target, INSTALLED_MARK), '');
    }
  } else buildInstall(mkdtempSync(join(tmpdir(), 'ledger-install-')));
  database = await createTestDatabase();
}, INSTALL_MS * 3);

afterAll(async () => {
  await database?.drop();
  if (install && !SHARED_INSTALLS) rmSync(install, { recursive: true, force: true });
});

describe('the pruned production install', () => {
  it('has the compiled bin and none of the build or test tooling', () => {
    expect(existsSync(join(install, 'dist', 'src', 'cli', 'ledger.js'))).toBe(true);
    for (const devOnly of ['ts-jest', 'ts-node', '@nestjs/cli', 'jest'])
      expect(existsSync(join(install, 'node_modules', devOnly))).toBe(false);
  });
});

describe('npx ledger migrate', () => {
  it('applies every migration to DATABASE_URL, then finds none pending', async () => {
    const first = await ledger(['migrate'], production());
    expect(first).toMatchObject({ code: 0, stderr: '' });
    expect(first.stdout).toMatch(/^Applied: .+/);
    const again = await ledger(['migrate'], production());
    expect(again).toMatchObject({ code: 0, stdout: 'No pending migrations\n' });
  });
});

describe('npx ledger projections', () => {
  it('status prints one line per projection and one per segment of it, and exits 0', async () => {
    const outcome = await ledger(['projections', 'status'], production());
    expect(outcome.code).toBe(0);
    const lines = outcome.stdout.trimEnd().split('\n');
    const projections = lines.filter((line) => !line.startsWith(' '));
    expect(projections.map((line) => line.split(/\s+/)[0])).toEqual(expect.arrayContaining(['account-summary', 'account-transactions']));
    for (const line of projections) expect(line).toMatch(/^\S+\s+(async|inline)\s+\S+\s+checkpoint \d+\s+lag \d+ events \/ \d+ ms/);
    // Each projection line is followed by its segments (the count stored: 1 of 1 on a fresh database
    // migrated by a command that never changes the layout), owner `-` with no service running.
    for (const [index, line] of lines.entries()) {
      if (line.startsWith(' ')) {
        expect(line).toMatch(/^ {2}segment \d+\/\d+\s+\S+\s+checkpoint \d+\s+lag \d+ events \/ \d+ ms\s+owner -/);
      } else if (/^\S+\s+async/.test(line)) {
        expect({ projection: line, next: lines[index + 1] }).toEqual({ projection: line, next: expect.stringMatching(/^ {2}segment 0\//) });
      }
    }
  });

  it('an unknown projection is a failure (exit 1) told in one line, without a stack', async () => {
    const outcome = await ledger(['projections', 'retry', 'no-such-projection'], production());
    expect(outcome.code).toBe(1);
    expect(outcome.stderr.trim()).toBe('ledger: There is no projection named "no-such-projection"');
    expectNoStackTrace(outcome);
  });

  it('in production without DATABASE_URL refuses (exit 1), naming the variable, and starts no embedded server', async () => {
    const outcome = await ledger(['projections', 'status'], { NODE_ENV: 'production', JWT_SECRET: SECRET });
    expect(outcome.code).toBe(1);
    expect(outcome.stderr).toMatch(/^ledger: Invalid configuration: DATABASE_URL must be set in production[^\n]*\n$/);
    expectNoStackTrace(outcome);
    expect(existsSync(join(install, '.data'))).toBe(false);
  });
});

describe('an unreachable database', () => {
  // A port nothing listens on: refused at once. TypeORM's Nest module would retry for half a minute,
  // logging a stack each time; the operator gets one line at once instead.
  it.each([[['migrate']], [['projections', 'status']], [['projections', 'retry', 'account-summary']]])(
    'ledger %j exits 1 with one line naming the refusal, no stack',
    async (args) => {
      const outcome = await ledger(args, {
        ...production(),
        DATABASE_URL: `postgres://nobody:secret@127.0.0.1:${await closedPort()}/ledger`,
      });
      expect(outcome.code).toBe(1);
      expect(outcome.stdout).toBe('');
      expect(outcome.stderr).toMatch(/^ledger: connect ECONNREFUSED 127\.0\.0\.1:\d+\n$/);
      expectNoStackTrace(outcome);
    },
  );
});

describe('npx ledger token', () => {
  it('prints a token signed with JWT_SECRET, with the scopes, subject and lifetime asked for', async () => {
    const outcome = await ledger(['token', '--scopes', 'ledger:queries,ledger:admin', '--sub', 'ops-bot', '--ttl', '15m'], {
      NODE_ENV: 'production',
      JWT_SECRET: SECRET,
    });
    expect(outcome).toMatchObject({ code: 0, stderr: '' });
    const [header, payload, signature] = outcome.stdout.trim().split('.');
    expect(createHmac('sha256', SECRET).update(`${header}.${payload}`).digest('base64url')).toBe(signature);
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    expect(claims).toMatchObject({ sub: 'ops-bot', scope: 'ledger:queries ledger:admin' });
    expect(claims.exp - claims.iat).toBe(15 * 60);
  });

  it('defaults to every scope, subject "developer", one hour', async () => {
    const outcome = await ledger(['token'], { JWT_SECRET: SECRET });
    expect(outcome.code).toBe(0);
    const claims = JSON.parse(Buffer.from(outcome.stdout.trim().split('.')[1]!, 'base64url').toString());
    expect(claims.scope.split(' ').sort()).toEqual([...ALL_SCOPES].sort());
    expect(claims).toMatchObject({ sub: 'developer' });
    expect(claims.exp - claims.iat).toBe(3600);
  });
});

describe('bad arguments', () => {
  it.each([
    [['projections', 'rebuild'], /missing required argument 'name'/, /Usage: ledger projections rebuild \[options\] <name>/],
    [['projections', 'bogus'], /unknown command 'bogus'/, /Usage: ledger projections/],
    [['projections', 'status', 'extra'], /too many arguments/, /Usage: ledger projections status/],
    [['bogus'], /unknown command 'bogus'/, /Usage: ledger \[options\] \[command\]/],
    [[], /^/, /Usage: ledger \[options\] \[command\]/],
    [['token', '--scopes', 'ledger:everything'], /unknown scope\(s\) ledger:everything/, /Usage: ledger token/],
    [['token', '--ttl', '60'], /--ttl "60" is not a lifetime/, /Usage: ledger token/],
    [['token', '--expires', '1h'], /unknown option '--expires'/, /Usage: ledger token/],
  ])('ledger %j: exit 2, the error and the usage on stderr, nothing on stdout, no stack', async (args, error, usage) => {
    const outcome = await ledger(args, production());
    expect(outcome.code).toBe(2);
    expect(outcome.stdout).toBe('');
    expect(outcome.stderr).toMatch(error);
    expect(outcome.stderr).toMatch(usage);
    expectNoStackTrace(outcome);
  });

  it('--help is usage on stdout with exit 0', async () => {
    const outcome = await ledger(['projections', '--help']);
    expect(outcome.code).toBe(0);
    expect(outcome.stdout).toMatch(/rebuild <name>/);
  });
});
