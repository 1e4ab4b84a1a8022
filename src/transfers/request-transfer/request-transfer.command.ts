import { Command } from '@nestjs/cqrs';
import type { AppendResult, CommandMetadata } from '../../event-sourcing/index.js';

export class RequestTransfer extends Command<AppendResult> {
  constructor(
    readonly transferId: string,
    readonly fromAccountId: string,
    readonly toAccountId: string,
    readonly amount: number,
    readonly reference: string | null,
    /** Correlation, causation and actor of the events it appends (absent: each event is its own). */
    readonly metadata?: CommandMetadata,
  ) {
    super();
  }
}
