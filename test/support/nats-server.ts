import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './free-port.js';

export interface NatsServer {
  readonly port: number;
  readonly url: string;
  /** Stops the broker (SIGKILL: as abrupt as a crash); its store stays for start(). */
  stop(): Promise<void>;
  /** Starts it again on the same port and store (after stop). */
  start(): Promise<void>;
  /** Stops it and removes its store. */
  dispose(): Promise<void>;
  output(): string;
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * A real nats-server with JetStream (`nats-server -js`, Debian package `nats-server`) on a free
 * port and a temporary store, like the tests' PostgreSQL; killed by dispose() or when the test
 * process exits.
 */
export async function startNatsServer(): Promise<NatsServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ledger-nats-'));
  let child: ChildProcess | undefined;
  let output = '';
  const guard = () => child?.kill('SIGKILL');
  process.once('exit', guard);

  const start = async () => {
    const proc = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    proc.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    proc.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + 20_000;
    while (!(await listening(port))) {
      if (proc.exitCode !== null) throw new Error(`nats-server exited at start:\n${output}`);
      if (Date.now() > deadline) throw new Error(`nats-server did not listen within 20 s:\n${output}`);
      await sleep(50);
    }
  };
  const stop = async () => {
    const proc = child;
    child = undefined;
    if (proc?.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    stop,
    start,
    async dispose() {
      await stop();
      process.off('exit', guard);
      rmSync(dir, { recursive: true, force: true });
    },
    output: () => output,
  };
}
