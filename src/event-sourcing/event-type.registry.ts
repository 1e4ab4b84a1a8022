import { Injectable } from '@nestjs/common';
import { UnknownEventTypeError, UnreadableEventSchemaError } from './errors.js';
import { type EventClass, type EventTypeDefinition, eventTypeOf } from './event-type.js';
import type { Upcaster } from './upcaster.js';

export type { Upcaster } from './upcaster.js';

interface Registration extends EventTypeDefinition {
  readonly eventClass: EventClass;
}

/** Maps stable type names to event classes and back; feature modules fill it via forFeature(). */
@Injectable()
export class EventTypeRegistry {
  private readonly byType = new Map<string, Registration>();
  private readonly byClass = new Map<Function, Registration>();
  private readonly upcasters = new Map<string, Upcaster>();

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any event class: a constructor's data parameter makes EventClass<object> reject them
  register(eventClasses: ReadonlyArray<EventClass<any>>): void {
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

  registerUpcasters(upcasters: readonly Upcaster[]): void {
    for (const upcaster of upcasters) {
      const key = `${upcaster.type}@${upcaster.fromVersion}`;
      if (this.upcasters.has(key)) throw new Error(`Two upcasters from ${key}`);
      this.upcasters.set(key, upcaster);
    }
  }

  /**
   * Why stored events of this type and schema version cannot be read, or undefined when they can:
   * the type must be registered and every version from the stored one to the class's must have an
   * upcaster (a stored version newer than the code's cannot be read either).
   */
  whyUnreadable(type: string, schemaVersion: number): string | undefined {
    const registration = this.byType.get(type);
    if (!registration) return `no event class is registered for type "${type}"`;
    if (schemaVersion > registration.schemaVersion) {
      return `"${type}" is stored at schema version ${schemaVersion}, newer than this code's ${registration.schemaVersion}`;
    }
    for (let version = schemaVersion; version < registration.schemaVersion; version++) {
      if (!this.upcasters.has(`${type}@${version}`)) {
        return `no upcaster turns "${type}" schema version ${version} into ${version + 1}`;
      }
    }
    return undefined;
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

  /**
   * Turns stored data back into an instance of the registered class (so EventBus handlers get it),
   * upcasting older schema versions to the current one first: every reader sees the current shape.
   */
  deserialize(type: string, schemaVersion: number, data: object): object {
    const registration = this.byType.get(type);
    if (!registration) throw new UnknownEventTypeError(type);
    let payload = data as Record<string, unknown>;
    for (let version = schemaVersion; version < registration.schemaVersion; version++) {
      const upcaster = this.upcasters.get(`${type}@${version}`);
      if (!upcaster) throw new UnreadableEventSchemaError(type, schemaVersion, this.whyUnreadable(type, schemaVersion)!);
      payload = upcaster.upcast(payload);
    }
    if (schemaVersion > registration.schemaVersion) {
      throw new UnreadableEventSchemaError(type, schemaVersion, this.whyUnreadable(type, schemaVersion)!);
    }
    return new registration.eventClass(payload);
  }

  /** The current schema version of a registered type. */
  currentSchemaVersion(type: string): number {
    const registration = this.byType.get(type);
    if (!registration) throw new UnknownEventTypeError(type);
    return registration.schemaVersion;
  }

  /** The plain JSON payload stored for an event (own enumerable fields only). */
  serialize(event: object): Record<string, unknown> {
    return JSON.parse(JSON.stringify(event)) as Record<string, unknown>;
  }
}
