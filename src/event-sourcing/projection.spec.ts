import { describe, expect, it } from '@jest/globals';
import { type ProcessManager, ReactionHandlers, reactsToAny } from './process-manager.js';
import { type Projection, ProjectionHandlers, handlesAny } from './projection.js';
import { ProjectionRegistry } from './projection.registry.js';
import type { RecordedEvent } from './recorded-event.js';
import { concernsAny, isProcessManager, modeOf } from './subscriber.js';

class Opened {
  readonly id!: string;
  constructor(data: Opened) {
    Object.assign(this, data);
  }
}
class Renamed {
  readonly id!: string;
  constructor(data: Renamed) {
    Object.assign(this, data);
  }
}
class RenamedAgain extends Renamed {}
class Unrelated {
  readonly id!: string;
  constructor(data: Unrelated) {
    Object.assign(this, data);
  }
}

const recorded = (data: object) => ({ data }) as RecordedEvent;
const base = { name: 'p', mode: 'async' as const, tables: ['t'] };

describe('handlesAny: whether a batch can change a projection', () => {
  it('handlers: true when some event has a handler', () => {
    const projection: Projection = { ...base, handlers: new ProjectionHandlers().on(Opened, async () => undefined) };
    expect(handlesAny(projection, [recorded(new Unrelated({ id: 'a' })), recorded(new Opened({ id: 'b' }))])).toBe(true);
    expect(handlesAny(projection, [recorded(new Unrelated({ id: 'a' })), recorded(new Renamed({ id: 'b' }))])).toBe(false);
    expect(handlesAny(projection, [])).toBe(false);
  });

  it('applyBatch with `handles`: true when some event is of a listed class (or a subclass of one)', () => {
    const projection: Projection = { ...base, handles: [Renamed], applyBatch: async () => undefined };
    expect(handlesAny(projection, [recorded(new Opened({ id: 'a' }))])).toBe(false);
    expect(handlesAny(projection, [recorded(new Opened({ id: 'a' })), recorded(new Renamed({ id: 'b' }))])).toBe(true);
    expect(handlesAny(projection, [recorded(new RenamedAgain({ id: 'c' }))])).toBe(true);
  });

  it('applyBatch without `handles`: every non-empty batch is applied', () => {
    const projection: Projection = { ...base, applyBatch: async () => undefined };
    expect(handlesAny(projection, [recorded(new Unrelated({ id: 'a' }))])).toBe(true);
    expect(handlesAny(projection, [])).toBe(false);
  });
});

describe('ProjectionRegistry', () => {
  it('refuses two projections that declare the same table (a rebuild’s copies share one schema, named as the live tables)', () => {
    const registry = new ProjectionRegistry();
    const handlers = new ProjectionHandlers();
    registry.register([{ ...base, name: 'a', tables: ['t', 'u'], handlers }]);
    expect(() => registry.register([{ ...base, name: 'b', tables: ['v', 'u'], handlers }])).toThrow(
      'Projections "a" and "b" both declare table "u"',
    );
    expect(() => registry.register([{ ...base, name: 'c', tables: ['v'], handlers }])).not.toThrow();
  });

  it('refuses a projection with no table, pointing at the process-manager contract', () => {
    const registry = new ProjectionRegistry();
    expect(() => registry.register([{ ...base, name: 'reactor', tables: [], handlers: new ProjectionHandlers() }])).toThrow(
      /Projection "reactor" declares no tables.*ProcessManager/,
    );
    expect(registry.get('reactor')).toBeUndefined();
  });

  it('registers a process manager by its kind, in the same namespace as projections', () => {
    const registry = new ProjectionRegistry();
    const manager: ProcessManager = { kind: 'process-manager', name: 'saga', handlers: new ReactionHandlers() };
    registry.register([{ ...base, name: 'view', handlers: new ProjectionHandlers() }, manager]);
    expect(isProcessManager(registry.get('saga')!)).toBe(true);
    expect(isProcessManager(registry.get('view')!)).toBe(false);
    expect(modeOf(registry.get('saga')!)).toBe('async');
    expect(registry.hasInline()).toBe(false);
    expect(() => registry.register([{ ...manager }])).toThrow('Projection "saga" is registered twice');
    expect(() => registry.register([{ ...base, name: 'saga', handlers: new ProjectionHandlers() }])).toThrow('registered twice');
  });

  it("refuses a process manager that carries a projection's members", () => {
    const registry = new ProjectionRegistry();
    const confused = { kind: 'process-manager', name: 'confused', handlers: new ReactionHandlers(), tables: ['t'] } as ProcessManager;
    expect(() => registry.register([confused])).toThrow('Process manager "confused" declares tables');
    const projectionHandlers = { kind: 'process-manager', name: 'old', handlers: new ProjectionHandlers() } as unknown as ProcessManager;
    expect(() => registry.register([projectionHandlers])).toThrow('must define its handlers as ReactionHandlers');
  });
});

describe('ReactionHandlers: what a process manager reacts to', () => {
  it('on(): only the listed classes; a batch without them concerns it not', async () => {
    const seen: string[] = [];
    const manager: ProcessManager = {
      kind: 'process-manager',
      name: 'saga',
      handlers: new ReactionHandlers().on(Opened, async (event) => void seen.push(event.data.id)),
    };
    expect(reactsToAny(manager, [recorded(new Unrelated({ id: 'a' }))])).toBe(false);
    expect(concernsAny(manager, [recorded(new Unrelated({ id: 'a' })), recorded(new Opened({ id: 'b' }))])).toBe(true);
    await manager.handlers.handlerFor(recorded(new Opened({ id: 'b' })))!(recorded(new Opened({ id: 'b' })));
    expect(seen).toEqual(['b']);
  });

  it('onEvery(): every event, and it excludes on()', () => {
    const handlers = new ReactionHandlers().onEvery(async () => undefined);
    expect(handlers.handlerFor(recorded(new Unrelated({ id: 'a' })))).toBeDefined();
    expect(() => handlers.on(Opened, async () => undefined)).toThrow('onEvery() already reacts to every event');
    expect(() => new ReactionHandlers().on(Opened, async () => undefined).onEvery(async () => undefined)).toThrow(
      'onEvery() excludes any other handler',
    );
  });
});
