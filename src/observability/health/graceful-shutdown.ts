import { setTimeout as sleep } from 'node:timers/promises';
import type { INestApplication, LoggerService } from '@nestjs/common';
import type { AppConfig } from '../../config/app-config.js';
import { ShutdownState } from './shutdown-state.js';

/**
 * On SIGTERM (or SIGINT), in this order:
 * 1. readiness answers 503 at once (ShutdownState), while everything else is still served;
 * 2. SHUTDOWN_DELAY_MS later (the time the load balancer or Kubernetes endpoints need to see the
 *    503 and stop sending requests), `app.close()`: Nest's hooks stop the live feeds and the
 *    projection runners, which release their leases (beforeApplicationShutdown), then the HTTP
 *    server closes and waits for the requests in flight, then the pools close (onApplicationShutdown);
 * 3. `afterClose` (the embedded database, if any), and exit 0.
 * If all that is not done SHUTDOWN_TIMEOUT_MS after the signal (a request or a hook that hangs), the
 * process exits with code 1, so that the orchestrator sees a failed stop rather than waiting for ever.
 * Nest's enableShutdownHooks is not used: it would close the app at once, without the delay.
 */
export function handleShutdownSignals(
  app: INestApplication,
  config: AppConfig,
  logger: LoggerService,
  afterClose: () => Promise<void>,
): void {
  let stopping = false;
  const stop = async (signal: NodeJS.Signals): Promise<void> => {
    if (stopping) return;
    stopping = true;
    app.get(ShutdownState).begin();
    const { delayMs, timeoutMs } = config.shutdown;
    logger.log(`${signal} received: readiness now 503; draining in ${delayMs} ms, at most ${timeoutMs} ms in all`);
    setTimeout(() => {
      logger.error(`Shutdown still running ${timeoutMs} ms after ${signal} (SHUTDOWN_TIMEOUT_MS): exiting with code 1`);
      process.exit(1);
    }, timeoutMs).unref();
    try {
      await sleep(delayMs);
      await app.close();
      await afterClose();
    } catch (error) {
      logger.error(`Shutdown failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      process.exit(1);
    }
    logger.log('Stopped');
    process.exit(0);
  };
  // `on`, not `once`: a repeated signal during the drain (a supervisor that signals twice, Ctrl-C
  // twice) is ignored by `stop`; with `once` it met no handler and killed the process mid-drain.
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}
