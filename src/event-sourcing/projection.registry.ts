import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { type Projection, applyToProjection, assertValidProjection } from './projection.js';
import type { RecordedEvent } from './recorded-event.js';

/** Every projection of the application, by name; applies them inline within an append's transaction. */
@Injectable()
export class ProjectionRegistry {
  private readonly projections = new Map<string, Projection>();

  register(projections: readonly Projection[]): void {
    for (const projection of projections) {
      if (this.projections.has(projection.name)) throw new Error(`Projection "${projection.name}" is registered twice`);
      assertValidProjection(projection);
      this.projections.set(projection.name, projection);
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
    return this.all().some((projection) => projection.mode === 'inline');
  }

  /** Applies the events to every inline projection, in the caller's (the append's) transaction. */
  async applyInline(events: readonly RecordedEvent[], manager: EntityManager): Promise<void> {
    for (const projection of this.projections.values()) {
      if (projection.mode === 'inline') await applyToProjection(projection, events, manager);
    }
  }
}
