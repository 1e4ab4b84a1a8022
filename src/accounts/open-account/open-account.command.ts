import { Command } from '@nestjs/cqrs';
import type { AppendResult } from '../../event-sourcing/index.js';

export class OpenAccount extends Command<AppendResult> {
  constructor(
    readonly accountId: string,
    readonly ownerName: string,
    readonly currency: string,
  ) {
    super();
  }
}
