import { Injectable } from '@nestjs/common';
import { UnknownEventTypeError } from './errors.js';
import { type EventClass, type EventTypeDefinition, eventTypeOf } from './event-type.js';

interface Registration extends EventTypeDefinition {
  readonly eventClass: EventClass;
}

/** Maps stable type names to event classes and back; feature modules fill it via forFeature(). */
@Injectable()
export class EventTypeRegistry {
  private readonly byType = new Map<string, Registration>();
  private readonly byClass = new Map<Function, Registration>();

  register(eventClasses: readonly EventClass<any>[]): void {
    for (const eventClass of eventClasses) {
      const definition = eventTypeOf(eventClass);
      const existing = this.byType.get(definition.type);
      if (existing && existing.eventClass !== eventClass) {
        throw new Error(`Event type "${definition.type}" is claimed by both ${existing.eventClass.name} and ${eventClass.name}`);
      }
      const registration = { ...definition, eventClass };
      this.byType.set(definition.type, registration);
      this.byClass.set(eventClass, registration);
    }
  }

  /** The stored type name and schema version of an event instance. */
  definitionOf(event: object): EventTypeDefinition {
    const registration = this.byClass.get(event.constructor);
    if (!registration) {
      throw new Error(`${event.constructor.name} is not a registered event class (EventSourcingModule.forFeature)`);
    }
    return registration;
  }

  has(type: string): boolean {
    return this.byType.has(type);
  }

  registeredTypes(): string[] {
    return [...this.byType.keys()];
  }

  /** Turns stored data back into an instance of the registered class, so EventBus handlers get it. */
  deserialize(type: string, data: object): object {
    const registration = this.byType.get(type);
    if (!registration) throw new UnknownEventTypeError(type);
    return new registration.eventClass(data);
  }

  /** The plain JSON payload stored for an event (own enumerable fields only). */
  serialize(event: object): Record<string, unknown> {
    return JSON.parse(JSON.stringify(event)) as Record<string, unknown>;
  }
}
