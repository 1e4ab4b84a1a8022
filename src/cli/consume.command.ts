import { Command, SubCommand } from 'nest-commander';
import { runBalancesConsumer } from '../consumer/run-balances-consumer.js';
import { LedgerCommand } from './ledger-command.js';

/** `ledger consume balances`: the reference consumer behind the broker, until SIGTERM/SIGINT. */
@SubCommand({
  name: 'balances',
  description: 'keep broker_balances from the JetStream stream (NATS_URL, NATS_STREAM, CONSUMER_DATABASE_URL) until stopped',
})
export class ConsumeBalancesCommand extends LedgerCommand {
  run(): Promise<void> {
    return runBalancesConsumer();
  }
}

@Command({ name: 'consume', description: 'run a consumer of the events the relay publishes', subCommands: [ConsumeBalancesCommand] })
export class ConsumeCommand extends LedgerCommand {
  /** Reached only without a known subcommand (`ledger consume`, `ledger consume bogus`). */
  run(): Promise<void> {
    return this.command.help({ error: true });
  }
}

export const CONSUME_COMMANDS = [ConsumeCommand, ConsumeBalancesCommand] as const;
