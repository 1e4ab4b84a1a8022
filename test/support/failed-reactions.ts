import { type Queryable, rowsOf } from './ledger-fold.js';

/**
 * The most failed reactions a process manager's checkpoints counted at any moment until `until`
 * (polled every 25 ms). A reaction that fails counts an attempt on its checkpoint until the
 * checkpoint moves on, so a failure that was later retried with success is still seen here; after
 * PROJECTION_MAX_ATTEMPTS of them the process manager stops in `failed`.
 */
export async function mostFailedReactions(db: Queryable, until: number, projection = 'transfer-process'): Promise<number> {
  let most = 0;
  while (Date.now() < until) {
    const [{ attempts }] = await rowsOf<{ attempts: number }>(
      db,
      `SELECT coalesce(max(attempts), 0)::int AS attempts FROM projection_checkpoints WHERE projection = $1`,
      [projection],
    );
    most = Math.max(most, attempts);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return most;
}
