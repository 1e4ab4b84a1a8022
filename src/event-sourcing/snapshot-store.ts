import { Inject, Injectable, Logger } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import type { SnapshotCodec } from './decider.js';
import { sql } from './sql.js';

export const SNAPSHOT_OPTIONS = Symbol('SNAPSHOT_OPTIONS');

export interface SnapshotOptions {
  /** Per aggregate type: take a snapshot every N events (0 or absent: never). */
  readonly intervals: Readonly<Record<string, number>>;
}

export interface Snapshot<State> {
  readonly state: State;
  readonly version: number;
  readonly position: number;
}

/**
 * Snapshots are a cache: loading (EventStore.readStreamAfterSnapshot) uses the newest one whose
 * schema version is the aggregate's current one, plus the events after it, and time travel (StateAt)
 * the newest such one at or before the version asked for; any other snapshot is ignored, and failing
 * to write one only costs speed.
 */
@Injectable()
export class SnapshotStore {
  private readonly logger = new Logger(SnapshotStore.name);

  constructor(
    private readonly dataSource: DataSource,
    @Inject(SNAPSHOT_OPTIONS) private readonly options: SnapshotOptions,
  ) {}

  intervalOf(codec: SnapshotCodec<unknown> | undefined): number {
    return codec ? (this.options.intervals[codec.aggregate] ?? 0) : 0;
  }

  /** Writes the snapshot at its version (the older ones stay: see migration …015). */
  async save<State>(streamId: string, codec: SnapshotCodec<State>, snapshot: Snapshot<State>, manager: EntityManager): Promise<void> {
    // Inside a caller's transaction, a failure must not abort it (a snapshot is only a cache): the
    // write gets a savepoint of its own to roll back to.
    const inTransaction = manager.queryRunner?.isTransactionActive === true;
    if (inTransaction) await sql(manager, 'SAVEPOINT snapshot_write');
    try {
      // One row per crossing, kept (time travel starts from old ones). The state at a version is a
      // fact: a row already there for this version and schema is the same state, left as it is.
      await sql(
        manager,
        `INSERT INTO snapshots (stream_id, aggregate, schema_version, version, position, state)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (stream_id, schema_version, version) DO NOTHING`,
        [streamId, codec.aggregate, codec.schemaVersion, snapshot.version, snapshot.position, JSON.stringify(codec.encode(snapshot.state))],
      );
      if (inTransaction) await sql(manager, 'RELEASE SAVEPOINT snapshot_write');
    } catch (error) {
      if (inTransaction) await sql(manager, 'ROLLBACK TO SAVEPOINT snapshot_write');
      this.logger.warn(`Could not snapshot ${streamId}: ${(error as Error).message}`);
    }
  }

  get manager(): EntityManager {
    return this.dataSource.manager;
  }
}
