import type { Logger } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { sql } from './sql.js';

/**
 * This process's heartbeat row in projection_instances, renewed every third of the lease TTL: how
 * every instance knows how many instances share the segments, one that holds no segment yet
 * included (leases alone would not show a newcomer, which would then never get work). A row expires
 * like a lease: a crashed instance stops counting within the TTL, when its leases are free too.
 */
export class InstanceHeartbeat {
  /** Live instances running each projection, this one included, as of the last beat. */
  private live = new Map<string, number>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly dataSource: DataSource,
    private readonly owner: string,
    /** The projections this instance runs: only instances that run a projection share its segments. */
    private readonly projections: readonly string[],
    private readonly ttlMs: number,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(
      () =>
        // Retried at the next tick; meanwhile the count of instances is the last one seen.
        void this.beat().catch((error: unknown) => this.logger.warn(`Instance heartbeat failed: ${(error as Error).message}`)),
      this.ttlMs / 3,
    );
    this.timer.unref();
  }

  /** Stops beating and removes the row, so the others count one fewer at once (and take its share). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await sql(this.dataSource.manager, `DELETE FROM projection_instances WHERE owner = $1`, [this.owner]).catch(() => undefined);
  }

  /** Live instances that run the projection, this one included. */
  liveInstances(projection: string): number {
    return (this.live.get(projection) ?? 0) + 1;
  }

  async beat(): Promise<void> {
    const { rows } = await sql<{ projection: string; others: number }>(
      this.dataSource.manager,
      `WITH beat AS (
           INSERT INTO projection_instances (owner, projections, expires_at)
           VALUES ($1, $3::text[], clock_timestamp() + make_interval(secs => $2::double precision / 1000))
           ON CONFLICT (owner) DO UPDATE SET expires_at = EXCLUDED.expires_at, projections = EXCLUDED.projections
         ), forgotten AS (
           DELETE FROM projection_instances WHERE owner <> $1 AND expires_at < clock_timestamp() - interval '1 hour'
         )
         SELECT p AS projection, count(*)::int AS others FROM projection_instances, unnest(projections) AS p
           WHERE owner <> $1 AND expires_at > clock_timestamp() GROUP BY p`,
      [this.owner, this.ttlMs, this.projections],
    );
    this.live = new Map(rows.map((row) => [row.projection, row.others]));
  }
}

/**
 * The segments of one projection this process holds, against its fair share: ceil(segments / live
 * instances). A runner takes a free segment only while this process holds fewer than its share, and
 * gives its segment up (at the top of its loop, no batch in flight) when this process holds more —
 * the highest-numbered ones first — so that a newcomer gets work and a dead instance's segments are
 * taken over once its leases expire. Two processes may briefly both be under or over their share
 * (each counts instances every third of the TTL): that only moves leases around; what is applied is
 * decided by the fenced lease rows, never by this count.
 */
export class SegmentShare {
  private readonly held = new Set<number>();

  constructor(
    readonly segments: number,
    private readonly liveInstances: () => number,
  ) {}

  get share(): number {
    return Math.ceil(this.segments / Math.max(1, this.liveInstances()));
  }

  canTake(): boolean {
    return this.held.size < this.share;
  }

  holding(segment: number): void {
    this.held.add(segment);
  }

  released(segment: number): void {
    this.held.delete(segment);
  }

  /** Whether this segment is one of the extra ones this process must give up. */
  mustRelease(segment: number): boolean {
    const excess = this.held.size - this.share;
    if (excess <= 0) return false;
    return [...this.held]
      .sort((a, b) => b - a)
      .slice(0, excess)
      .includes(segment);
  }
}
