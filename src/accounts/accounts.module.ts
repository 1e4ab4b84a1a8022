import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { EventSourcingModule } from '../event-sourcing/index.js';
import { GetAccountHistoryHandler } from './account-history/get-account-history.handler.js';
import { GetAccountStateAtHandler } from './account-history/get-account-state.handler.js';
import { AccountSummaryProjection } from './account-summary/account-summary.projection.js';
import { AccountSummaryRecord } from './account-summary/account-summary.record.js';
import { AccountTransactionRecord } from './account-transactions/account-transaction.record.js';
import { AccountTransactionsProjection } from './account-transactions/account-transactions.projection.js';
import { ListAccountTransactionsHandler } from './account-transactions/list-account-transactions.handler.js';
import { GetAccountHandler } from './account-summary/get-account.handler.js';
import { ListAccountsHandler } from './account-summary/list-accounts.handler.js';
import { ACCOUNT_EVENTS } from './account.events.js';
import { ACCOUNT_UPCASTERS } from './account.upcasters.js';
import { CloseAccountHandler } from './close-account/close-account.handler.js';
import { DepositMoneyHandler } from './deposit-money/deposit-money.handler.js';
import { OpenAccountHandler } from './open-account/open-account.handler.js';
import { AccountLookup } from './account-lookup.js';
import {
  CreditForTransferHandler,
  DebitForTransferHandler,
  RefundTransferHandler,
  SettleTransferHandler,
} from './transfer-legs/transfer-leg.handlers.js';
import { WithdrawMoneyHandler } from './withdraw-money/withdraw-money.handler.js';
import { queryRepository } from '../database/query-repository.js';
import { AccountCommandsController } from './http/account-commands.controller.js';
import { AccountHistoryController } from './http/account-history.controller.js';
import { AccountQueriesController } from './http/account-queries.controller.js';

@Module({
  imports: [
    TypeOrmModule.forFeature([AccountSummaryRecord, AccountTransactionRecord]),
    EventSourcingModule.forFeature({
      events: ACCOUNT_EVENTS,
      upcasters: ACCOUNT_UPCASTERS,
      projections: [AccountSummaryProjection, AccountTransactionsProjection],
    }),
  ],
  controllers: [AccountCommandsController, AccountQueriesController, AccountHistoryController],
  providers: [
    queryRepository(AccountSummaryRecord),
    queryRepository(AccountTransactionRecord),
    OpenAccountHandler,
    DepositMoneyHandler,
    WithdrawMoneyHandler,
    CloseAccountHandler,
    GetAccountHandler,
    ListAccountsHandler,
    GetAccountHistoryHandler,
    GetAccountStateAtHandler,
    ListAccountTransactionsHandler,
    DebitForTransferHandler,
    CreditForTransferHandler,
    RefundTransferHandler,
    SettleTransferHandler,
    AccountLookup,
  ],
  exports: [AccountLookup],
})
export class AccountsModule {}
