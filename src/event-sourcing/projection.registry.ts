import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { type Projection, applyToProjection, assertValidProjection } from './projection.js';
import type { RecordedEvent } from './recorded-event.js';

/** Every projection of the application, by name; applies them inline within an append's transaction. */
@Injectable()
export class ProjectionRegistry {
  private readonly projections = new Map<string, Projection>();
  /** Kept apart at registration: every append asks for them. */
  private readonly inline: Projection[] = [];

  register(projections: readonly Projection[]): void {
    for (const projection of projections) {
      if (this.projections.has(projection.name)) throw new Error(`Projection "${projection.name}" is registered twice`);
      assertValidProjection(projection);
      // A table has one writer; and a rebuild's copies share one schema, named as the live tables.
      for (const table of projection.tables) {
        const other = [...this.projections.values()].find((candidate) => candidate.tables.includes(table));
        if (other)
          throw new Error(
            `Projections "${other.name}" and "${projection.name}" both declare table "${table}": a table belongs to one projection`,
          );
      }
      this.projections.set(projection.name, projection);
      if (projection.mode === 'inline') this.inline.push(projection);
    }
  }

  get(name: string): Projection | undefined {
    return this.projections.get(name);
  }

  all(): Projection[] {
    return [...this.projections.values()];
  }

  /** Whether an append must update read tables in its own transaction. */
  hasInline(): boolean {
    return this.inline.length > 0;
  }

  /** Applies the events to every inline projection, in the caller's (the append's) transaction. */
  async applyInline(events: readonly RecordedEvent[], manager: EntityManager): Promise<void> {
    for (const projection of this.inline) await applyToProjection(projection, events, manager);
  }
}
