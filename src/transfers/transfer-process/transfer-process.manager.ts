import { Injectable, Logger } from '@nestjs/common';
import { CommandBus } from '@nestjs/cqrs';
import { CreditForTransfer, DebitForTransfer, RefundTransfer, SettleTransfer } from '../../accounts/index.js';
import {
  type CommandMetadata,
  CommandRunner,
  EventStore,
  type ProcessManager,
  ReactionHandlers,
  type RecordedEvent,
  correlationTag,
  fold,
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

/** A transfer that is due a step, and the metadata every command of that step carries. */
interface Step {
  readonly transfer: Active;
  readonly metadata: CommandMetadata;
}

export const TRANSFER_PROCESS_ACTOR = 'transfer-process';

/**
 * Moves the money of a transfer, driven by the stored log through the projection engine (a
 * checkpointed subscription, so a crash loses no step): debit the source (DebitForTransfer); on
 * success credit the target (CreditForTransfer); on success settle the source (SettleTransfer: its
 * money is no longer in flight) and complete. A refused debit fails the transfer; a refused credit
 * refunds the source (RefundTransfer), then fails the transfer.
 *
 * Every command it sends carries the transfer's correlation id, the id of the event that woke the
 * manager up as causation and TRANSFER_PROCESS_ACTOR as actor, explicitly (Step.metadata).
 *
 * Exactly once in effect: the next step is always decided from the transfer's own stream, never
 * from the event that woke the manager up, and every account step is idempotent per transfer id
 * (the account's state remembers the transfer legs it applied). Replayed from an older checkpoint,
 * or restarted after a crash between any two steps, it redoes nothing that was done and never moves
 * money twice. It writes no table of its own, so there is nothing to rebuild.
 */
@Injectable()
export class TransferProcessManager implements ProcessManager {
  readonly kind = 'process-manager';
  readonly name = 'transfer-process';
  readonly handlers = new ReactionHandlers()
    .on(TransferRequested, (event) => this.advance(event))
    .on(SourceDebited, (event) => this.advance(event))
    .on(CreditRefused, (event) => this.advance(event));

  /**
   * Segments by transfer: the steps of one transfer are taken in order by one segment; different
   * transfers go in parallel in other segments (PROJECTION_SEGMENTS_TRANSFER_PROCESS). The account
   * legs of concurrent transfers are ordered by the accounts' expected versions, as for any writer.
   */
  keyOf(event: RecordedEvent): string {
    const transferId = (event.data as { transferId?: unknown }).transferId;
    return typeof transferId === 'string' ? transferId : event.streamId;
  }

  private readonly logger = new Logger(TransferProcessManager.name);

  constructor(
    private readonly store: EventStore,
    private readonly runner: CommandRunner,
    private readonly commands: CommandBus,
  ) {}

  /** Takes every step that is due, until the transfer is completed or failed. */
  private async advance(event: RecordedEvent<{ transferId: string }>): Promise<void> {
    const metadata = { correlationId: event.metadata.correlationId, causationId: event.metadata.eventId, actor: TRANSFER_PROCESS_ACTOR };
    for (let first = true; ; first = false) {
      const state = await this.load(event.data.transferId);
      if (state.status === 'none') return;
      const step = { transfer: state, metadata };
      if (state.status === 'pending') await this.debit(step);
      else if (state.status === 'debited') await this.credit(step);
      else if (state.status === 'refunding') await this.refund(step);
      else {
        // Completed before this manager looked (a replay, or a log written before settlements
        // existed): make sure the source knows its money arrived. Idempotent, like every step.
        if (first && state.status === 'completed') await this.settle(step);
        return;
      }
    }
  }

  private async load(transferId: string): Promise<TransferState> {
    const events = await this.store.readStream(transferStreamId(transferId));
    return fold(
      transferDecider,
      events.map((event) => event.data as TransferEvent),
    );
  }

  private async debit(step: Step): Promise<void> {
    const { transfer, metadata } = step;
    const refusal = await this.attempt(
      new DebitForTransfer(transfer.fromAccountId, transfer.transferId, transfer.amount, transfer.currency, metadata),
    );
    if (refusal) {
      this.log(step, `debit of ${transfer.fromAccountId} refused (${refusal.code}): failing`);
      await this.record(step, (state) => recordDebitRefused(state, refusal));
    } else {
      this.log(step, `debited ${transfer.amount} from ${transfer.fromAccountId}`);
      await this.record(step, recordDebit);
    }
  }

  private async credit(step: Step): Promise<void> {
    const { transfer, metadata } = step;
    const refusal = await this.attempt(
      new CreditForTransfer(transfer.toAccountId, transfer.transferId, transfer.amount, transfer.currency, metadata),
    );
    if (refusal) {
      this.log(step, `credit of ${transfer.toAccountId} refused (${refusal.code}): refunding the source`);
      await this.record(step, (state) => recordCreditRefused(state, refusal));
    } else {
      // The source learns its money arrived (it can no longer come back), then the transfer completes.
      await this.settle(step);
      this.log(step, `credited ${transfer.amount} to ${transfer.toAccountId}: completed`);
      await this.record(step, recordCredit);
    }
  }

  private async refund(step: Step): Promise<void> {
    const { transfer, metadata } = step;
    // A refund is never refused by the rules (the source cannot be closed while the money is in
    // flight, and kept room for it); anything thrown here is an error the engine retries.
    await this.commands.execute(
      new RefundTransfer(transfer.fromAccountId, transfer.transferId, transfer.amount, transfer.currency, metadata),
    );
    this.log(step, `refunded ${transfer.amount} to ${transfer.fromAccountId}: failed`);
    await this.record(step, recordRefund);
  }

  private async settle({ transfer, metadata }: Step): Promise<void> {
    await this.commands.execute(
      new SettleTransfer(transfer.fromAccountId, transfer.transferId, transfer.amount, transfer.currency, metadata),
    );
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

  private async record({ transfer, metadata }: Step, decide: (state: TransferState) => TransferEvent[]): Promise<void> {
    await this.runner.run({ streamId: transferStreamId(transfer.transferId), decider: transferDecider, decide, metadata });
  }

  private log({ transfer, metadata }: Step, message: string): void {
    this.logger.log(`${correlationTag(metadata)} transfer ${transfer.transferId}: ${message}`);
  }
}
