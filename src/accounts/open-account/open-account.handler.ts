import { CommandHandler } from '@nestjs/cqrs';
import { AccountCommandHandler } from '../account-command.handler.js';
import { openAccount } from '../account.js';
import { OpenAccount } from './open-account.command.js';

@CommandHandler(OpenAccount)
export class OpenAccountHandler extends AccountCommandHandler<OpenAccount> {
  protected readonly decide = openAccount;
}
