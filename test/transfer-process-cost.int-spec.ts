import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { CommandBus } from '@nestjs/cqrs';
import { EventStore } from '../src/event-sourcing/index.js';
import { transferStreamId } from '../src/transfers/transfer.js';
import { LedgerClient } from './support/ledger-client.js';
import { waitUntilApplied } from './support/projection-fixtures.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// What the transfer process does per transfer once it runs from one reaction to the end (issue 15):
// the reaction to TransferRequested reads the transfer's stream once and takes every step; the later
// reactions to the records it wrote (SourceDebited) find the transfer finished by this process and
// neither read its stream again nor send the settlement a second time. Restarted, replayed or taken
// over, the manager knows nothing and reads (transfer-process.int-spec covers those paths).

let t: TestApp;
let ledger: LedgerClient;

beforeAll(async () => {
  t = await startTestApp();
  ledger = new LedgerClient(t);
});
afterAll(() => t?.close());

describe('the transfer process, per transfer', () => {
  it('reads the transfer stream once (the request reads nothing) and settles once; the reaction to its own SourceDebited does nothing', async () => {
    const source = await ledger.openWith(1000);
    const target = await ledger.open();
    const store = t.app.get(EventStore);
    const bus = t.app.get(CommandBus);
    const transferReads: string[] = []; // every stream read through the store
    const commands: string[] = [];
    const original = store.readStream.bind(store);
    const readStream = jest.spyOn(store, 'readStream').mockImplementation((streamId, ...rest) => {
      transferReads.push(streamId);
      return original(streamId, ...rest);
    });
    const execute = jest.spyOn(bus, 'execute');
    try {
      const answer = await t.http.post('/transfers').send({ fromAccountId: source.id, toAccountId: target.id, amount: 25 }).expect(202);
      const transferId = answer.body.id as string;
      await ledger.settled(transferId);
      // Until the manager's checkpoint is past the transfer's last event (its reactions all ran).
      const [{ position }] = (await t.dataSource.query('SELECT max(position) AS position FROM events WHERE stream_id = $1', [
        transferStreamId(transferId),
      ])) as Array<{ position: string }>;
      await waitUntilApplied(t.dataSource, 'transfer-process', Number(position));
      for (const call of execute.mock.calls) commands.push((call[0] as object).constructor.name);
      // The manager's one read: the request's own command decides on a stream it made the id of,
      // without reading it (RunCommand.newStream).
      expect(transferReads.filter((id) => id === transferStreamId(transferId))).toHaveLength(1);
      expect(commands.filter((name) => name === 'SettleTransfer')).toHaveLength(1);
      expect(commands.filter((name) => name === 'DebitForTransfer')).toHaveLength(1);
      expect(commands.filter((name) => name === 'CreditForTransfer')).toHaveLength(1);
    } finally {
      readStream.mockRestore();
      execute.mockRestore();
    }
  });
});
