import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { authorization } from './auth.js';
import { freePort } from './free-port.js';

const ROOT = join(import.meta.dirname, '..', '..');

/** Where `npm test` compiled the code (dist/), whether this file runs from test/ (jest) or dist/test/. */
export function distPath(...segments: string[]): string {
  const root = ROOT.endsWith(join('dist')) ? join(ROOT, '..') : ROOT;
  return join(root, 'dist', ...segments);
}

export interface AppProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly url: string;
  readonly output: () => string;
  /** SIGKILL, and resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM (graceful), and resolves once the process is gone. */
  stop(): Promise<void>;
}

/**
 * The compiled service (dist/src/main.js) in a process of its own, on `databaseUrl`, with extra
 * environment variables and node flags before the entry point; resolves once it answers HTTP. Runs in
 * an empty working directory, so no .env file of the project is read.
 */
export async function startAppProcess(
  databaseUrl: string,
  env: Record<string, string> = {},
  nodeFlags: readonly string[] = [],
): Promise<AppProcess> {
  const port = await freePort();
  const cwd = mkdtempSync(join(tmpdir(), 'ledger-app-'));
  const child = spawn(process.execPath, [...nodeFlags, distPath('src', 'main.js')], {
    cwd,
    // One segment unless the test asks for more (see test-app.ts).
    env: {
      PATH: process.env.PATH ?? '',
      RATE_LIMIT_ENABLED: 'false',
      PROJECTION_SEGMENTS: '1',
      ...env,
      DATABASE_URL: databaseUrl,
      PORT: String(port),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const orphanGuard = () => child.kill('SIGKILL'); // never leave a service behind if the test process ends
  process.once('exit', orphanGuard);
  void exited.then(() => {
    process.off('exit', orphanGuard);
    rmSync(cwd, { recursive: true, force: true });
  });
  const url = `http://127.0.0.1:${port}`;
  const app: AppProcess = {
    child,
    pid: child.pid!,
    port,
    url,
    output: () => output,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the service exited at start:\n${output}`);
    try {
      const response = await fetch(`${url}/admin/projections`, { headers: authorization() });
      if (response.ok) return app;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await app.kill();
      throw new Error(`the service did not answer within 30 s:\n${output}`);
    }
    await sleep(50);
  }
}

/** JSON over HTTP with fetch (the service runs in another process). */
export async function call(
  base: string,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<{ status: number; headers: Headers; body: any }> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { ...authorization(), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
}
