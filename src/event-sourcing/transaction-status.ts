/**
 * The transaction status PostgreSQL last reported on a node-postgres connection ('I' idle, 'T' in
 * a transaction, 'E' in an aborted one), once every message the server owes has arrived.
 *
 * Why wait: node-postgres rejects a failed query as soon as its ErrorResponse arrives, before the
 * ReadyForQuery that carries the new status. When the two come in separate TCP chunks (a loaded
 * machine; seen in CI), work that caught the error resumes while getTransactionStatus() still says
 * 'T', and an aborted unit of work would be reported committed while its COMMIT rolls back. Until
 * that ReadyForQuery is in, the client says it is not ready for a query; this waits for it (no
 * round trip, usually no wait at all). The flag is also looked at again every RECHECK_MS: a query
 * the driver refuses before sending it clears the flag for one tick and sets it back without any
 * event (found in review), and that must not hold a COMMIT forever.
 */
const RECHECK_MS = 10;

export async function settledTransactionStatus(connection: unknown): Promise<string | null> {
  const client = connection as Partial<PgClientInternals> | undefined;
  if (typeof client?.getTransactionStatus !== 'function') return null;
  while (client.readyForQuery === false && client.connection !== undefined && open(client as PgClientInternals)) {
    await nextReadyOrEnd(client as PgClientInternals);
  }
  return client.getTransactionStatus();
}

/** What node-postgres 8 keeps on its Client and this reads (not part of its typed API). */
interface PgClientInternals {
  getTransactionStatus(): string | null;
  /** False from a query's submission until the server's next ReadyForQuery. */
  readyForQuery: boolean;
  connection: NodeJS.EventEmitter;
  /** False once the socket failed; _ending / _ended once it is being or has been closed. */
  _queryable?: boolean;
  _ending?: boolean;
  _ended?: boolean;
  once(event: 'end' | 'error', listener: () => void): unknown;
  off(event: 'end' | 'error', listener: () => void): unknown;
}

function open(client: PgClientInternals): boolean {
  return client._queryable !== false && client._ending !== true && client._ended !== true;
}

function nextReadyOrEnd(client: PgClientInternals): Promise<void> {
  return new Promise((resolve) => {
    // The client's own listener was registered first, so the status is updated when this runs.
    const recheck = setTimeout(() => done(), RECHECK_MS);
    const done = () => {
      clearTimeout(recheck);
      client.connection.off('readyForQuery', done);
      client.off('end', done);
      client.off('error', done);
      resolve();
    };
    client.connection.once('readyForQuery', done);
    client.once('end', done);
    client.once('error', done);
  });
}
