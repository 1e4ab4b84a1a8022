import { CommandRunner } from 'nest-commander';
import { UsageError } from './usage-error.js';

type CommanderCommand = Parameters<CommandRunner['setCommand']>[0];

/** Exit status of a command line the parser refused, or of a bad value a command refused (sysexits' EX_USAGE is 64; 2 is the shell's). */
export const USAGE_EXIT_CODE = 2;

/**
 * The base of every `ledger` command. nest-commander builds each subcommand as a fresh commander
 * Command that inherits none of the root's settings, so each one gets them here: excess arguments
 * refused (commander 11 accepts them by default: `status foo` would silently ignore `foo`), the
 * command's own help after a parse error, and exit status 2 for every usage error.
 */
export abstract class LedgerCommand extends CommandRunner {
  override setCommand(command: CommanderCommand): this {
    command.allowExcessArguments(false).showHelpAfterError().exitOverride(exitOnParseError);
    return super.setCommand(command);
  }

  /** Reports a bad argument as the parser does (message, then this command's help) and exits 2. */
  protected usage(error: UsageError): never {
    return this.command.error(`error: ${error.message}`, { exitCode: USAGE_EXIT_CODE, code: 'ledger.usage' });
  }
}

/** commander calls this instead of exiting on --help (exit code 0) and on every parse error. */
export function exitOnParseError(error: Error & { exitCode?: number }): never {
  process.exit(error.exitCode === 0 ? 0 : USAGE_EXIT_CODE);
}
