import { type Server, type Socket, connect, createServer } from 'node:net';

export interface DatabaseProxy {
  /** The database URL rewritten to go through the proxy. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of PostgreSQL on a free local port: `relay` wires each client connection to
 * its own upstream connection (both sockets are destroyed by `close()`).
 */
export async function startDatabaseProxy(databaseUrl: string, relay: (client: Socket, upstream: Socket) => void): Promise<DatabaseProxy> {
  const target = new URL(databaseUrl);
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port || 5432), target.hostname);
    sockets.add(client).add(upstream);
    relay(client, upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(databaseUrl);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as { port: number }).port);
  return {
    url: url.toString(),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A proxy that passes everything on, and cuts a client off right after it sent a message for which
 * `cutAfter(text)` answers true: that message reaches the server, which runs it (its side stays
 * open 3 s more), and its answer is lost — a connection lost during a COMMIT. `cutAfter` keeps any
 * state of its own (cut once, or only when armed).
 */
export function startCuttingProxy(databaseUrl: string, cutAfter: (text: string) => boolean): Promise<DatabaseProxy> {
  return startDatabaseProxy(databaseUrl, (client, upstream) => {
    let cut = false;
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
    upstream.on('close', () => client.destroy());
    upstream.pipe(client);
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      if (!cut && cutAfter(chunk.toString('utf8'))) {
        cut = true;
        upstream.unpipe(client);
        client.destroy();
        setTimeout(() => upstream.end(), 3_000).unref();
      }
    });
    client.on('close', () => {
      if (!cut) upstream.destroy();
    });
  });
}
