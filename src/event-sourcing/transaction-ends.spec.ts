import { describe, expect, it } from '@jest/globals';
import { TransactionEnds } from './transaction-ends.js';

describe('TransactionEnds', () => {
  it('ends a wait when the transaction ends, and only that one', async () => {
    const ends = new TransactionEnds();
    const onA = ends.waitFor('100', 60_000);
    const onB = ends.waitFor('101', 20);
    ends.ended('100');
    await expect(onA).resolves.toBe(true);
    await expect(onB).resolves.toBe(false); // its own timer, not A's end
  });

  it('answers at once for a transaction that already ended (an end reported between the read and the wait)', async () => {
    const ends = new TransactionEnds();
    ends.ended('7');
    await expect(ends.waitFor('7', 60_000)).resolves.toBe(true);
  });

  it('ends every wait on the same transaction, and forgets waits whose timer fired', async () => {
    const ends = new TransactionEnds();
    const expired = ends.waitFor('9', 1);
    await expect(expired).resolves.toBe(false);
    const first = ends.waitFor('9', 60_000);
    const second = ends.waitFor('9', 60_000);
    ends.ended('9');
    await expect(Promise.all([first, second])).resolves.toEqual([true, true]);
  });
});
