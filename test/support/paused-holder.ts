// A lease holder "paused" right after a given statement returned (as if its process stopped there:
// a GC pause, SIGSTOP), and another instance's takeover of the lease row that refuses to wait for a
// lock longer than a bound. Used to show that no row lock is held across such a pause.
import pg from 'pg';

type Query = (this: pg.Client, ...args: unknown[]) => unknown;

// eslint-disable-next-line @typescript-eslint/unbound-method -- kept to be called with its client as `this`
const originalQuery = pg.Client.prototype.query as Query;

/**
 * From now on, a connection on which a statement matching `after` has returned is paused for
 * `pauseMs` before it sends anything more; resolves when such a statement returned. `restore()`
 * (afterEach) puts the driver back.
 */
export function pauseAfterStatement(after: (text: string) => boolean, pauseMs: number): Promise<void> {
  let returned!: () => void;
  const happened = new Promise<void>((resolve) => (returned = resolve));
  const paused = new WeakSet<pg.Client>();
  (pg.Client.prototype as { query: Query }).query = function (this: pg.Client, ...args: unknown[]) {
    const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string } | undefined)?.text;
    const callback = typeof args[args.length - 1] === 'function';
    if (callback || typeof text !== 'string') return originalQuery.apply(this, args);
    const send = async () => {
      if (paused.has(this)) {
        paused.delete(this);
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
      const result = await (originalQuery.apply(this, args) as Promise<unknown>);
      if (after(text)) {
        paused.add(this);
        returned();
      }
      return result;
    };
    return send();
  };
  return happened;
}

/** Undoes pauseAfterStatement. */
export function restore(): void {
  (pg.Client.prototype as { query: Query }).query = originalQuery;
}

/**
 * Another instance takes over the lease rows matching `where` (SQL on projection_checkpoints, $1 its
 * parameter) for `owner`; rejected (lock_timeout) if it waited more than `lockTimeoutMs` for a row.
 */
export async function takeOverWithin(url: string, where: string, parameter: string, owner: string, lockTimeoutMs: number): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await originalQuery.call(client, 'BEGIN');
    await originalQuery.call(client, `SET LOCAL lock_timeout = '${lockTimeoutMs}ms'`);
    await originalQuery.call(
      client,
      `UPDATE projection_checkpoints SET lease_owner = $2, lease_token = lease_token + 1,
         lease_expires_at = clock_timestamp() + interval '1 minute' WHERE ${where}`,
      [parameter, owner],
    );
    await originalQuery.call(client, 'COMMIT');
  } finally {
    await client.end();
  }
}
