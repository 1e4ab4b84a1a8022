import type { ExpectedVersion } from './expected-version.js';

/** The stream's version was not the one the writer expected; nothing was appended. */
export class WrongExpectedVersionError extends Error {
  readonly code = 'WRONG_EXPECTED_VERSION';
  constructor(
    readonly streamId: string,
    readonly expectedVersion: ExpectedVersion,
    /** The stream's version when the append was refused (0 = the stream does not exist). */
    readonly actualVersion: number,
  ) {
    super(`Stream ${streamId} is at version ${actualVersion}, expected ${String(expectedVersion)}`);
    this.name = 'WrongExpectedVersionError';
  }
}

/** Concurrent writers kept winning on the same stream until the command runner gave up. */
export class ConcurrencyConflictError extends Error {
  readonly code = 'CONCURRENCY_CONFLICT';
  constructor(
    readonly streamId: string,
    readonly attempts: number,
  ) {
    super(`Stream ${streamId} kept changing concurrently; gave up after ${attempts} attempts`);
    this.name = 'ConcurrencyConflictError';
  }
}

/**
 * A unit of work (EventStore.transaction) must start over on a fresh transaction: it lost a race
 * for a stream's next version, or a stream it appends to was last written by a younger transaction
 * (appending there would list the stream out of version order in the log). Never retried inside
 * the transaction (a savepoint keeps the transaction's id): the outermost unit of work rolls back
 * and runs again, and gives up with ConcurrencyConflictError after the command attempts.
 */
export class UnitOfWorkConflict extends Error {
  constructor(
    readonly streamId: string,
    reason: string,
  ) {
    super(`Stream ${streamId}: ${reason}; the unit of work starts over on a new transaction`);
    this.name = 'UnitOfWorkConflict';
  }
}

/** The store holds (or was asked to write) an event type that no registered class maps to. */
export class UnknownEventTypeError extends Error {
  readonly code = 'UNKNOWN_EVENT_TYPE';
  constructor(readonly type: string) {
    super(`No event class is registered for type "${type}"`);
    this.name = 'UnknownEventTypeError';
  }
}

export class UnknownProjectionError extends Error {
  readonly code = 'UNKNOWN_PROJECTION';
  constructor(readonly projectionName: string) {
    super(`There is no projection named "${projectionName}"`);
    this.name = 'UnknownProjectionError';
  }
}

/** An operator asked to retry or skip, but the projection is not stopped on a failed event. */
export class ProjectionNotFailedError extends Error {
  readonly code = 'PROJECTION_NOT_FAILED';
  constructor(readonly projectionName: string) {
    super(`Projection "${projectionName}" is not stopped on a failed event`);
    this.name = 'ProjectionNotFailedError';
  }
}

/** A query asked to reflect a log position the projection did not reach in time. */
export class ProjectionNotCaughtUpError extends Error {
  readonly code = 'PROJECTION_NOT_CAUGHT_UP';
  constructor(
    readonly projectionName: string,
    readonly minPosition: number,
    readonly position: number,
    readonly timeoutMs: number,
  ) {
    super(`Projection "${projectionName}" reflects position ${position}, not yet ${minPosition}, after waiting ${timeoutMs} ms`);
    this.name = 'ProjectionNotCaughtUpError';
  }
}

/** A projection that keeps no table of its own (a process manager) has nothing to rebuild. */
export class ProjectionNotRebuildableError extends Error {
  readonly code = 'PROJECTION_NOT_REBUILDABLE';
  constructor(readonly projectionName: string) {
    super(`Projection "${projectionName}" keeps no table, so there is nothing to rebuild`);
    this.name = 'ProjectionNotRebuildableError';
  }
}

/** Stored events of this type and schema version cannot be turned into the current class. */
export class UnreadableEventSchemaError extends Error {
  readonly code = 'UNREADABLE_EVENT_SCHEMA';
  constructor(
    readonly type: string,
    readonly schemaVersion: number,
    reason: string,
  ) {
    super(`Stored events of type "${type}" (schema version ${schemaVersion}) cannot be read: ${reason}`);
    this.name = 'UnreadableEventSchemaError';
  }
}
