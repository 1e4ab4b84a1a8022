import { Command } from '@nestjs/cqrs';
import type { AppendResult, CommandMetadata } from '../../event-sourcing/index.js';

export class WithdrawMoney extends Command<AppendResult> {
  constructor(
    readonly accountId: string,
    readonly amount: number,
    /** From If-Match: the account version the caller saw, or undefined for "whatever is current". */
    readonly expectedVersion?: number,
    /** The caller's description of the movement, kept on the event. */
    readonly reference: string | null = null,
    /** Correlation, causation and actor of the events it appends (absent: each event is its own). */
    readonly metadata?: CommandMetadata,
  ) {
    super();
  }
}
