import type { ProjectionStatusReport } from '../event-sourcing/index.js';

/**
 * One line per projection and one per segment of it, as `ledger projections …` prints it. Every
 * subcommand prints through this
 * one function, so a new column (segments, say) is added here once.
 */
export function describeProjection(report: ProjectionStatusReport): string {
  const parts = [
    report.name.padEnd(24),
    report.mode.padEnd(7),
    report.status.padEnd(8),
    `checkpoint ${report.checkpoint.position}`,
    `lag ${report.lagEvents} events / ${report.lagMs} ms`,
  ];
  if (report.rebuild) {
    parts.push(`rebuild ${report.rebuild.status}: ${report.rebuild.eventsApplied} applied, ${report.rebuild.eventsRemaining} to go`);
  }
  if (report.lastError) parts.push(`last error: ${report.lastError}`);
  const lines = [parts.join('  ')];
  // Every segment: status, checkpoint, lag, owner (the live lease, if any).
  for (const segment of report.segments) {
    const live = segment.leaseExpiresAt !== null && segment.leaseExpiresAt.getTime() > Date.now();
    lines.push(
      [
        `  segment ${segment.segment}/${report.segments.length}`.padEnd(24),
        segment.status.padEnd(8),
        `checkpoint ${segment.checkpoint.position}`,
        `lag ${segment.lagEvents} events / ${segment.lagMs} ms`,
        `owner ${live ? segment.leaseOwner : '-'}`,
        ...(segment.lastError ? [`last error: ${segment.lastError}`] : []),
      ].join('  '),
    );
  }
  return lines.join('\n');
}
