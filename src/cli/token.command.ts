import { Command, Option } from 'nest-commander';
import { ALL_SCOPES } from '../auth/scopes.js';
import { issueToken } from '../auth/token-issuer.js';
import { LedgerCommand } from './ledger-command.js';
import { operatorConfig } from './operator-database.js';
import { UsageError } from './usage-error.js';

interface TokenOptions {
  readonly scopes?: string;
  readonly sub?: string;
  readonly ttl?: string;
}

/**
 * A lifetime with its unit. jsonwebtoken reads a bare number in a string as milliseconds ("60" would
 * be a token dead on arrival) and throws a message about its own option name on anything else.
 */
const TTL = /^[1-9]\d*(s|m|h|d|w|y)$/;

/**
 * `ledger token`: prints a bearer token signed with JWT_SECRET (or the development secret outside
 * production). Every scope by default; it always expires (the service refuses a token without exp).
 * Needs no database.
 */
@Command({ name: 'token', description: 'print a bearer token signed with JWT_SECRET (or the development secret)' })
export class TokenCommand extends LedgerCommand {
  run(_arguments: string[], options: TokenOptions): Promise<void> {
    const scopes = (options.scopes ?? ALL_SCOPES.join(','))
      .split(',')
      .map((scope) => scope.trim())
      .filter(Boolean);
    const ttl = options.ttl ?? '1h';
    const subject = options.sub ?? 'developer';
    const unknown = scopes.filter((scope) => !(ALL_SCOPES as readonly string[]).includes(scope));
    if (unknown.length) this.usage(new UsageError(`unknown scope(s) ${unknown.join(', ')}; the scopes are ${ALL_SCOPES.join(', ')}`));
    if (scopes.length === 0) this.usage(new UsageError(`--scopes names no scope; the scopes are ${ALL_SCOPES.join(', ')}`));
    if (!TTL.test(ttl)) this.usage(new UsageError(`--ttl "${ttl}" is not a lifetime such as 90s, 15m, 1h, 30d`));
    if (subject.trim() === '') this.usage(new UsageError('--sub is empty'));
    console.log(issueToken(operatorConfig(), { subject, scopes, expiresIn: ttl }));
    return Promise.resolve();
  }

  @Option({ flags: '--scopes <list>', description: `comma-separated (default: every scope: ${ALL_SCOPES.join(',')})` })
  parseScopes(value: string): string {
    return value;
  }

  @Option({ flags: '--sub <subject>', description: 'the token subject, shown as the actor of its commands (default: developer)' })
  parseSub(value: string): string {
    return value;
  }

  @Option({ flags: '--ttl <lifetime>', description: 'lifetime with a unit: s, m, h, d, w or y (default: 1h)' })
  parseTtl(value: string): string {
    return value;
  }
}
