import { Command } from '@nestjs/cqrs';
import type { AppendResult, CommandMetadata } from '../../event-sourcing/index.js';

export class CloseAccount extends Command<AppendResult> {
  constructor(
    readonly accountId: string,
    /** From If-Match: the account version the caller saw, or undefined for "whatever is current". */
    readonly expectedVersion?: number,
    /** Correlation, causation and actor of the events it appends (absent: each event is its own). */
    readonly metadata?: CommandMetadata,
  ) {
    super();
  }
}
