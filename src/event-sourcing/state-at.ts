import { Injectable } from '@nestjs/common';
import { type Decider, fold } from './decider.js';
import { EventLogReader } from './event-log-reader.js';

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
export class VersionNotReachedError extends Error {
  readonly code = 'VERSION_NOT_FOUND';
  constructor(
    readonly streamId: string,
    readonly requested: number,
    readonly currentVersion: number,
  ) {
    super(`${streamId} has no version ${requested}; its current version is ${currentVersion}`);
    this.name = 'VersionNotReachedError';
  }
}

/** The stream exists, but its first event was recorded after the instant asked for. */
export class NotYetExistingError extends Error {
  readonly code = 'NOT_YET_EXISTING';
  constructor(
    readonly streamId: string,
    readonly asOf: Date,
    readonly firstRecordedAt: Date,
  ) {
    super(`${streamId} did not exist yet at ${asOf.toISOString()}; it begins at ${firstRecordedAt.toISOString()}`);
    this.name = 'NotYetExistingError';
  }
}

/**
 * Time travel: a stream's state rebuilt from its own events up to a version or an instant (an
 * instant between two events picks the earlier one). Null when the stream does not exist at all.
 */
@Injectable()
export class StateAt {
  constructor(private readonly store: EventLogReader) {}

  async of<State, Event extends object>(
    streamId: string,
    decider: Decider<State, Event>,
    point: HistoryPoint,
  ): Promise<StateAtPoint<State> | null> {
    const events = await this.store.readStream(
      streamId,
      'atVersion' in point ? { toVersion: point.atVersion } : { recordedUntil: point.asOf },
    );
    const last = events.at(-1);
    if ('atVersion' in point && (last?.version ?? 0) < point.atVersion) {
      const current = last ? await this.store.streamVersion(streamId) : 0;
      if (current === 0) return null;
      throw new VersionNotReachedError(streamId, point.atVersion, current);
    }
    if (!last) {
      const [first] = await this.store.readStream(streamId, { toVersion: 1 });
      if (!first) return null;
      throw new NotYetExistingError(streamId, (point as { asOf: Date }).asOf, first.recordedAt);
    }
    return { state: fold(decider, events.map((event) => event.data as Event)), version: last.version, recordedAt: last.recordedAt };
  }
}
