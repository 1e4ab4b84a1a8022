import { Injectable } from '@nestjs/common';

/**
 * Whether this process has been told to stop (SIGTERM): from then on readiness answers 503, so the
 * load balancer takes the instance out before HTTP starts draining (main.ts waits SHUTDOWN_DELAY_MS).
 */
@Injectable()
export class ShutdownState {
  private since?: Date;

  begin(): void {
    this.since ??= new Date();
  }

  get shuttingDown(): boolean {
    return this.since !== undefined;
  }

  get startedAt(): Date | undefined {
    return this.since;
  }
}
