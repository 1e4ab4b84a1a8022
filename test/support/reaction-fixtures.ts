import { setTimeout as sleep } from 'node:timers/promises';
import { Injectable, type Type } from '@nestjs/common';
import {
  ANY,
  EventStore,
  EventType,
  LeaseLostError,
  type ProcessManager,
  ReactionHandlers,
  type RecordedEvent,
} from '../../src/event-sourcing/index.js';
import { Ticked, rows, type Queryable } from './projection-fixtures.js';

/**
 * Process managers for the fencing suites: no table of their own, they react to each
 * Ticked by appending a Reacted to one shared stream with ANY, deliberately NOT idempotent — a
 * reaction whose effect commits twice shows as two Reacted for one source position in the log.
 */

@EventType('fencing-test.Reacted')
export class Reacted {
  readonly source!: number;
  readonly by!: string;
  constructor(data: Reacted) {
    Object.assign(this, data);
  }
}

export type ReactionOutcome = 'appended' | 'refused' | 'error';

/** One call of the handler: where, by whom, when (performance.now() of this process), how it ended. */
export interface ReactionRecord {
  readonly position: number;
  readonly by: string;
  readonly start: number;
  end?: number;
  outcome?: ReactionOutcome;
}

export interface ReactionBehaviour {
  /** How long the reaction takes before its effect (a JavaScript wait, not a database one). */
  sleepMs: number;
  readonly records: ReactionRecord[];
  onStart?: (event: RecordedEvent) => void | Promise<void>;
  onEnd?: (record: ReactionRecord) => void;
}

export function newReactionBehaviour(sleepMs = 0): ReactionBehaviour {
  return { sleepMs, records: [] };
}

export const reactedStream = (name: string) => `reacted-${name}`;

/** A reacting process manager `name`; `by` labels its records (one label per engine of the test). */
export function defineReactingProcessManager(name: string, behaviour: ReactionBehaviour, by: string): Type<ProcessManager> {
  @Injectable()
  class ReactingProcessManager implements ProcessManager {
    readonly kind = 'process-manager';
    readonly name = name;
    readonly handlers = new ReactionHandlers().on(Ticked, (event) => this.react(event));

    constructor(private readonly store: EventStore) {}

    private async react(event: RecordedEvent): Promise<void> {
      const record: ReactionRecord = { position: event.position, by, start: performance.now() };
      behaviour.records.push(record);
      try {
        await behaviour.onStart?.(event);
        if (behaviour.sleepMs > 0) await sleep(behaviour.sleepMs);
        await this.store.append(reactedStream(name), [new Reacted({ source: event.position, by })], { expectedVersion: ANY });
        record.outcome = 'appended';
      } catch (error) {
        record.outcome = error instanceof LeaseLostError ? 'refused' : 'error';
        throw error;
      } finally {
        record.end = performance.now();
        behaviour.onEnd?.(record);
      }
    }
  }
  Object.defineProperty(ReactingProcessManager, 'name', { value: `ReactingProcessManager_${by}` });
  return ReactingProcessManager;
}

/** How many Reacted each source position has in the log (committed effects). */
export async function committedEffects(query: Queryable, name: string): Promise<Map<number, number>> {
  const found = await rows<{ source: string; n: string }>(
    query,
    `SELECT (data->>'source')::bigint AS source, count(*) AS n FROM events WHERE stream_id = $1 GROUP BY 1`,
    [reactedStream(name)],
  );
  return new Map(found.map((row) => [Number(row.source), Number(row.n)]));
}

/** Pairs of reactions that ran at the same time (any two records whose intervals intersect). */
export function overlaps(records: readonly ReactionRecord[]): Array<[ReactionRecord, ReactionRecord]> {
  const sorted = [...records].sort((a, b) => a.start - b.start);
  const found: Array<[ReactionRecord, ReactionRecord]> = [];
  for (let i = 0; i < sorted.length; i++) {
    for (let j = i + 1; j < sorted.length && sorted[j].start < (sorted[i].end ?? Infinity); j++) found.push([sorted[i], sorted[j]]);
  }
  return found;
}
