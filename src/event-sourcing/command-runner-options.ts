/** Injection token of CommandRunnerOptions (its own file: the event store reads it too). */
export const COMMAND_RUNNER_OPTIONS = Symbol('COMMAND_RUNNER_OPTIONS');

export interface CommandRunnerOptions {
  /**
   * How many times a command is decided and appended when concurrent writers keep winning; also how
   * many times a unit of work (EventStore.transaction) starts over after a UnitOfWorkConflict.
   */
  readonly maxAttempts: number;
  /**
   * Group-commit statements of appends in flight at once (group-append.ts); default 1, capped by the
   * pool size. Here because the event store already reads these options.
   */
  readonly appendGroupStatements?: number;
  /**
   * How many streams' last appended state this process keeps, so that a command on one of them
   * decides without reading it again (AggregateCache; the append still checks the version). 0: off.
   */
  readonly aggregateCacheSize?: number;
  /**
   * How long a command may wait for its turn on a stream (StreamLanes) before it is refused with
   * StreamBusyError (503), nothing written; unbounded when not given.
   */
  readonly laneMaxWaitMs?: number;
}

export const DEFAULT_AGGREGATE_CACHE_SIZE = 10_000;
