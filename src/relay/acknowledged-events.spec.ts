import { describe, expect, it } from '@jest/globals';
import type { LeaseHolding, RecordedEvent } from '../event-sourcing/index.js';
import { AcknowledgedEvents } from './acknowledged-events.js';

const holding = (token: string, name = 'nats-relay'): LeaseHolding => ({ name, owner: 'instance-a', token });
const event = (streamId: string, version: number) => ({ streamId, version }) as RecordedEvent;

describe('AcknowledgedEvents', () => {
  it('knows the versions up to the highest acknowledged one of a stream, for the holding that published it', () => {
    const acknowledged = new AcknowledgedEvents();
    acknowledged.remember(holding('7'), event('account-a', 1));
    acknowledged.remember(holding('7'), event('account-a', 2));
    expect(acknowledged.has(holding('7'), event('account-a', 1))).toBe(true);
    expect(acknowledged.has(holding('7'), event('account-a', 2))).toBe(true);
    expect(acknowledged.has(holding('7'), event('account-a', 3))).toBe(false);
    expect(acknowledged.has(holding('7'), event('account-b', 1))).toBe(false);
    // Another holding (a new lease token, another segment's row) remembers nothing of it.
    expect(acknowledged.has(holding('8'), event('account-a', 1))).toBe(false);
    expect(acknowledged.has(holding('7', 'nats-relay#1/2'), event('account-a', 1))).toBe(false);
  });

  it('never lowers a stream’s version', () => {
    const acknowledged = new AcknowledgedEvents();
    acknowledged.remember(holding('7'), event('account-a', 5));
    acknowledged.remember(holding('7'), event('account-a', 3));
    expect(acknowledged.has(holding('7'), event('account-a', 5))).toBe(true);
  });

  it('is bounded: past its capacity the least recently written stream is forgotten', () => {
    const acknowledged = new AcknowledgedEvents(2);
    acknowledged.remember(holding('7'), event('account-a', 1));
    acknowledged.remember(holding('7'), event('account-b', 1));
    acknowledged.remember(holding('7'), event('account-a', 2)); // a is now the most recent
    acknowledged.remember(holding('7'), event('account-c', 1));
    expect(acknowledged.size).toBe(2);
    expect(acknowledged.has(holding('7'), event('account-b', 1))).toBe(false);
    expect(acknowledged.has(holding('7'), event('account-a', 2))).toBe(true);
    expect(acknowledged.has(holding('7'), event('account-c', 1))).toBe(true);
  });
});
