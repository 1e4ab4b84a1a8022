#!/usr/bin/env node
// `ledger`: the operator command line (the package's `bin`; `npx ledger --help` in an install).
//   ledger migrate                                         apply pending migrations and exit
//   ledger projections status|rebuild <name>|retry <name>|skip <name>
//   ledger token [--scopes a,b] [--sub name] [--ttl 1h]    print a bearer token
// Compiled JavaScript only (dist/src/cli/ledger.js): it runs from a pruned production install.
// Exit status: 0 done, 1 the command failed (one line on stderr, no stack), 2 bad arguments (with usage).
import 'reflect-metadata';
import { CommandFactory } from 'nest-commander';
import { LedgerCliModule } from './ledger-cli.module.js';
import { exitOnParseError } from './ledger-command.js';

function reportFailure(error: unknown): void {
  console.error(`ledger: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}

try {
  await CommandFactory.run(LedgerCliModule, {
    cliName: 'ledger',
    logger: ['error', 'warn'],
    abortOnError: false,
    errorHandler: exitOnParseError,
    serviceErrorHandler: reportFailure,
  });
} catch (error) {
  reportFailure(error);
}
// Every command closes what it opened; exiting here also ends a stray timer of a library.
process.exit(process.exitCode ?? 0);
