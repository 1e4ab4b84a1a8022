import type { EventEmitter } from 'node:events';
import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { compareCheckpoints } from './checkpoint-order.js';
import { QUERY_DATA_SOURCE } from './data-sources.js';
import { ProjectionNotCaughtUpError, UnknownProjectionError } from './errors.js';
import { ProjectionCheckpoints } from './projection-checkpoints.js';
import { ProjectionEngine } from './projection-engine.js';
import { ProjectionRegistry } from './projection.registry.js';
import { type PreparedStatement, prepared, sql } from './sql.js';
import { toSafeNumber } from './stored-event.row.js';

const CHECKPOINT_POSITION: PreparedStatement = {
  name: 'ledger_checkpoint_position_v1',
  text: 'SELECT position FROM projection_checkpoints WHERE name = $1',
};

const POLL_MS = 20;

/**
 * Read-your-writes for queries: a command answers with the log position of what it wrote; a query
 * given that position waits (bounded) until the projection behind it has applied that event.
 */
@Injectable()
export class ProjectionWaiter {
  constructor(
    private readonly registry: ProjectionRegistry,
    private readonly checkpoints: ProjectionCheckpoints,
    private readonly engine: ProjectionEngine,
    @Inject(QUERY_DATA_SOURCE) private readonly dataSource: DataSource,
  ) {}

  /**
   * Resolves with the position the projection reflects once it has applied the event at
   * `minPosition` (at once when no position is asked for); throws ProjectionNotCaughtUpError after
   * `timeoutMs`. An inline projection reflects every committed event.
   */
  async waitFor(name: string, minPosition: number | undefined, timeoutMs: number): Promise<number> {
    const projection = this.registry.get(name);
    if (!projection) throw new UnknownProjectionError(name);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const reached = await this.reached(projection.mode, name, minPosition);
      if (reached !== undefined) return reached;
      if (Date.now() >= deadline) {
        throw new ProjectionNotCaughtUpError(name, minPosition!, await this.reflected(projection.mode, name), timeoutMs);
      }
      await nextTick(this.engine.progress, Math.min(POLL_MS, deadline - Date.now()));
    }
  }

  /** The reflected position if it covers `minPosition`, undefined otherwise. */
  private async reached(mode: 'inline' | 'async', name: string, minPosition: number | undefined): Promise<number | undefined> {
    if (!minPosition) return this.reflected(mode, name);
    const { rows } = await sql<{ transaction_id: string }>(
      this.dataSource.manager,
      'SELECT transaction_id FROM events WHERE position = $1',
      [minPosition],
    );
    if (rows.length === 0) return undefined; // not committed (yet), or no such position
    if (mode === 'inline') return this.reflected(mode, name);
    const state = await this.checkpoints.load(name, this.dataSource.manager);
    const target = { transactionId: rows[0].transaction_id, position: minPosition };
    return state && compareCheckpoints(state.checkpoint, target) >= 0 ? state.checkpoint.position : undefined;
  }

  /** Inline: the head of the log; async: the position of the last event applied (commit order). */
  async reflected(mode: 'inline' | 'async', name: string): Promise<number> {
    if (mode === 'async') {
      // On every read of a projection-backed endpoint (X-Projection-Position): one prepared statement.
      const [row] = await prepared<{ position: string }>(this.dataSource.manager, CHECKPOINT_POSITION, [name]);
      return row ? toSafeNumber(row.position) : 0;
    }
    const { rows } = await sql<{ head: string }>(this.dataSource.manager, 'SELECT coalesce(max(position), 0) AS head FROM events');
    return toSafeNumber(rows[0].head);
  }
}

function nextTick(emitter: EventEmitter, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      emitter.off('advanced', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(ms, 1));
    emitter.once('advanced', done);
  });
}
