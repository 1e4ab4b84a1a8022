import type { DestinationStream } from 'pino';

/** Fields every line has, shown in the line's head rather than among its extras. */
const HEAD_FIELDS = new Set(['level', 'time', 'msg', 'context', 'pid', 'hostname', 'err']);

/**
 * LOG_FORMAT=pretty: each JSON line pino writes, turned into one readable line —
 * `12:00:01.234 INFO  [Context] message  key=value …` (an error's stack on the lines below). Not
 * pino-pretty: it is no checked dependency here, runs in a worker thread (a transport) and does far
 * more than a developer's terminal needs; this is the same information, in twenty lines.
 */
export function prettyLine(line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const time = typeof entry.time === 'string' ? entry.time.slice(11, 23) : String(entry.time);
  const level = String(entry.level).toUpperCase().padEnd(5);
  const context = entry.context === undefined ? '' : `[${text(entry.context)}] `;
  const extras = Object.entries(entry)
    .filter(([key]) => !HEAD_FIELDS.has(key))
    .map(([key, value]) => `${key}=${text(value)}`)
    .join(' ');
  const stack = (entry.err as { stack?: unknown } | undefined)?.stack;
  return `${time} ${level} ${context}${text(entry.msg ?? '')}${extras ? `  ${extras}` : ''}${typeof stack === 'string' ? `\n${stack}` : ''}\n`;
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** A destination that writes pretty lines to `out` (standard output by default). */
export function prettyDestination(out: { write(text: string): unknown } = process.stdout): DestinationStream {
  return { write: (line: string) => void out.write(prettyLine(line)) };
}
