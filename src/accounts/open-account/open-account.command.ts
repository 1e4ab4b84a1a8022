import { Command } from '@nestjs/cqrs';
import type { AppendResult, CommandMetadata } from '../../event-sourcing/index.js';

export class OpenAccount extends Command<AppendResult> {
  constructor(
    readonly accountId: string,
    readonly ownerName: string,
    readonly currency: string,
    /** Correlation, causation and actor of the events it appends (absent: each event is its own). */
    readonly metadata?: CommandMetadata,
  ) {
    super();
  }
}
