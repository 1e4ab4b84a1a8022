import { Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { CommandBus, EventBus } from '@nestjs/cqrs';
import type { Subscription } from 'rxjs';
import { EventStore } from '../../event-sourcing/index.js';
import { commandOutcomeOf } from './command-outcome.js';
import { LedgerMetrics } from './ledger-metrics.js';

/**
 * Counts commands, appends and committed events from the outside of the objects that do them: the
 * app's one CommandBus and EventStore get their `execute` / `append` wrapped on the instance, and
 * the EventBus (published after COMMIT only, never on rollback) is subscribed to. So the core and
 * the features know nothing of metrics, and the cost per command is two clock reads and a counter.
 * Every command goes through CommandBus.execute (controllers and the transfer process manager) and
 * every append of a command through EventStore.append (CommandRunner).
 */
@Injectable()
export class MetricsInstrumentation implements OnModuleInit, OnModuleDestroy {
  private subscription?: Subscription;

  constructor(
    private readonly metrics: LedgerMetrics,
    private readonly commandBus: CommandBus,
    private readonly eventBus: EventBus,
    private readonly store: EventStore,
  ) {}

  onModuleInit(): void {
    const { commands, appendDuration, eventsAppended } = this.metrics;

    const execute = this.commandBus.execute.bind(this.commandBus);
    this.commandBus.execute = (async (command: object, ...rest: unknown[]) => {
      const name = command.constructor.name;
      try {
        const result = await (execute as (...args: unknown[]) => Promise<unknown>)(command, ...rest);
        commands.inc({ command: name, outcome: 'appended' });
        return result;
      } catch (error) {
        commands.inc({ command: name, outcome: commandOutcomeOf(error) });
        throw error;
      }
    }) as CommandBus['execute'];

    const append = this.store.append.bind(this.store);
    this.store.append = async (...args) => {
      const stop = appendDuration.startTimer();
      try {
        return await append(...args);
      } finally {
        stop();
      }
    };

    this.store.onLaneTurn((waitedMs) => this.metrics.laneWait.observe(waitedMs / 1000));
    this.subscription = this.eventBus.subscribe(() => eventsAppended.inc());
  }

  onModuleDestroy(): void {
    this.subscription?.unsubscribe();
  }
}
