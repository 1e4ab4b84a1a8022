import { Module } from '@nestjs/common';
import { ProjectionsAdminController } from './projections-admin.controller.js';

/** Operator endpoints. Uses only the event-sourcing core, so it knows no feature. */
@Module({ controllers: [ProjectionsAdminController] })
export class AdminModule {}
