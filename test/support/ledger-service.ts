import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { authorization } from './auth.js';
import { freePort } from './free-port.js';

/** The repository root, whether this file runs from test/support (jest) or dist/test/support. */
function repositoryRoot(): string {
  const root = join(import.meta.dirname, '..', '..');
  return root.endsWith('dist') ? join(root, '..') : root;
}

export interface LedgerService {
  readonly url: string;
  readonly pid: number;
  /** Everything the service printed so far (for diagnostics). */
  output(): string;
  /** SIGKILL: no shutdown hook runs; resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM: a graceful stop; resolves once the process is gone. */
  stop(): Promise<void>;
}

/**
 * The compiled service (dist/src/main.js, built by `npm test`) in a process of its own on
 * `databaseUrl`, as `npm run start:prod` runs it; resolves once it answers HTTP. Runs in an empty
 * working directory, so no .env file of the project is read.
 */
export async function startLedgerService(databaseUrl: string, env: Record<string, string> = {}): Promise<LedgerService> {
  const port = await freePort();
  const cwd = mkdtempSync(join(tmpdir(), 'ledger-service-'));
  const child: ChildProcess = spawn(process.execPath, [join(repositoryRoot(), 'dist', 'src', 'main.js')], {
    cwd,
    env: { PATH: process.env.PATH ?? '', RATE_LIMIT_ENABLED: 'false', ...env, DATABASE_URL: databaseUrl, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const orphanGuard = () => child.kill('SIGKILL'); // never leave a service behind the test process
  process.once('exit', orphanGuard);
  void exited.then(() => {
    process.off('exit', orphanGuard);
    rmSync(cwd, { recursive: true, force: true });
  });
  const running = () => child.exitCode === null && child.signalCode === null;
  const service: LedgerService = {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    output: () => output,
    async kill() {
      if (running()) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (running()) child.kill('SIGTERM');
      await exited;
    },
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (!running()) throw new Error(`the service exited at start:\n${output}`);
    try {
      if ((await fetch(`${service.url}/admin/projections`, { headers: authorization() })).ok) return service;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await service.kill();
      throw new Error(`the service did not answer within 30 s:\n${output}`);
    }
    await sleep(50);
  }
}

/** JSON over HTTP to a service in another process. */
export async function callService(
  service: LedgerService,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<{ status: number; headers: Headers; body: any }> {
  const response = await fetch(`${service.url}${path}`, {
    method,
    headers: { ...authorization(), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
}
