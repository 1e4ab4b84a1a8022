import { describe, expect, it } from '@jest/globals';
import { type Projection, ProjectionHandlers, handlesAny } from './projection.js';
import { ProjectionRegistry } from './projection.registry.js';
import type { RecordedEvent } from './recorded-event.js';

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
});
