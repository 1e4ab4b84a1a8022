import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { compareCheckpoints } from './checkpoint-order.js';
import { QUERY_DATA_SOURCE } from './data-sources.js';
import { ProjectionNotCaughtUpError, UnknownProjectionError } from './errors.js';
import { EventNotifier } from './event-notifier.js';
import { ProjectionCheckpoints } from './projection-checkpoints.js';
import { ProjectionEngine } from './projection-engine.js';
import { ProjectionRegistry } from './projection.registry.js';
import type { Checkpoint } from './recorded-event.js';
import { type PreparedStatement, prepared, sql } from './sql.js';
import { toSafeNumber } from './stored-event.row.js';
import { modeOf } from './subscriber.js';

/** The earliest segment's checkpoint in commit order: what the projection reflects as a whole. */
const CHECKPOINT_POSITION: PreparedStatement = {
  name: 'ledger_checkpoint_position_v2',
  text: 'SELECT position FROM projection_checkpoints WHERE projection = $1 ORDER BY transaction_id, position LIMIT 1',
};

/**
 * A waiting query is woken by the projection's progress, not a timer: in this process by the
 * runner's own signal after each batch, from another instance by its NOTIFY. It also re-checks every
 * 250 ms, for what no signal announces: a NOTIFY lost while the LISTEN connection was re-opened (the
 * re-connection alone takes a second), leadership moving to another instance in the middle of a
 * wait, or a read replica that had not yet replayed the checkpoint when the signal came. With the
 * default 2 s timeout that is at most 8 extra re-checks of one indexed row (a 20 ms poll made 100).
 */
export const WAIT_FALLBACK_RECHECK_MS = 250;
/**
 * How long the instance that runs a projection keeps announcing its progress after an instance
 * asked (a waiter asks again every half of it while it waits longer).
 */
const WATCH_MS = 5000;

/**
 * Read-your-writes for queries: a command answers with the log position of what it wrote; a query
 * given that position waits (bounded) until the projection behind it has applied that event.
 *
 * Across instances: a waiter whose projection runs elsewhere NOTIFYs `waiting:<name>`; the instance
 * that runs it answers `advanced:<name>` at once and after each batch for WATCH_MS, so appends and
 * projection batches pay for nothing unless some instance is waiting. While a query waits, the
 * projection's segments are hurried (ProjectionEngine.hurry, here and in the instance that runs it):
 * every append wakes all of them at once, not only the segment it concerns.
 */
@Injectable()
export class ProjectionWaiter implements OnModuleDestroy {
  /** Projections this process runs that another instance is waiting on, until when (ms epoch). */
  private readonly watched = new Map<string, number>();
  private readonly onWaiting = (name: string) => {
    if (!this.engine.isLeader(name)) return;
    this.watched.set(name, Date.now() + WATCH_MS);
    this.engine.hurry(name, WATCH_MS);
    void this.notifier.signalProgress('advanced', name); // it may already be there
  };
  private readonly onAdvanced = (name: string) => {
    const until = this.watched.get(name);
    if (until === undefined) return;
    if (until < Date.now()) this.watched.delete(name);
    else void this.notifier.signalProgress('advanced', name);
  };

  constructor(
    private readonly registry: ProjectionRegistry,
    private readonly checkpoints: ProjectionCheckpoints,
    private readonly engine: ProjectionEngine,
    private readonly notifier: EventNotifier,
    @Inject(QUERY_DATA_SOURCE) private readonly dataSource: DataSource,
  ) {
    notifier.on('projectionWaiting', this.onWaiting);
    engine.progress.on('advanced', this.onAdvanced);
  }

  onModuleDestroy(): void {
    this.notifier.off('projectionWaiting', this.onWaiting);
    this.engine.progress.off('advanced', this.onAdvanced);
  }

  /**
   * Resolves with the position the projection reflects once it has applied the event at
   * `minPosition` (at once when no position is asked for); throws ProjectionNotCaughtUpError after
   * `timeoutMs`. An inline projection reflects every committed event.
   */
  async waitFor(name: string, minPosition: number | undefined, timeoutMs: number): Promise<number> {
    const projection = this.registry.get(name);
    if (!projection) throw new UnknownProjectionError(name);
    if (!minPosition) return this.reflected(modeOf(projection), name);
    const deadline = Date.now() + timeoutMs;
    let target: Checkpoint | undefined;
    let askedAt = -Infinity;
    let hurried = false;
    for (;;) {
      // Listening before the check: progress made while it runs is not missed.
      const wake = this.wakeOnProgress(name, target);
      try {
        target ??= await this.targetOf(minPosition);
        const reached = target && (await this.reached(modeOf(projection), name, target));
        if (reached !== undefined) return reached;
        if (Date.now() >= deadline) {
          throw new ProjectionNotCaughtUpError(name, minPosition, await this.reflected(modeOf(projection), name), timeoutMs);
        }
        if (!hurried) {
          // Segments with nothing of their own in the events before the target would move past
          // them only after their idle delay (SegmentWakeUps): not while a query waits.
          hurried = true;
          this.engine.hurry(name, deadline - Date.now());
        }
        if (Date.now() - askedAt >= WATCH_MS / 2 && !this.engine.holdsAll(name)) {
          askedAt = Date.now();
          void this.notifier.signalProgress('waiting', name);
        }
        await wake.wait(Math.min(WAIT_FALLBACK_RECHECK_MS, deadline - Date.now()));
      } finally {
        wake.dispose();
      }
    }
  }

  /**
   * A latch that opens when the projection advances: in this process to `target` or beyond (or at
   * all while the target is not known), or in another instance (its NOTIFY).
   */
  private wakeOnProgress(name: string, target: Checkpoint | undefined): { wait(ms: number): Promise<void>; dispose(): void } {
    let woken = false;
    let release: (() => void) | undefined;
    const open = () => {
      woken = true;
      release?.();
    };
    const onLocal = (advanced: string, checkpoint: Checkpoint) => {
      if (advanced === name && (!target || compareCheckpoints(checkpoint, target) >= 0)) open();
    };
    const onRemote = (advanced: string) => {
      if (advanced === name) open();
    };
    this.engine.progress.on('advanced', onLocal);
    this.notifier.on('projectionAdvanced', onRemote);
    let timer: NodeJS.Timeout | undefined;
    return {
      wait: (ms) =>
        woken
          ? Promise.resolve()
          : new Promise<void>((resolve) => {
              release = resolve;
              timer = setTimeout(resolve, Math.max(ms, 1));
            }),
      dispose: () => {
        clearTimeout(timer);
        this.engine.progress.off('advanced', onLocal);
        this.notifier.off('projectionAdvanced', onRemote);
      },
    };
  }

  /** Where the event at `position` sits in commit order; undefined while it is not visible (yet). */
  private async targetOf(position: number): Promise<Checkpoint | undefined> {
    const { rows } = await sql<{ transaction_id: string }>(
      this.dataSource.manager,
      'SELECT transaction_id FROM events WHERE position = $1',
      [position],
    );
    return rows.length ? { transactionId: rows[0].transaction_id, position } : undefined;
  }

  /**
   * The reflected position if the projection covers `target`, undefined otherwise. Segmented: every
   * segment must have reached it (the event is in one of them; the earliest decides what is reflected).
   */
  private async reached(mode: 'inline' | 'async', name: string, target: Checkpoint): Promise<number | undefined> {
    if (mode === 'inline') return this.reflected(mode, name);
    const segments = await this.checkpoints.loadSegments(name, this.dataSource.manager);
    if (segments.length === 0) return undefined;
    const earliest = segments.map((state) => state.checkpoint).reduce((a, b) => (compareCheckpoints(a, b) <= 0 ? a : b));
    return compareCheckpoints(earliest, target) >= 0 ? earliest.position : undefined;
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
