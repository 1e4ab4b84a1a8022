// Projection lag of a service in another process (issue 14): for every deposit it acknowledged, the
// time from the event's recorded_at (clock_timestamp() at its INSERT, just before its commit) until a
// poll of projection_checkpoints sees a checkpoint pass it, in commit order (transaction_id,
// position). Both instants are read on the database's clock. A poll every `pollMs` overstates each
// lag by up to that; an event is only looked for once its HTTP answer arrived.
// Two figures per projection, because a segmented projection's segments pass an event at different
// moments (docs/architecture.md, segment-targeted wake-ups):
// - applied: until the segment that owns the event's stream passed it (the key is the stream id, as
//   for the account projections): when a plain read of the projection's tables shows it;
// - every segment: until all its segments passed it: when the projection's checkpoint, which a
//   read given the event's position waits for, reflects it. The segments with nothing to apply pass
//   it up to PROJECTION_IDLE_SEGMENT_DELAY_MS later, unless a waiting read hurries them.
// (bench/projections.bench.ts measures the same in-process, from its engine's 'advanced' events.)
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { segmentOfKey } from '../src/event-sourcing/projection-segments.js';

export interface ProjectionLags {
  /** ms, sorted: until the segment owning the event's stream passed it. */
  readonly applied: number[];
  /** ms, sorted: until every segment of the projection passed it. */
  readonly everySegment: number[];
}

interface Row {
  readonly name: string;
  readonly projection: string;
  readonly segment: number;
  readonly segments: number;
}

interface PendingEvent {
  /** Checkpoint rows that have not passed it yet. */
  readonly rows: Set<string>;
  slowest: number;
}

export class ProjectionLagSampler {
  private readonly client: pg.Client;
  private rows = new Map<string, Row>();
  /** projection → position → the event's rows still to pass it */
  private readonly pending = new Map<string, Map<string, PendingEvent>>();
  private readonly lags = new Map<string, ProjectionLags>();
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
    const { rows } = await this.client.query<Row>('SELECT name, projection, segment, segments FROM projection_checkpoints ORDER BY name');
    this.rows = new Map(rows.map((row) => [row.name, row]));
    for (const { projection } of rows) {
      this.pending.set(projection, new Map());
      this.lags.set(projection, { applied: [], everySegment: [] });
    }
    this.running = true;
    this.loop = this.poll();
  }

  /** An event the service acknowledged (its global position, from the answer's body). */
  add(position: number | string): void {
    for (const [projection, events] of this.pending) {
      const rows = [...this.rows.values()].filter((row) => row.projection === projection).map((row) => row.name);
      events.set(String(position), { rows: new Set(rows), slowest: 0 });
    }
  }

  /** Waits until every added event passed every segment (at most `timeoutMs`); lags per projection. */
  async stop(timeoutMs = 60_000): Promise<Map<string, ProjectionLags>> {
    const deadline = Date.now() + timeoutMs;
    while (this.outstanding() > 0 && Date.now() < deadline) await sleep(this.pollMs);
    if (this.outstanding() > 0) console.error(`projection lag: ${this.outstanding()} events still not projected after ${timeoutMs} ms`);
    this.running = false;
    await this.loop;
    await this.client.end().catch(() => undefined);
    for (const { applied, everySegment } of this.lags.values()) {
      applied.sort((a, b) => a - b);
      everySegment.sort((a, b) => a - b);
    }
    return this.lags;
  }

  private outstanding(): number {
    let count = 0;
    for (const events of this.pending.values()) count += events.size;
    return count;
  }

  private passed(name: string, position: string, streamId: string, lagMs: number): void {
    const row = this.rows.get(name);
    const event = row && this.pending.get(row.projection)?.get(position);
    if (!row || !event?.rows.delete(name)) return;
    const lags = this.lags.get(row.projection)!;
    if (segmentOfKey(streamId, row.segments) === row.segment) lags.applied.push(lagMs);
    event.slowest = Math.max(event.slowest, lagMs);
    if (event.rows.size === 0) {
      lags.everySegment.push(event.slowest);
      this.pending.get(row.projection)!.delete(position);
    }
  }

  private async poll(): Promise<void> {
    while (this.running) {
      const positions = new Set<string>();
      for (const events of this.pending.values()) for (const position of events.keys()) positions.add(position);
      if (positions.size > 0) {
        const { rows } = await this.client.query<{ name: string; position: string; stream_id: string; lag_ms: number }>({
          name: 'bench-projection-lag',
          text: `SELECT c.name, e.position::text AS position, e.stream_id, extract(epoch FROM clock_timestamp() - e.recorded_at)::float8 * 1000 AS lag_ms
                   FROM events e
                   JOIN projection_checkpoints c ON (e.transaction_id, e.position) <= (c.transaction_id, c.position)
                  WHERE e.position = ANY($1::bigint[])`,
          values: [[...positions]],
        });
        for (const row of rows) this.passed(row.name, row.position, row.stream_id, row.lag_ms);
      }
      await sleep(this.pollMs);
    }
  }
}
