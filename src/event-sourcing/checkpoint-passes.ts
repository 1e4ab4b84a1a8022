import type { EntityManager } from 'typeorm';
import { type CheckpointPass, advancePast } from './projection-advance-sql.js';

interface Queued {
  readonly pass: CheckpointPass;
  readonly resolve: (moved: boolean) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Checkpoint moves past others' events, gathered: the segments that wake together (an idle tick,
 * IdleSegmentTick; one read of the log shared by several runners) ask within the same turn of the
 * event loop, and their moves go to the database in one statement instead of one each (each
 * statement is a round trip, and on this machine most of a request's CPU is spent in them:
 * docs/BENCHMARKS.md). Each row is still fenced on its own: the answer says, per segment, whether
 * its row moved. A failed statement fails every move it carried; their runners retry as after any
 * error.
 */
export class CheckpointPasses {
  private queued: Queued[] = [];

  constructor(private readonly manager: () => EntityManager) {}

  /** True when the row moved; false when it was not this holder's to move any more. */
  pass(pass: CheckpointPass): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.queued.push({ pass, resolve, reject });
      if (this.queued.length === 1) setImmediate(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    // A row moves at most once per statement (an UPDATE joins each row once): a second move of the
    // same segment waits for the next statement, so its fence sees where the first one left the row.
    const names = new Set<string>();
    const batch: Queued[] = [];
    const later: Queued[] = [];
    for (const queued of this.queued) {
      if (names.has(queued.pass.name)) {
        later.push(queued);
      } else {
        names.add(queued.pass.name);
        batch.push(queued);
      }
    }
    this.queued = later;
    try {
      const moved = await advancePast(
        this.manager(),
        batch.map((queued) => queued.pass),
      );
      for (const queued of batch) queued.resolve(moved.has(queued.pass.name));
    } catch (error) {
      for (const queued of batch) queued.reject(error);
    }
    if (later.length > 0) setImmediate(() => void this.flush());
  }
}
