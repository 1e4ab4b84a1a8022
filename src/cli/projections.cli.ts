// `npm run projections -- <command>`: operate projections from a shell.
//   status                 every projection: mode, status, checkpoint, lag, last error, rebuild progress,
//                          and each of its segments: status, checkpoint, lag, owner
//   rebuild <name>         rebuild from the whole log without downtime; prints progress until swapped in
//   retry <name>           retry the event a failed projection stopped at
//   skip <name>            skip that event (recorded in projection_skips)
// It boots the application without HTTP. A rebuild is carried out by whichever process holds the
// projection's lease: the running service if there is one, otherwise this command itself.
import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import { NestFactory } from '@nestjs/core';
import { AppModule } from '../app.module.js';
import { loadConfig, loadDotEnv } from '../config/app-config.js';
import { openDatabase } from '../database/database.js';
import { ProjectionAdmin, type ProjectionStatusReport } from '../event-sourcing/index.js';

const USAGE = 'usage: npm run projections -- status | rebuild <name> | retry <name> | skip <name>';

function describe(report: ProjectionStatusReport): string {
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
  // Every segment: owner (the live lease, if any), checkpoint, lag, status.
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

async function main(): Promise<number> {
  const [command, name] = process.argv.slice(2);
  if (!command || (command !== 'status' && !name)) {
    console.error(USAGE);
    return 2;
  }
  loadDotEnv();
  const loaded = loadConfig();
  // Only a rebuild may need this process to run projections (when no service does); the other
  // commands must not join as an instance, which would make the running ones give segments up.
  // Nor may it change (or refuse) the stored segment layout: it runs the stored one.
  const config = {
    ...loaded,
    projections: { ...loaded.projections, enabled: command === 'rebuild' && loaded.projections.enabled, changeLayout: false },
  };
  const database = await openDatabase(config, () => undefined, { attachToRunning: true });
  const app = await NestFactory.createApplicationContext(AppModule.forRoot(config, database.url), { logger: ['error', 'warn'] });
  try {
    const admin = app.get(ProjectionAdmin);
    switch (command) {
      case 'status':
        for (const report of await admin.status()) console.log(describe(report));
        return 0;
      case 'retry':
        console.log(describe(await admin.retry(name)));
        return 0;
      case 'skip': {
        const { skippedPosition, report } = await admin.skip(name);
        console.log(`skipped the event at position ${skippedPosition}`);
        console.log(describe(report));
        return 0;
      }
      case 'rebuild': {
        let report = await admin.rebuild(name);
        const requestedAt = report.rebuild?.requestedAt ?? new Date();
        for (;;) {
          console.log(describe(report));
          if (!report.rebuild) break;
          await sleep(500);
          report = await admin.statusOf(name);
        }
        const done = report.lastRebuildCompletedAt !== null && report.lastRebuildCompletedAt >= requestedAt;
        console.log(
          done
            ? `rebuilt and swapped in at ${report.lastRebuildCompletedAt!.toISOString()}`
            : `rebuild did not complete: ${report.lastError}`,
        );
        return done ? 0 : 1;
      }
      default:
        console.error(USAGE);
        return 2;
    }
  } finally {
    await app.close();
    await database.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
