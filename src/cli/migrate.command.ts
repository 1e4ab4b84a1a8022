import { Command } from 'nest-commander';
import { migrate } from '../database/migrate.js';
import { LedgerCommand } from './ledger-command.js';
import { operatorConfig, operatorDatabase } from './operator-database.js';

/** `ledger migrate`: for deployments that migrate in a job of their own, before the new version starts. */
@Command({ name: 'migrate', description: 'apply pending migrations to DATABASE_URL (as its user, the owner) and exit' })
export class MigrateCommand extends LedgerCommand {
  async run(): Promise<void> {
    const config = operatorConfig();
    const database = await operatorDatabase(config);
    try {
      const applied = await migrate(config, database.url);
      console.log(applied.length ? `Applied: ${applied.map((migration) => migration.name).join(', ')}` : 'No pending migrations');
    } finally {
      await database.stop();
    }
  }
}
