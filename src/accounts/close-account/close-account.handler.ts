import { CommandHandler } from '@nestjs/cqrs';
import { AccountCommandHandler } from '../account-command.handler.js';
import { closeAccount } from '../account.js';
import { CloseAccount } from './close-account.command.js';

@CommandHandler(CloseAccount)
export class CloseAccountHandler extends AccountCommandHandler<CloseAccount> {
  protected readonly decide = closeAccount;
}
