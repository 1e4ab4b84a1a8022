import { Inject, Injectable } from '@nestjs/common';
import type { Decider } from './decider.js';
import type { ErrorKind, KindedError } from './error-kind.js';
import { EventLogReader } from './event-log-reader.js';
import { SNAPSHOT_OPTIONS, type SnapshotOptions } from './snapshot-store.js';

/** A point in a stream's history: after its Nth event, or as it stood at an instant. */
export type HistoryPoint = { readonly atVersion: number } | { readonly asOf: Date };

export interface StateAtPoint<State> {
  readonly state: State;
  /** Version of the last event folded in. */
  readonly version: number;
  /** When that event was recorded: the state held from then on. */
  readonly recordedAt: Date;
}

/** The stream has fewer events than the version asked for. */
export class VersionNotReachedError extends Error implements KindedError {
  readonly code = 'VERSION_NOT_FOUND';
  readonly kind: ErrorKind = 'not-found';
  readonly details: Readonly<Record<string, unknown>>;
  constructor(
    readonly streamId: string,
    readonly requested: number,
    readonly currentVersion: number,
  ) {
    super(`${streamId} has no version ${requested}; its current version is ${currentVersion}`);
    this.name = 'VersionNotReachedError';
    this.details = { requested, currentVersion };
  }
}

/** The stream exists, but its first event was recorded after the instant asked for. */
export class NotYetExistingError extends Error implements KindedError {
  readonly code = 'NOT_YET_EXISTING';
  readonly kind: ErrorKind = 'not-found';
  readonly details: Readonly<Record<string, unknown>>;
  constructor(
    readonly streamId: string,
    readonly asOf: Date,
    readonly firstRecordedAt: Date,
  ) {
    super(`${streamId} did not exist yet at ${asOf.toISOString()}; it begins at ${firstRecordedAt.toISOString()}`);
    this.name = 'NotYetExistingError';
    this.details = { firstRecordedAt: firstRecordedAt.toISOString() };
  }
}

/**
 * Time travel: a stream's state rebuilt from its own events up to a version or an instant. Null when
 * the stream does not exist at all.
 *
 * - An instant is first turned into a version: the stream up to (not including) its first event
 *   recorded after the instant. That is always a prefix of the stream — rows written before
 *   recorded_at was clock_timestamp() may be out of version order, and "every event recorded by then"
 *   could skip one and include a later one, a state that never existed.
 * - Then, for an aggregate with snapshots (and a snapshot interval above 0, as for loading), the fold
 *   starts from the newest snapshot at or before that version whose schema version is the
 *   aggregate's current one (any other is ignored), instead of from the first event. The snapshot
 *   is chosen by version, never by time: its version is inside the prefix by construction.
 */
@Injectable()
export class StateAt {
  constructor(
    private readonly store: EventLogReader,
    @Inject(SNAPSHOT_OPTIONS) private readonly snapshotOptions: SnapshotOptions,
  ) {}

  async of<State, Event extends object>(
    streamId: string,
    decider: Decider<State, Event>,
    point: HistoryPoint,
  ): Promise<StateAtPoint<State> | null> {
    let version: number;
    if ('atVersion' in point) {
      version = point.atVersion;
    } else {
      const asOf = await this.store.versionAsOf(streamId, point.asOf);
      if (asOf.currentVersion === 0) return null;
      if (asOf.version === 0) {
        const [first] = await this.store.readStream(streamId, { toVersion: 1 });
        throw new NotYetExistingError(streamId, point.asOf, first.recordedAt);
      }
      version = asOf.version;
    }

    const codec = decider.snapshots;
    const useSnapshots = codec !== undefined && (this.snapshotOptions.intervals[codec.aggregate] ?? 0) > 0;
    const snapshot = useSnapshots ? await this.store.readSnapshot(streamId, codec, version) : undefined;
    // From the snapshot's own version on: its event is not folded again, but tells when it was recorded.
    const events = await this.store.readStream(streamId, { fromVersion: snapshot?.version ?? 1, toVersion: version });
    const last = events.at(-1);
    if ((last?.version ?? 0) < version) {
      const current = last ? last.version : await this.store.streamVersion(streamId);
      if (current === 0) return null;
      throw new VersionNotReachedError(streamId, version, current);
    }
    const base = snapshot ? codec!.decode(snapshot.state) : decider.initialState;
    const folded = snapshot ? events.slice(1) : events;
    return {
      state: folded.reduce((state, event) => decider.evolve(state, event.data as Event), base),
      version: last!.version,
      recordedAt: last!.recordedAt,
    };
  }
}
