// Projection lag of a service in another process (issue 14): for every deposit it acknowledged, the
// time from the event's recorded_at (clock_timestamp() at its INSERT, just before its commit) until a
// poll of projection_checkpoints sees each projection's checkpoint pass it, in commit order
// (transaction_id, position). Both instants are read on the database's clock. A poll every `pollMs`
// overstates each lag by up to that; an event is only looked for once its HTTP answer arrived.
// (bench/projections.bench.ts measures the same in-process, from its engine's 'advanced' events.)
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

export class ProjectionLagSampler {
  private readonly client: pg.Client;
  private readonly pending = new Map<string, Set<string>>(); // projection → positions not yet passed
  private readonly lags = new Map<string, number[]>();
  private names: string[] = [];
  private running = false;
  private loop: Promise<void> = Promise.resolve();

  constructor(
    databaseUrl: string,
    private readonly pollMs: number,
  ) {
    this.client = new pg.Client({ connectionString: databaseUrl });
    this.client.on('error', () => undefined);
  }

  async start(): Promise<void> {
    await this.client.connect();
    const { rows } = await this.client.query<{ name: string }>('SELECT name FROM projection_checkpoints ORDER BY name');
    this.names = rows.map((row) => row.name);
    for (const name of this.names) {
      this.pending.set(name, new Set());
      this.lags.set(name, []);
    }
    this.running = true;
    this.loop = this.poll();
  }

  /** An event the service acknowledged (its global position, from the answer's body). */
  add(position: number | string): void {
    for (const name of this.names) this.pending.get(name)!.add(String(position));
  }

  /** Waits until every added event passed every projection (at most `timeoutMs`); lags in ms, sorted, per projection. */
  async stop(timeoutMs = 60_000): Promise<Map<string, number[]>> {
    const deadline = Date.now() + timeoutMs;
    while (this.outstanding() > 0 && Date.now() < deadline) await sleep(this.pollMs);
    if (this.outstanding() > 0) console.error(`projection lag: ${this.outstanding()} events still not projected after ${timeoutMs} ms`);
    this.running = false;
    await this.loop;
    await this.client.end().catch(() => undefined);
    for (const lags of this.lags.values()) lags.sort((a, b) => a - b);
    return this.lags;
  }

  private outstanding(): number {
    let count = 0;
    for (const positions of this.pending.values()) count += positions.size;
    return count;
  }

  private async poll(): Promise<void> {
    while (this.running) {
      const positions = new Set<string>();
      for (const set of this.pending.values()) for (const position of set) positions.add(position);
      if (positions.size > 0) {
        const { rows } = await this.client.query<{ name: string; position: string; lag_ms: number }>({
          name: 'bench-projection-lag',
          text: `SELECT c.name, e.position::text AS position, extract(epoch FROM clock_timestamp() - e.recorded_at)::float8 * 1000 AS lag_ms
                   FROM events e
                   JOIN projection_checkpoints c ON (e.transaction_id, e.position) <= (c.transaction_id, c.position)
                  WHERE e.position = ANY($1::bigint[])`,
          values: [[...positions]],
        });
        for (const row of rows) {
          if (this.pending.get(row.name)?.delete(row.position)) this.lags.get(row.name)!.push(row.lag_ms);
        }
      }
      await sleep(this.pollMs);
    }
  }
}
