/**
 * Why events are being written: the request or message that started the work (correlation), the
 * request or event that directly caused it (causation) and who asked (actor). Every command carries
 * it as a plain field — the HTTP edge builds it from the request (RequestMetadata), the transfer
 * process from the event it reacts to — and its handler hands it to CommandRunner.run, which passes
 * it to EventStore.append: the store copies it into every event's metadata. Nothing is ambient.
 *
 * Without it (a script, a test calling the bus directly) each event is its own correlation and cause.
 */
export interface CommandMetadata {
  readonly correlationId: string;
  readonly causationId: string;
  readonly actor?: string;
}

/** The log-line prefix of work done for a command: its correlation id, when it has one. */
export function correlationTag(metadata: CommandMetadata | undefined): string {
  return `[correlation ${metadata?.correlationId ?? 'none'}]`;
}
