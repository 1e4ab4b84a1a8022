import { Inject, Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { advance, advancePast } from './projection-advance-sql.js';
import { type ProjectionState, type Row, toState } from './projection-checkpoint-row.js';
import { recordFailure, retry, skip, skips } from './projection-failure-sql.js';
import { acquireLease, lockIfLeader, releaseLease, renewLease } from './projection-lease-sql.js';
import { rebuildAdvanced, rebuildFinished, rebuildStarted, requestRebuild } from './projection-rebuild-sql.js';
import type { Checkpoint } from './recorded-event.js';
import { sql } from './sql.js';
import { PROJECTOR_DATA_SOURCE } from './data-sources.js';

export type { ProjectionRunStatus, ProjectionState, RebuildStatus } from './projection-checkpoint-row.js';

/**
 * SQL of projection_checkpoints, one entry point for the engine and the admin API; the statements
 * live by job in projection-lease-sql.ts (leadership, and why it is a lease row),
 * projection-advance-sql.ts, projection-failure-sql.ts and projection-rebuild-sql.ts.
 * Every statement runs on the projector's connection unless a transaction's manager is given.
 */
@Injectable()
export class ProjectionCheckpoints {
  constructor(@Inject(PROJECTOR_DATA_SOURCE) private readonly dataSource: DataSource) {}

  private get manager(): EntityManager {
    return this.dataSource.manager;
  }

  async ensure(names: readonly string[]): Promise<void> {
    if (names.length === 0) return;
    await sql(this.manager, `INSERT INTO projection_checkpoints (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING`, [names]);
  }

  async load(name: string, manager: EntityManager = this.dataSource.manager): Promise<ProjectionState | null> {
    const { rows } = await sql<Row>(manager, `SELECT * FROM projection_checkpoints WHERE name = $1`, [name]);
    return rows.length ? toState(rows[0]) : null;
  }

  async loadAll(): Promise<ProjectionState[]> {
    const { rows } = await sql<Row>(this.manager, `SELECT * FROM projection_checkpoints ORDER BY name`);
    return rows.map(toState);
  }

  acquireLease(name: string, owner: string, ttlMs: number): Promise<string | null> {
    return acquireLease(this.manager, name, owner, ttlMs);
  }

  renewLease(name: string, owner: string, token: string, ttlMs: number): Promise<boolean> {
    return renewLease(this.manager, name, owner, token, ttlMs);
  }

  releaseLease(name: string, owner: string): Promise<void> {
    return releaseLease(this.manager, name, owner);
  }

  lockIfLeader(manager: EntityManager, name: string, owner: string, token: string): Promise<ProjectionState | null> {
    return lockIfLeader(manager, name, owner, token);
  }

  advance(manager: EntityManager, name: string, checkpoint: Checkpoint, ttlMs: number): Promise<void> {
    return advance(manager, name, checkpoint, ttlMs);
  }

  advancePast(name: string, owner: string, token: string, from: Checkpoint, to: Checkpoint, ttlMs: number): Promise<boolean> {
    return advancePast(this.manager, name, owner, token, from, to, ttlMs);
  }

  recordFailure(
    name: string,
    holder: { readonly owner: string; readonly token: string },
    position: number,
    error: string,
    maxAttempts: number,
  ): Promise<ProjectionState | null> {
    return recordFailure(this.manager, name, holder, position, error, maxAttempts);
  }

  retry(name: string): Promise<boolean> {
    return retry(this.manager, name);
  }

  skip(name: string): Promise<number | null> {
    return skip(this.dataSource, name);
  }

  requestRebuild(name: string): Promise<void> {
    return requestRebuild(this.manager, name);
  }

  rebuildStarted(manager: EntityManager, name: string): Promise<void> {
    return rebuildStarted(manager, name);
  }

  rebuildAdvanced(manager: EntityManager, name: string, checkpoint: Checkpoint, eventsApplied: number): Promise<void> {
    return rebuildAdvanced(manager, name, checkpoint, eventsApplied);
  }

  rebuildFinished(manager: EntityManager, name: string, liveCheckpoint: Checkpoint | null, error?: string): Promise<void> {
    return rebuildFinished(manager, name, liveCheckpoint, error);
  }

  skips(name: string): Promise<Array<{ position: number; eventType: string; error: string | null; skippedAt: Date }>> {
    return skips(this.manager, name);
  }
}
