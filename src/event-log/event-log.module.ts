import { Module } from '@nestjs/common';
import { EventLogController } from './event-log.controller.js';
import { LiveFeed } from './live-feed.js';

/** The global event log over HTTP. Uses only the event-sourcing core, so it knows no feature. */
@Module({ controllers: [EventLogController], providers: [LiveFeed] })
export class EventLogModule {}
