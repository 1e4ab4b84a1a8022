import type { Logger } from '@nestjs/common';
import type { LeaseHolding } from './lease-fence.js';
import type { ProjectionCheckpoints } from './projection-checkpoints.js';

/**
 * This process's holding of one projection's lease, kept alive by a timer: renewed every third of
 * its time for as long as the process is healthy, however long a batch or a reaction takes (a
 * reaction slower than the lease must not lose it half-way). A renewal that finds the holding over
 * drops it at once; a process paused past its lease cannot know that, which is why its writes are
 * fenced by the token in the database (ledger_fence, lockIfLeader), not by this object's view.
 */
export class ProjectionLease {
  private holding?: LeaseHolding;
  private timer?: NodeJS.Timeout;
  private renewing = false;

  constructor(
    private readonly checkpoints: ProjectionCheckpoints,
    private readonly name: string,
    private readonly owner: string,
    private readonly ttlMs: number,
    private readonly logger: Logger,
  ) {}

  /** The current holding, as far as this process knows; undefined when it does not hold the lease. */
  get current(): LeaseHolding | undefined {
    return this.holding;
  }

  get held(): boolean {
    return this.holding !== undefined;
  }

  /** Holds the lease: true when already held, or when it could be acquired now (a new token). */
  async hold(): Promise<boolean> {
    if (this.holding) return true;
    const token = await this.checkpoints.acquireLease(this.name, this.owner, this.ttlMs);
    if (token === null) return false;
    this.holding = { name: this.name, owner: this.owner, token };
    this.timer ??= setInterval(() => void this.renew(), this.ttlMs / 3);
    this.timer.unref(); // never what keeps a process alive
    return true;
  }

  /** Forgets the holding (the database refused it, or a renewal found it over). */
  lost(): void {
    this.holding = undefined;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Gives the lease up, so another process takes over at once instead of after it expires. */
  async release(): Promise<void> {
    const wasHeld = this.held;
    this.lost();
    if (wasHeld) await this.checkpoints.releaseLease(this.name, this.owner);
  }

  private async renew(): Promise<void> {
    const holding = this.holding;
    if (!holding || this.renewing) return;
    this.renewing = true;
    try {
      const renewed = await this.checkpoints.renewLease(holding.name, holding.owner, holding.token, this.ttlMs);
      if (!renewed && this.holding === holding) this.lost();
    } catch (error) {
      // A failed renewal is retried at the next tick; if the lease runs out meanwhile, the fence refuses.
      this.logger.warn(`Projection ${this.name}: lease renewal failed: ${(error as Error).message}`);
    } finally {
      this.renewing = false;
    }
  }
}
