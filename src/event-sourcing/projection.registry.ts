import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { assertValidProcessManager } from './process-manager.js';
import { type Projection, applyToProjection, assertValidProjection } from './projection.js';
import type { RecordedEvent } from './recorded-event.js';
import { type Subscriber, isProcessManager } from './subscriber.js';

/**
 * Every projection and process manager of the application, by name (one namespace: they share the
 * checkpoint table); applies the inline projections within an append's transaction.
 */
@Injectable()
export class ProjectionRegistry {
  private readonly subscribers = new Map<string, Subscriber>();
  /** Kept apart at registration: every append asks for them. */
  private readonly inline: Projection[] = [];

  register(subscribers: readonly Subscriber[]): void {
    for (const subscriber of subscribers) {
      if (this.subscribers.has(subscriber.name)) throw new Error(`Projection "${subscriber.name}" is registered twice`);
      if (isProcessManager(subscriber)) {
        assertValidProcessManager(subscriber);
        this.subscribers.set(subscriber.name, subscriber);
        continue;
      }
      const projection = subscriber;
      assertValidProjection(projection);
      // A table has one writer; and a rebuild's copies share one schema, named as the live tables.
      for (const table of projection.tables) {
        const other = this.projections().find((candidate) => candidate.tables.includes(table));
        if (other)
          throw new Error(
            `Projections "${other.name}" and "${projection.name}" both declare table "${table}": a table belongs to one projection`,
          );
      }
      this.subscribers.set(projection.name, projection);
      if (projection.mode === 'inline') this.inline.push(projection);
    }
  }

  get(name: string): Subscriber | undefined {
    return this.subscribers.get(name);
  }

  all(): Subscriber[] {
    return [...this.subscribers.values()];
  }

  /** Whether an append must update read tables in its own transaction. */
  hasInline(): boolean {
    return this.inline.length > 0;
  }

  /** Applies the events to every inline projection, in the caller's (the append's) transaction. */
  async applyInline(events: readonly RecordedEvent[], manager: EntityManager): Promise<void> {
    for (const projection of this.inline) await applyToProjection(projection, events, manager);
  }

  private projections(): Projection[] {
    return this.all().filter((subscriber): subscriber is Projection => !isProcessManager(subscriber));
  }
}
