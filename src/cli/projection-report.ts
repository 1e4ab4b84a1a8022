import type { ProjectionStatusReport } from '../event-sourcing/index.js';

/**
 * One line per projection, as `ledger projections …` prints it. Every subcommand prints through this
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
  return parts.join('  ');
}
