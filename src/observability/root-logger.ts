import { type DestinationStream, type Level, type Logger, pino } from 'pino';
import type { AppConfig, LogLevelName } from '../config/app-config.js';
import { currentLogContext } from './log-context.js';
import { prettyDestination } from './pretty-lines.js';
import { REDACTED, REDACTED_PATHS } from './redaction.js';

/** LOG_LEVEL keeps Nest's level names (see app-config.ts); pino calls two of them differently. */
const PINO_LEVELS: Record<LogLevelName, Level> = { error: 'error', warn: 'warn', log: 'info', debug: 'debug', verbose: 'trace' };

export interface RootLoggerOptions {
  /** Nothing is written (tests and scripts that take Nest's lines themselves). */
  readonly silent?: boolean;
  /** Where lines go instead of standard output (in the format LOG_FORMAT says). */
  readonly destination?: { write(text: string): unknown };
}

/**
 * The one pino logger of the process: Nest's own Logger calls (through nestjs-pino), the access
 * line of every request (http-access-log.ts) and everything else write through it. JSON lines carry
 * `level` as a name, `time` as an ISO 8601 instant and `msg`, plus the context of the work in
 * progress (log-context.ts: the correlation id). Secrets are censored by path (redaction.ts).
 */
export function createRootLogger(config: Pick<AppConfig, 'logLevel' | 'logFormat'>, options: RootLoggerOptions = {}): Logger {
  const out = options.destination;
  let destination: DestinationStream;
  if (config.logFormat === 'pretty') destination = prettyDestination(out);
  else if (out) destination = { write: (line: string) => void out.write(line) };
  else destination = pino.destination({ dest: 1, sync: true }); // pino's own writer: no line lost at exit
  return pino(
    {
      level: options.silent ? 'silent' : PINO_LEVELS[config.logLevel],
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...REDACTED_PATHS], censor: REDACTED },
      // A copy: pino merges the call's fields into what mixin returns (they win), and the context
      // object is shared by every line of its work.
      mixin: () => ({ ...currentLogContext() }),
    },
    destination,
  );
}
