// The pure entry point of the core, for domain files (deciders, event classes, upcasters). Loading it
// loads neither Nest, TypeORM nor pg, unlike the barrel index.ts, which brings the persistence stack
// in. `npm run boundaries` keeps domain files on this entry point (see .dependency-cruiser.cjs).
export * from './decider.js';
export * from './event-type.js';
export type * from './upcaster.js';
export type * from './error-kind.js';
