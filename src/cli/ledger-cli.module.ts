import { Module, type OnModuleInit } from '@nestjs/common';
import { CommandRunner, InjectCommander } from 'nest-commander';
import { CONSUME_COMMANDS } from './consume.command.js';
import { MigrateCommand } from './migrate.command.js';
import { PROJECTION_COMMANDS } from './projections.command.js';
import { TokenCommand } from './token.command.js';

/** `ledger bogus` shows the list of commands after the error, like every subcommand (LedgerCommand). */
class RootUsage implements OnModuleInit {
  constructor(@InjectCommander() private readonly root: Parameters<CommandRunner['setCommand']>[0]) {}

  onModuleInit(): void {
    this.root.showHelpAfterError();
  }
}

/**
 * The commands only. Nothing here touches a database: parsing, usage errors and `token` need none;
 * the commands that do open the application (or just a DataSource, for `migrate`; a pool and a broker
 * connection, for `consume balances`) when they run.
 */
@Module({ providers: [RootUsage, MigrateCommand, TokenCommand, ...PROJECTION_COMMANDS, ...CONSUME_COMMANDS] })
export class LedgerCliModule {}
