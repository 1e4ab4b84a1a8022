import type { Socket } from 'node:net';
import { type DatabaseProxy, startDatabaseProxy } from './tcp-proxy.js';

export type LateReadyProxy = DatabaseProxy;

/**
 * A TCP proxy in front of PostgreSQL that delivers every ReadyForQuery message ('Z') of the server
 * in a TCP chunk of its own, `delayMs` after the messages before it. On a loaded machine the
 * network does this by chance: a query's ErrorResponse reaches the driver, which rejects the query
 * at once, before the ReadyForQuery that says the transaction is now aborted. Here it happens every
 * time. The stream is parsed by message (a type byte, then an int32 length that counts itself), which
 * holds from the server's first byte as long as the client does not ask for TLS.
 */
export function startLateReadyProxy(databaseUrl: string, delayMs: number): Promise<LateReadyProxy> {
  return startDatabaseProxy(databaseUrl, (client, upstream) => {
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    relayHoldingBackReady(upstream, client, delayMs);
  });
}

/** Copies the server's messages to the client in order; each ReadyForQuery goes alone, late. */
function relayHoldingBackReady(from: Socket, to: Socket, delayMs: number): void {
  let buffered = Buffer.alloc(0);
  let sending: Promise<void> = Promise.resolve();
  from.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    const messages: Buffer[] = [];
    while (buffered.length >= 5) {
      const length = 1 + buffered.readInt32BE(1);
      if (buffered.length < length) break;
      messages.push(buffered.subarray(0, length));
      buffered = buffered.subarray(length);
    }
    // One chain keeps the order: a ReadyForQuery held back holds back whatever follows it too.
    sending = sending.then(async () => {
      let before: Buffer[] = [];
      for (const message of messages) {
        if (message[0] !== 'Z'.charCodeAt(0)) {
          before.push(message);
          continue;
        }
        if (before.length > 0) to.write(Buffer.concat(before));
        before = [];
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        to.write(message);
      }
      if (before.length > 0) to.write(Buffer.concat(before));
    });
  });
}
