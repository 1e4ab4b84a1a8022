import pg from 'pg';
import { QueryFailedError } from 'typeorm';

/** What the committer needs to know of an append to group it. */
export interface GroupItem {
  readonly streamId: string;
  readonly eventCount: number;
}

/** Per append of a group: its result, or its own error. */
export type GroupOutcome<R> = { readonly value: R } | { readonly error: unknown };

/** How appends are written: one on its own, or several of different streams in one statement. */
export interface GroupWriter<A extends GroupItem, R> {
  alone(item: A): Promise<R>;
  /**
   * One statement, hence one transaction, for every item; answers each item in input order. Throws
   * when the statement as a whole failed (then nothing of it was written, or its outcome is unknown).
   */
  together(items: readonly A[]): Promise<Array<GroupOutcome<R>>>;
}

export interface GroupCommitLimits {
  /** Statements of this committer running at once; an append arriving while all run waits for one. */
  readonly maxInFlight: number;
  /** Events per group statement (an append larger than this still goes, alone). */
  readonly maxEvents: number;
}

/** Counters since start; read by tests (and available to metrics). */
export interface GroupCommitStats {
  /** Statements sent: a lone append's or a group's. */
  statements: number;
  appends: number;
  /** Statements that carried more than one append. */
  groups: number;
  largestGroup: number;
  /** Appends that could not go at once and waited for a statement in flight to return. */
  queued: number;
  /** Groups the database refused as a whole, whose appends were then written one by one. */
  fallbacks: number;
}

interface Waiting<A, R> {
  readonly item: A;
  /** Taken into a statement (set by `take`). */
  sent: boolean;
  readonly resolve: (value: R) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Group commit without a timer. An append goes at once when fewer than `maxInFlight` statements run
 * (alone: an idle system never waits); otherwise it queues, and when a statement returns, everything
 * queued goes as ONE statement. The window is thus the duration of the statement in flight, and the
 * group grows with the load, like PostgreSQL's commit_delay but without sleeping.
 *
 * Never two appends of one stream in flight at once (in one statement, or in two): the later waits
 * for the earlier to be answered, so a stream's appends from this process never race each other (no
 * needless unique violation, no lock cycle between two groups). Within a group, streams go in
 * streamId order, so groups of different processes lock their streams in one order too.
 *
 * An append is answered only after its statement returned, i.e. committed. A group the database
 * refused (an ERROR: the statement, hence its transaction, was rolled back) is written again one
 * append at a time, so a race or a duplicate fails only its own append. Any other failure (a lost
 * connection, a FATAL error) leaves the outcome unknown: every append of the group gets that error.
 */
export class GroupCommitter<A extends GroupItem, R> {
  readonly stats: GroupCommitStats = { statements: 0, appends: 0, groups: 0, largestGroup: 0, queued: 0, fallbacks: 0 };
  private queue: Array<Waiting<A, R>> = [];
  private readonly busyStreams = new Set<string>();
  private inFlight = 0;

  constructor(
    private readonly writer: GroupWriter<A, R>,
    private readonly limits: () => GroupCommitLimits,
  ) {}

  submit(item: A): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const waiting = { item, resolve, reject, sent: false };
      this.queue.push(waiting);
      this.pump();
      if (!waiting.sent) this.stats.queued++;
    });
  }

  private pump(): void {
    const limits = this.limits();
    while (this.inFlight < limits.maxInFlight && this.queue.length > 0) {
      const group = this.take(limits.maxEvents);
      if (group.length === 0) return; // every queued append waits for its stream's append in flight
      this.inFlight++;
      for (const waiting of group) this.busyStreams.add(waiting.item.streamId);
      void this.run(group);
    }
  }

  /** The next group: queued appends in arrival order, one per stream not in flight, up to maxEvents. */
  private take(maxEvents: number): Array<Waiting<A, R>> {
    const group: Array<Waiting<A, R>> = [];
    const left: Array<Waiting<A, R>> = [];
    const streams = new Set<string>();
    let events = 0;
    let full = false;
    for (const waiting of this.queue) {
      const { streamId, eventCount } = waiting.item;
      full ||= group.length > 0 && events + eventCount > maxEvents;
      // A stream in flight or already in the group: this append stays queued, ahead of its stream's later ones.
      if (full || this.busyStreams.has(streamId) || streams.has(streamId)) {
        left.push(waiting);
        continue;
      }
      waiting.sent = true;
      group.push(waiting);
      streams.add(streamId);
      events += eventCount;
    }
    this.queue = left;
    return group.sort((a, b) => (a.item.streamId < b.item.streamId ? -1 : a.item.streamId > b.item.streamId ? 1 : 0));
  }

  private async run(group: Array<Waiting<A, R>>): Promise<void> {
    this.stats.statements++;
    this.stats.appends += group.length;
    if (group.length > 1) this.stats.groups++;
    this.stats.largestGroup = Math.max(this.stats.largestGroup, group.length);
    let outcomes: Array<GroupOutcome<R>>;
    try {
      outcomes = await this.write(group.map((waiting) => waiting.item));
    } catch (error) {
      outcomes = group.map(() => ({ error }));
    }
    this.inFlight--;
    for (const waiting of group) this.busyStreams.delete(waiting.item.streamId);
    group.forEach((waiting, index) => {
      const outcome = outcomes[index];
      if ('error' in outcome) waiting.reject(outcome.error);
      else waiting.resolve(outcome.value);
    });
    // Answered callers continue only after this synchronous block: what was queued goes first, and
    // an answered caller's next append goes at once if nothing waits (a sequential writer never queues).
    this.pump();
  }

  private async write(items: readonly A[]): Promise<Array<GroupOutcome<R>>> {
    if (items.length === 1) return [await settle(this.writer.alone(items[0]))];
    try {
      return await this.writer.together(items);
    } catch (error) {
      if (!refusedByDatabase(error)) throw error; // outcome unknown: every append of the group gets the error
      this.stats.fallbacks++;
      return Promise.all(items.map((item) => settle(this.writer.alone(item))));
    }
  }
}

function settle<R>(promise: Promise<R>): Promise<GroupOutcome<R>> {
  return promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

/**
 * SQLSTATEs a statement is refused with (an ERROR: it is rolled back), never a FATAL or PANIC that
 * ends a session in the middle of one: data and integrity violations, access, program limits, a
 * cancel, deadlocks and serialization failures, a PL/pgSQL RAISE, the ledger's own LE codes.
 */
const REFUSAL_CLASSES = new Set(['22', '23', '42', '44', '54', '55', 'P0', 'LE']);
const REFUSAL_CODES = new Set(['57014', '40001', '40002', '40P01']);

/**
 * An ERROR the server answered for the statement: it ran as its own transaction, which was rolled
 * back, so nothing of it was written. FATAL and PANIC end the session (possibly after a commit) and a
 * lost connection says nothing: those are not "refused".
 *
 * The server words the severity in its lc_messages language (FEHLER, ERREUR…) and pg does not pass
 * on the untranslated one, so a severity that is neither ERROR nor FATAL nor PANIC counts as a
 * refusal only when its SQLSTATE is a statement's refusal. Found in review: on a cluster with
 * lc_messages=de_DE.UTF-8, one race in a group failed every append of the group.
 */
export function refusedByDatabase(error: unknown): boolean {
  const cause = error instanceof QueryFailedError ? (error.driverError as unknown) : error;
  if (!(cause instanceof pg.DatabaseError)) return false;
  if (cause.severity === 'ERROR') return true;
  if (cause.severity === 'FATAL' || cause.severity === 'PANIC') return false;
  const code = cause.code ?? '';
  return REFUSAL_CODES.has(code) || REFUSAL_CLASSES.has(code.slice(0, 2));
}
