import { setTimeout as sleep } from 'node:timers/promises';
import type { INestApplicationContext } from '@nestjs/common';
import { Command, SubCommand } from 'nest-commander';
import { ProjectionAdmin, type ProjectionStatusReport } from '../event-sourcing/index.js';
import { withApplication } from './application-context.js';
import { LedgerCommand } from './ledger-command.js';
import { operatorConfig } from './operator-database.js';
import { describeProjection } from './projection-report.js';

/** Runs `work` with the ProjectionAdmin of an application whose runners are off. */
function withAdmin<T>(work: (admin: ProjectionAdmin) => Promise<T>): Promise<T> {
  return withApplication(operatorConfig(), { runProjections: false }, (app: INestApplicationContext) => work(app.get(ProjectionAdmin)));
}

@SubCommand({ name: 'status', description: 'every projection: mode, status, checkpoint, lag, last error, rebuild progress' })
export class ProjectionsStatusCommand extends LedgerCommand {
  async run(): Promise<void> {
    const reports = await withAdmin((admin) => admin.status());
    for (const report of reports) console.log(describeProjection(report));
  }
}

@SubCommand({ name: 'retry', arguments: '<name>', description: 'retry the event a failed projection stopped at' })
export class ProjectionsRetryCommand extends LedgerCommand {
  async run([name]: string[]): Promise<void> {
    console.log(describeProjection(await withAdmin((admin) => admin.retry(name!))));
  }
}

@SubCommand({
  name: 'skip',
  arguments: '<name>',
  description: 'skip the event a failed projection stopped at (recorded in projection_skips)',
})
export class ProjectionsSkipCommand extends LedgerCommand {
  async run([name]: string[]): Promise<void> {
    const { skippedPosition, report } = await withAdmin((admin) => admin.skip(name!));
    console.log(`skipped the event at position ${skippedPosition}`);
    console.log(describeProjection(report));
  }
}

/** Whether a running process (the service) holds the projection's lease and will carry out a rebuild. */
function heldByLiveProcess(report: ProjectionStatusReport): boolean {
  return report.leaseOwner !== null && report.leaseExpiresAt !== null && report.leaseExpiresAt.getTime() > Date.now();
}

@SubCommand({
  name: 'rebuild',
  arguments: '<name>',
  description:
    'rebuild from the whole log without downtime, printing progress until swapped in; the running service does it, or this command when none holds the projection',
})
export class ProjectionsRebuildCommand extends LedgerCommand {
  async run([name]: string[]): Promise<void> {
    const config = operatorConfig();
    // Known name, and someone to carry the rebuild out? Asked with the runners off.
    const held = heldByLiveProcess(await withAdmin((admin) => admin.statusOf(name!)));
    if (!held) console.error(`no running service holds ${name}: this command rebuilds it itself`);
    // A rebuild is carried out by the lease holder. With no service running, this process runs the
    // projections itself until the rebuild is swapped in (what `npm run projections` always did).
    const done = await withApplication(config, { runProjections: !held }, (app) => follow(app.get(ProjectionAdmin), name!));
    if (!done) process.exitCode = 1;
  }
}

/** Requests the rebuild and prints progress every half second until it is swapped in or stops. */
async function follow(admin: ProjectionAdmin, name: string): Promise<boolean> {
  let report = await admin.rebuild(name);
  const requestedAt = report.rebuild?.requestedAt ?? new Date();
  for (;;) {
    console.log(describeProjection(report));
    if (!report.rebuild) break;
    await sleep(500);
    report = await admin.statusOf(name);
  }
  const done = report.lastRebuildCompletedAt !== null && report.lastRebuildCompletedAt >= requestedAt;
  console.log(
    done ? `rebuilt and swapped in at ${report.lastRebuildCompletedAt!.toISOString()}` : `rebuild did not complete: ${report.lastError}`,
  );
  return done;
}

@Command({
  name: 'projections',
  description: 'inspect and operate projections',
  subCommands: [ProjectionsStatusCommand, ProjectionsRebuildCommand, ProjectionsRetryCommand, ProjectionsSkipCommand],
})
export class ProjectionsCommand extends LedgerCommand {
  override setCommand(command: Parameters<LedgerCommand['setCommand']>[0]): this {
    super.setCommand(command);
    command.allowExcessArguments(true); // an unknown subcommand arrives in run(), named as such
    return this;
  }

  /** Reached only without a known subcommand (`ledger projections`, `ledger projections bogus`). */
  run([unknown]: string[]): Promise<void> {
    if (unknown !== undefined) return this.command.error(`error: unknown command '${unknown}'`, { exitCode: 2, code: 'ledger.usage' });
    return this.command.help({ error: true });
  }
}

export const PROJECTION_COMMANDS = [
  ProjectionsCommand,
  ProjectionsStatusCommand,
  ProjectionsRebuildCommand,
  ProjectionsRetryCommand,
  ProjectionsSkipCommand,
] as const;
