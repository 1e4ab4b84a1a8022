import { Injectable } from '@nestjs/common';
import { ProjectionNotFailedError, ProjectionNotRebuildableError, UnknownProjectionError } from './errors.js';
import { ProjectionCheckpoints } from './projection-checkpoints.js';
import { ProjectionEngine } from './projection-engine.js';
import { ProjectionStatus, type ProjectionStatusReport } from './projection-status.js';
import { ProjectionRegistry } from './projection.registry.js';
import { isProcessManager } from './subscriber.js';

/** Operator actions on projections, shared by the admin HTTP API and the CLI. */
@Injectable()
export class ProjectionAdmin {
  constructor(
    private readonly registry: ProjectionRegistry,
    private readonly checkpoints: ProjectionCheckpoints,
    private readonly statuses: ProjectionStatus,
    private readonly engine: ProjectionEngine,
  ) {}

  status(): Promise<ProjectionStatusReport[]> {
    return this.statuses.all();
  }

  statusOf(name: string): Promise<ProjectionStatusReport> {
    return this.statuses.one(name);
  }

  /** Asks the projection's runner (in whichever process holds it) to rebuild in the background. */
  async rebuild(name: string): Promise<ProjectionStatusReport> {
    this.assertKnown(name);
    // A process manager keeps no table: its effects are other streams' events, never replayed.
    if (isProcessManager(this.registry.get(name)!)) throw new ProjectionNotRebuildableError(name);
    await this.checkpoints.requestRebuild(name);
    await this.engine.wake();
    return this.statuses.one(name);
  }

  async retry(name: string): Promise<ProjectionStatusReport> {
    this.assertKnown(name);
    if (!(await this.checkpoints.retry(name))) throw new ProjectionNotFailedError(name);
    await this.engine.wake();
    return this.statuses.one(name);
  }

  async skip(name: string): Promise<{ skippedPosition: number; report: ProjectionStatusReport }> {
    this.assertKnown(name);
    const skippedPosition = await this.checkpoints.skip(name);
    if (skippedPosition === null) throw new ProjectionNotFailedError(name);
    await this.engine.wake();
    return { skippedPosition, report: await this.statuses.one(name) };
  }

  private assertKnown(name: string): void {
    if (!this.registry.get(name)) throw new UnknownProjectionError(name);
  }
}
