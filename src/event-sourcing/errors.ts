import type { ErrorKind, KindedError } from './error-kind.js';
import type { ExpectedVersion } from './expected-version.js';

/**
 * The stream's version was not the one the writer expected; nothing was appended. It reaches a
 * caller only when the caller named that version (If-Match): then a failed precondition.
 */
export class WrongExpectedVersionError extends Error implements KindedError {
  readonly code = 'WRONG_EXPECTED_VERSION';
  readonly kind: ErrorKind = 'precondition-failed';
  readonly details: Readonly<Record<string, unknown>>;
  constructor(
    readonly streamId: string,
    readonly expectedVersion: ExpectedVersion,
    /** The stream's version when the append was refused (0 = the stream does not exist). */
    readonly actualVersion: number,
  ) {
    super(`Stream ${streamId} is at version ${actualVersion}, expected ${String(expectedVersion)}`);
    this.name = 'WrongExpectedVersionError';
    this.details = { expectedVersion, currentVersion: actualVersion };
  }
}

/** Concurrent writers kept winning on the same stream until the command runner gave up. */
export class ConcurrencyConflictError extends Error implements KindedError {
  readonly code = 'CONCURRENCY_CONFLICT';
  readonly kind: ErrorKind = 'conflict';
  readonly details = {};
  constructor(
    readonly streamId: string,
    readonly attempts: number,
  ) {
    super(`Stream ${streamId} kept changing concurrently; gave up after ${attempts} attempts`);
    this.name = 'ConcurrencyConflictError';
  }
}

/**
 * Too many commands were queued on one stream in this process: this one waited longer than
 * COMMAND_LANE_MAX_WAIT_MS for its turn (StreamLanes) and was not run. Nothing was written.
 */
export class StreamBusyError extends Error implements KindedError {
  readonly code = 'STREAM_BUSY';
  readonly kind: ErrorKind = 'unavailable';
  readonly details = {};
  constructor(
    readonly streamId: string,
    readonly waitedMs: number,
  ) {
    super(`Stream ${streamId} is busy: this command waited ${waitedMs} ms for the commands queued before it on this instance`);
    this.name = 'StreamBusyError';
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

/**
 * A statement of a unit of work failed and its work went on (the error swallowed): PostgreSQL holds
 * the transaction aborted, and its COMMIT would silently roll it back. Nothing of it is committed or
 * published; the work has a bug (it must let a failed statement's error through).
 */
export class UnitOfWorkAborted extends Error {
  constructor() {
    super('A statement of the unit of work failed and its error was swallowed: its transaction is aborted, nothing of it commits');
    this.name = 'UnitOfWorkAborted';
  }
}

/**
 * The work of a unit of work ended its transaction itself (its own ROLLBACK or COMMIT): what it did
 * after that ran outside the unit of work, and the unit of work's COMMIT would commit nothing. It is
 * not reported committed and its appends are not published (after a COMMIT of its own they are
 * stored nonetheless, unfenced: the runners find them by their poll). The work has a bug: a unit of
 * work ends only by returning (COMMIT) or throwing (ROLLBACK).
 */
export class UnitOfWorkEnded extends Error {
  constructor() {
    super('The work of the unit of work ended its transaction itself (ROLLBACK or COMMIT): it is not reported committed');
    this.name = 'UnitOfWorkEnded';
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

export class UnknownProjectionError extends Error implements KindedError {
  readonly code = 'UNKNOWN_PROJECTION';
  readonly kind: ErrorKind = 'not-found';
  readonly details = {};
  constructor(readonly projectionName: string) {
    super(`There is no projection named "${projectionName}"`);
    this.name = 'UnknownProjectionError';
  }
}

/** An operator asked to retry or skip, but the projection is not stopped on a failed event. */
export class ProjectionNotFailedError extends Error implements KindedError {
  readonly code = 'PROJECTION_NOT_FAILED';
  readonly kind: ErrorKind = 'conflict';
  readonly details = {};
  constructor(readonly projectionName: string) {
    super(`Projection "${projectionName}" is not stopped on a failed event`);
    this.name = 'ProjectionNotFailedError';
  }
}

/** A query asked to reflect a log position the projection did not reach in time. */
export class ProjectionNotCaughtUpError extends Error implements KindedError {
  readonly code = 'PROJECTION_NOT_CAUGHT_UP';
  readonly kind: ErrorKind = 'unavailable';
  readonly details: Readonly<Record<string, unknown>>;
  constructor(
    readonly projectionName: string,
    readonly minPosition: number,
    readonly position: number,
    readonly timeoutMs: number,
  ) {
    super(`Projection "${projectionName}" reflects position ${position}, not yet ${minPosition}, after waiting ${timeoutMs} ms`);
    this.name = 'ProjectionNotCaughtUpError';
    this.details = { projection: projectionName, minPosition, position };
  }
}

/** A process manager keeps no table of its own: it has nothing to rebuild. */
export class ProjectionNotRebuildableError extends Error implements KindedError {
  readonly code = 'PROJECTION_NOT_REBUILDABLE';
  readonly kind: ErrorKind = 'conflict';
  readonly details = {};
  constructor(readonly projectionName: string) {
    super(`"${projectionName}" is a process manager: it keeps no table, so there is nothing to rebuild`);
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
