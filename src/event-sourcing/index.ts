// The public API of the event-sourcing core. Features import from here, never from inner files.
export * from './clock.js';
export * from './command-runner.js';
export * from './decider.js';
export * from './errors.js';
export * from './event-context.js';
export * from './event-sourcing.module.js';
export * from './event-store.js';
export * from './event-type.js';
export * from './event-type.registry.js';
export * from './expected-version.js';
export * from './projection.js';
export * from './projection-rebuilder.js';
export * from './projection.registry.js';
export * from './recorded-event.js';
