import { CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { AccountLookup, AccountNotFoundError } from '../../accounts/index.js';
import { type AppendResult, CommandRunner } from '../../event-sourcing/index.js';
import { requestTransfer, transferDecider, transferStreamId } from '../transfer.js';
import { RequestTransfer } from './request-transfer.command.js';

/**
 * Records the request; the transfer process manager moves the money afterwards. Both accounts must
 * exist now (404 otherwise); everything else that can refuse a transfer (funds, a closed account,
 * a currency mismatch) is found by the process and ends the transfer as failed.
 */
@CommandHandler(RequestTransfer)
export class RequestTransferHandler implements ICommandHandler<RequestTransfer> {
  constructor(
    private readonly runner: CommandRunner,
    private readonly accounts: AccountLookup,
  ) {}

  async execute(command: RequestTransfer): Promise<AppendResult> {
    const source = await this.accounts.opened(command.fromAccountId);
    if (!source) throw new AccountNotFoundError(command.fromAccountId);
    const target = await this.accounts.opened(command.toAccountId);
    if (!target) throw new AccountNotFoundError(command.toAccountId);
    return this.runner.run({
      streamId: transferStreamId(command.transferId),
      decider: transferDecider,
      decide: (state) =>
        requestTransfer(state, {
          transferId: command.transferId,
          fromAccountId: command.fromAccountId,
          toAccountId: command.toAccountId,
          amount: command.amount,
          currency: source.currency,
          reference: command.reference,
        }),
      metadata: command.metadata,
      // The controller made the transfer's id for this request: there is no stream to read yet.
      newStream: true,
    });
  }
}
