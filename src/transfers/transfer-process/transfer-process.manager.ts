import { Injectable, Logger } from '@nestjs/common';
import { CommandBus } from '@nestjs/cqrs';
import { CreditForTransfer, DebitForTransfer, RefundTransfer, SettleTransfer } from '../../accounts/index.js';
import {
  type CommandMetadata,
  EventStore,
  type ProcessManager,
  ReactionHandlers,
  type RecordedEvent,
  UnitOfWorkConflict,
  WrongExpectedVersionError,
  correlationTag,
  fold,
} from '../../event-sourcing/index.js';
import { DomainError } from '../../shared/domain-error.js';
import { RecentSet } from '../../shared/recent-set.js';
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

/** The transfer's stream as this manager last saw or wrote it: the state and its version. */
interface Known {
  readonly state: TransferState;
  readonly version: number;
}

/** A transfer that is due a step, the version its record is appended at, and the metadata of every command of the step. */
interface Step {
  readonly transfer: Active;
  readonly version: number;
  readonly metadata: CommandMetadata;
}

/** What a step left: the transfer's stream after it, and what to log once it has committed. */
interface Taken {
  readonly known: Known;
  readonly log?: string;
}

export const TRANSFER_PROCESS_ACTOR = 'transfer-process';

/** How many finished transfers a manager remembers (see `finished`): about a minute of backlog at full speed. */
const FINISHED_MEMORY = 10_000;

/**
 * Moves the money of a transfer, driven by the stored log through the projection engine (a
 * checkpointed subscription, so a crash loses no step): debit the source (DebitForTransfer) and
 * record it (SourceDebited); on success credit the target (CreditForTransfer); on success settle the
 * source (SettleTransfer: its money is no longer in flight) and record the completion. A refused
 * debit fails the transfer; a refused credit is recorded (CreditRefused), then the source is refunded
 * (RefundTransfer) and the transfer failed.
 *
 * Fewer commits per transfer (issue 15): an account step and the transfer's record of it are one
 * unit of work (EventStore.transaction, flat: the appends join it without savepoints) — the debit
 * with SourceDebited (or the refusal with TransferFailed), the settlement with TargetCredited +
 * TransferCompleted, the refund with SourceRefunded + TransferFailed — committed together or not at
 * all, under the lease's fence like every step. The credit stays a transaction of its own: a unit of
 * work holding the target's new version while it writes the source would wait on, and deadlock with,
 * a transfer the other way (each unit of work here writes one account and its own transfer stream,
 * which nobody else writes, so none waits while holding another's account).
 *
 * Every command it sends carries the transfer's correlation id, the id of the event that woke the
 * manager up as causation and TRANSFER_PROCESS_ACTOR as actor, explicitly (Step.metadata).
 *
 * Exactly once in effect: the next step is always decided from the transfer's own stream (read when
 * woken, then as this manager wrote it: each record is appended at the exact version it was decided
 * on, and a unit of work that loses that race starts over from the stream as stored), never from the
 * event that woke the manager up, and every account step is idempotent per transfer id (the
 * account's state remembers the transfer legs it applied). Replayed from an older checkpoint, or
 * restarted after a crash between any two steps, it redoes nothing that was done and never moves
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
  /**
   * Transfers this process saw finished (completed, its source settled, or failed). Its reaction to
   * TransferRequested takes every step, so its reactions to the records it wrote (SourceDebited,
   * CreditRefused) come later with nothing left to do: remembered, they need no read of the stream.
   * Only a memory of facts that cannot change (the log is append-only); a restarted or new holder
   * starts without it and reads.
   */
  private readonly finished = new RecentSet<string>(FINISHED_MEMORY);

  constructor(
    private readonly store: EventStore,
    private readonly commands: CommandBus,
  ) {}

  /** Takes every step that is due, until the transfer is completed or failed. */
  private async advance(event: RecordedEvent<{ transferId: string }>): Promise<void> {
    if (this.finished.has(event.data.transferId)) return;
    const metadata = { correlationId: event.metadata.correlationId, causationId: event.metadata.eventId, actor: TRANSFER_PROCESS_ACTOR };
    let known = await this.load(event.data.transferId);
    for (let first = true; ; first = false) {
      const { state, version } = known;
      if (state.status === 'none') return;
      const step = { transfer: state, version, metadata };
      if (state.status === 'pending') {
        known = await this.inUnitOfWork(step, (now) => this.debit(now));
      } else if (state.status === 'debited') {
        // The credit in a transaction of its own (see the class comment); then its outcome recorded.
        const refusal = await this.attempt(
          new CreditForTransfer(state.toAccountId, state.transferId, state.amount, state.currency, metadata),
        );
        known = refusal
          ? await this.inUnitOfWork(step, (now) =>
              this.record(
                now,
                (current) => recordCreditRefused(current, refusal),
                `credit of ${state.toAccountId} refused (${refusal.code}): refunding the source`,
              ),
            )
          : await this.inUnitOfWork(step, (now) => this.complete(now));
      } else if (state.status === 'refunding') {
        known = await this.inUnitOfWork(step, (now) => this.refund(now));
      } else {
        // Completed before this manager looked (a replay, or a log written before settlements
        // existed): make sure the source knows its money arrived. Idempotent, like every step.
        if (first && state.status === 'completed') await this.settle(step);
        this.finished.add(state.transferId);
        return;
      }
    }
  }

  /**
   * Runs `take` in one flat unit of work, fenced by the lease (the handler runs under runFenced), on
   * the transfer as known; when the unit of work runs again after a lost race, on the stream as
   * stored then, and only if the transfer is still where `step` found it (else the loop above
   * decides again). Returns the transfer's stream after it; logs only once it committed.
   */
  private async inUnitOfWork(step: Step, take: (step: Step) => Promise<Taken>): Promise<Known> {
    const { transfer, metadata } = step;
    let current: Known | undefined = { state: transfer, version: step.version };
    const taken = await this.store.transaction(
      async (): Promise<Taken> => {
        const at = current ?? (await this.load(transfer.transferId)); // read in this unit of work's transaction
        current = undefined;
        if (at.state.status !== transfer.status || !('transferId' in at.state)) return { known: at };
        return take({ transfer: at.state, version: at.version, metadata });
      },
      { flat: true },
    );
    if (taken.log) this.logger.log(`${correlationTag(metadata)} transfer ${transfer.transferId}: ${taken.log}`);
    return taken.known;
  }

  private async load(transferId: string): Promise<Known> {
    const events = await this.store.readStream(transferStreamId(transferId));
    return {
      state: fold(
        transferDecider,
        events.map((event) => event.data as TransferEvent),
      ),
      version: events.at(-1)?.version ?? 0,
    };
  }

  /** The debit of the source and its record (SourceDebited, or TransferFailed when refused), together. */
  private async debit(step: Step): Promise<Taken> {
    const { transfer, metadata } = step;
    const refusal = await this.attempt(
      new DebitForTransfer(transfer.fromAccountId, transfer.transferId, transfer.amount, transfer.currency, metadata),
    );
    if (refusal) {
      // The refusal wrote nothing and aborted nothing: the unit of work goes on and records it.
      return this.record(
        step,
        (state) => recordDebitRefused(state, refusal),
        `debit of ${transfer.fromAccountId} refused (${refusal.code}): failed`,
      );
    }
    return this.record(step, recordDebit, `debited ${transfer.amount} from ${transfer.fromAccountId}`);
  }

  /**
   * After the credit committed: the source settled (its money arrived and can no longer come back)
   * and the completion recorded (TargetCredited + TransferCompleted), together.
   */
  private async complete(step: Step): Promise<Taken> {
    const { transfer } = step;
    await this.settle(step);
    return this.record(step, recordCredit, `credited ${transfer.amount} to ${transfer.toAccountId}: completed`);
  }

  /** The refund of the source and its record (SourceRefunded + TransferFailed), together. */
  private async refund(step: Step): Promise<Taken> {
    const { transfer, metadata } = step;
    // A refund is never refused by the rules (the source cannot be closed while the money is in
    // flight, and kept room for it); anything thrown here is an error the engine retries.
    await this.commands.execute(
      new RefundTransfer(transfer.fromAccountId, transfer.transferId, transfer.amount, transfer.currency, metadata),
    );
    return this.record(step, recordRefund, `refunded ${transfer.amount} to ${transfer.fromAccountId}: failed`);
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

  /**
   * Appends the transfer's record of the step at the exact version it was decided on, in the unit of
   * work in progress. The stream moved on meanwhile (another holder, a replay): the unit of work
   * starts over and decides again on the stream as stored.
   */
  private async record(step: Step, decide: (state: TransferState) => TransferEvent[], log?: string): Promise<Taken> {
    const { transfer, version, metadata } = step;
    const streamId = transferStreamId(transfer.transferId);
    const events = decide(transfer);
    if (events.length === 0) return { known: { state: transfer, version } };
    try {
      const appended = await this.store.append(streamId, events, { expectedVersion: version, metadata });
      // The line every command writes for its append (CommandRunner), for the transfer's own record.
      this.logger.debug(
        `${correlationTag(metadata)} ${streamId}@${appended.version}: appended ${events.map((event) => event.constructor.name).join(', ')} at ${appended.position}`,
      );
      const state = events.reduce<TransferState>((current, event) => transferDecider.evolve(current, event), transfer);
      return { known: { state, version: appended.version }, log };
    } catch (error) {
      if (error instanceof WrongExpectedVersionError) throw new UnitOfWorkConflict(streamId, 'the transfer moved on since it was read');
      throw error;
    }
  }
}
