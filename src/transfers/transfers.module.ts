import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AccountsModule } from '../accounts/index.js';
import { EventSourcingModule } from '../event-sourcing/index.js';
import { RequestTransferHandler } from './request-transfer/request-transfer.handler.js';
import { TransferBacklog } from './request-transfer/transfer-backlog.js';
import { GetTransferEventsHandler } from './transfer-history/get-transfer-events.handler.js';
import { GetTransferStateAtHandler } from './transfer-history/get-transfer-state.handler.js';
import { TransferProcessManager } from './transfer-process/transfer-process.manager.js';
import { TransferSummaryProjection } from './transfer-summary/transfer-summary.projection.js';
import { TransferSummaryRecord } from './transfer-summary/transfer-summary.record.js';
import { GetTransferHandler, ListAccountTransfersHandler } from './transfer-summary/transfer.query-handlers.js';
import { TRANSFER_EVENTS } from './transfer.events.js';
import { TransfersController } from './transfers.controller.js';
import { queryRepository } from '../database/query-repository.js';

/** Transfers between accounts: a transfer stream per transfer, moved along by a process manager. */
@Module({
  imports: [
    AccountsModule,
    TypeOrmModule.forFeature([TransferSummaryRecord]),
    EventSourcingModule.forFeature({
      events: TRANSFER_EVENTS,
      projections: [TransferSummaryProjection],
      processManagers: [TransferProcessManager],
    }),
  ],
  controllers: [TransfersController],
  providers: [
    queryRepository(TransferSummaryRecord),
    RequestTransferHandler,
    TransferBacklog,
    GetTransferHandler,
    ListAccountTransfersHandler,
    GetTransferEventsHandler,
    GetTransferStateAtHandler,
  ],
})
export class TransfersModule {}
