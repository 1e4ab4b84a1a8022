import 'reflect-metadata';

/** A class whose instances are domain events: built from the plain `data` stored for them. */
export type EventClass<E extends object = object> = new (data: E) => E;

/** The stable identity of an event type in the store: never derived from a class name. */
export interface EventTypeDefinition {
  readonly type: string;
  readonly schemaVersion: number;
}

const EVENT_TYPE = Symbol('event-sourcing:event-type');
const TYPE_NAME = /^[a-z][a-z0-9-]*\.[A-Z][A-Za-z0-9]*$/;

/**
 * Names an event class for the store, e.g. `@EventType('accounts.MoneyDeposited')`.
 * The name is what is persisted, so renaming or moving the class never breaks stored history.
 */
export function EventType(type: string, options: { schemaVersion?: number } = {}): ClassDecorator {
  if (!TYPE_NAME.test(type)) {
    throw new Error(`Event type "${type}" must look like "<module>.<PastTenseFact>"`);
  }
  const schemaVersion = options.schemaVersion ?? 1;
  if (!Number.isInteger(schemaVersion) || schemaVersion < 1) {
    throw new Error(`Event type "${type}" has an invalid schema version ${schemaVersion}`);
  }
  return (target) => {
    Reflect.defineMetadata(EVENT_TYPE, { type, schemaVersion } satisfies EventTypeDefinition, target);
  };
}

export function eventTypeOf(eventClass: Function): EventTypeDefinition {
  const definition = Reflect.getOwnMetadata(EVENT_TYPE, eventClass) as EventTypeDefinition | undefined;
  if (!definition) {
    throw new Error(`${eventClass.name} has no @EventType(...) decorator`);
  }
  return definition;
}
