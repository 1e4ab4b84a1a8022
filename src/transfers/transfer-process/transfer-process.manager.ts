import { Injectable, Logger } from '@nestjs/common';
import { CommandBus } from '@nestjs/cqrs';
import { CreditForTransfer, DebitForTransfer, RefundTransfer, SettleTransfer } from '../../accounts/index.js';
import {
  CommandRunner,
  EventStore,
  type Projection,
  ProjectionHandlers,
  type RecordedEvent,
  currentEventContext,
  fold,
  runInEventContext,
} from '../../event-sourcing/index.js';
import { DomainError } from '../../shared/domain-error.js';
import {
  type TransferState,
  recordCredit,
  recordCreditRefused,
  recordDebit,
  recordDebitRefused,
  recordRefund,
  transferDecider,
  transferStreamId,
} from '../transfer.js';
import { CreditRefused, SourceDebited, type TransferEvent, TransferRequested } from '../transfer.events.js';

type Active = Extract<TransferState, { transferId: string }>;

export const TRANSFER_PROCESS_ACTOR = 'transfer-process';

/**
 * Moves the money of a transfer, driven by the stored log through the projection engine (a
 * checkpointed subscription, so a crash loses no step): withdraw from the source; on success deposit
 * to the target; on success settle the source (its money is no longer in flight) and complete. A refused debit fails the transfer; a refused credit refunds
 * the source, then fails the transfer.
 *
 * Exactly once in effect: the next step is always decided from the transfer's own stream, never
 * from the event that woke the manager up, and every account step is idempotent per transfer id
 * (the account's state remembers the transfer legs it applied). Replayed from an older checkpoint,
 * or restarted after a crash between any two steps, it redoes nothing that was done and never moves
 * money twice. It writes no table of its own, so there is nothing to rebuild.
 */
@Injectable()
export class TransferProcessManager implements Projection {
  readonly name = 'transfer-process';
  readonly mode = 'async';
  readonly tables = [];
  readonly handlers = new ProjectionHandlers()
    .on(TransferRequested, (event) => this.advance(event))
    .on(SourceDebited, (event) => this.advance(event))
    .on(CreditRefused, (event) => this.advance(event));

  private readonly logger = new Logger(TransferProcessManager.name);

  constructor(
    private readonly store: EventStore,
    private readonly runner: CommandRunner,
    private readonly commands: CommandBus,
  ) {}

  /** Takes every step that is due, until the transfer is completed or failed. */
  private async advance(event: RecordedEvent<{ transferId: string }>): Promise<void> {
    const context = { correlationId: event.metadata.correlationId, causationId: event.metadata.eventId, actor: TRANSFER_PROCESS_ACTOR };
    await runInEventContext(context, async () => {
      for (let first = true; ; first = false) {
        const state = await this.load(event.data.transferId);
        if (state.status === 'none') return;
        if (state.status === 'pending') await this.debit(state);
        else if (state.status === 'debited') await this.credit(state);
        else if (state.status === 'refunding') await this.refund(state);
        else {
          // Completed before this manager looked (a replay, or a log written before settlements
          // existed): make sure the source knows its money arrived. Idempotent, like every step.
          if (first && state.status === 'completed') await this.settle(state);
          return;
        }
      }
    });
  }

  private async load(transferId: string): Promise<TransferState> {
    const events = await this.store.readStream(transferStreamId(transferId));
    return fold(transferDecider, events.map((event) => event.data as TransferEvent));
  }

  private async debit(transfer: Active): Promise<void> {
    const refusal = await this.attempt(new DebitForTransfer(transfer.fromAccountId, transfer.transferId, transfer.amount, transfer.currency));
    if (refusal) {
      this.log(transfer, `debit of ${transfer.fromAccountId} refused (${refusal.code}): failing`);
      await this.record(transfer, (state) => recordDebitRefused(state, refusal));
    } else {
      this.log(transfer, `debited ${transfer.amount} from ${transfer.fromAccountId}`);
      await this.record(transfer, recordDebit);
    }
  }

  private async credit(transfer: Active): Promise<void> {
    const refusal = await this.attempt(new CreditForTransfer(transfer.toAccountId, transfer.transferId, transfer.amount, transfer.currency));
    if (refusal) {
      this.log(transfer, `credit of ${transfer.toAccountId} refused (${refusal.code}): refunding the source`);
      await this.record(transfer, (state) => recordCreditRefused(state, refusal));
    } else {
      // The source learns its money arrived (it can no longer come back), then the transfer completes.
      await this.settle(transfer);
      this.log(transfer, `credited ${transfer.amount} to ${transfer.toAccountId}: completed`);
      await this.record(transfer, recordCredit);
    }
  }

  private async refund(transfer: Active): Promise<void> {
    // A refund is never refused by the rules (the source cannot be closed while the money is in
    // flight, and kept room for it); anything thrown here is an error the engine retries.
    await this.commands.execute(new RefundTransfer(transfer.fromAccountId, transfer.transferId, transfer.amount, transfer.currency));
    this.log(transfer, `refunded ${transfer.amount} to ${transfer.fromAccountId}: failed`);
    await this.record(transfer, recordRefund);
  }

  private async settle(transfer: Active): Promise<void> {
    await this.commands.execute(new SettleTransfer(transfer.fromAccountId, transfer.transferId, transfer.amount, transfer.currency));
  }

  /** Runs an account step; a business refusal is an answer (returned), anything else an error (thrown). */
  private async attempt(command: DebitForTransfer | CreditForTransfer): Promise<{ code: string; reason: string } | undefined> {
    try {
      await this.commands.execute(command);
      return undefined;
    } catch (error) {
      if (error instanceof DomainError) return { code: error.code, reason: error.message };
      throw error;
    }
  }

  private async record(transfer: Active, decide: (state: TransferState) => TransferEvent[]): Promise<void> {
    await this.runner.run({ streamId: transferStreamId(transfer.transferId), decider: transferDecider, decide });
  }

  private log(transfer: Active, message: string): void {
    this.logger.log(`[correlation ${currentEventContext()?.correlationId}] transfer ${transfer.transferId}: ${message}`);
  }
}
