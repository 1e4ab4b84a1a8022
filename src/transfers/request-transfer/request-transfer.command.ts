import { Command } from '@nestjs/cqrs';
import type { AppendResult } from '../../event-sourcing/index.js';

export class RequestTransfer extends Command<AppendResult> {
  constructor(
    readonly transferId: string,
    readonly fromAccountId: string,
    readonly toAccountId: string,
    readonly amount: number,
    readonly reference: string | null,
  ) {
    super();
  }
}
