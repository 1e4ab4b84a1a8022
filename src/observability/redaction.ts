/**
 * Paths pino censors in any object it logs, whatever code put them there: headers that carry
 * credentials and fields named like secrets, at the top level and one level down. The access line
 * logs no headers at all (http-access-log.ts); this is the net under it.
 */
export const REDACTED_PATHS: readonly string[] = [
  'authorization',
  'cookie',
  'password',
  'token',
  'secret',
  'databaseUrl',
  '*.authorization',
  '*.cookie',
  '*.password',
  '*.token',
  '*.secret',
  '*.databaseUrl',
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
];

export const REDACTED = '[redacted]';

/** A connection URL as it may be logged: its password replaced (user, host, port and database kept). */
export function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    if (url.password !== '') url.password = '***';
    return url.toString();
  } catch {
    return REDACTED; // not a URL: nothing of it is known to be safe
  }
}
