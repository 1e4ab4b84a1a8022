import { Controller, Get, Param, Query, Res } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiExtraModels, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { QueryEndpoint } from '../../auth/scopes.js';
import { ApiProblemResponses } from '../../shared/http/api-problem-responses.decorator.js';
import { decodeCursor, encodeCursor } from '../../shared/http/cursor.js';
import { formatEtag } from '../../shared/http/etag.js';
import { PROJECTION_POSITION_DOC, ProjectionRead, ReadsProjection } from '../../shared/http/read-consistency.js';
import { uuidParam } from '../../shared/http/uuid-param.pipe.js';
import { ProblemDetailsDto } from '../../shared/problem-details/problem-details.js';
import { AccountListResponse, AccountResponse } from '../account-summary/account.response.js';
import { GetAccount } from '../account-summary/get-account.query.js';
import { ListAccounts } from '../account-summary/list-accounts.query.js';
import { ListAccountsRequest } from '../account-summary/list-accounts.request.js';
import { AccountTransactionListResponse, AccountTransactionResponse } from '../account-transactions/account-transaction.response.js';
import { ListAccountTransactions } from '../account-transactions/list-account-transactions.query.js';
import { ListAccountTransactionsRequest } from '../account-transactions/list-account-transactions.request.js';
import { AccountNotFoundError } from '../account.errors.js';
import { ACCOUNT_ID, ETAG_HEADER, INTERNAL_ERROR } from './account-api.docs.js';
import { isAccountCursor, isPositionCursor } from './account-cursors.js';

/**
 * HTTP → the account read models (account-summary, account-transactions): eventually consistent,
 * so each answer says which log position it reflects and can be asked to wait for one (minPosition).
 */
@ApiTags('accounts')
@ApiExtraModels(ProblemDetailsDto)
@Controller('accounts')
export class AccountQueriesController {
  constructor(private readonly queries: QueryBus) {}

  @QueryEndpoint()
  @Get(':id')
  @ApiOperation({ summary: 'One account (read model)' })
  @ACCOUNT_ID
  @ReadsProjection('account-summary', 'async')
  @ApiOkResponse({ type: AccountResponse, headers: { ...ETAG_HEADER, ...PROJECTION_POSITION_DOC } })
  @ApiProblemResponses({ 400: 'INVALID_ID, INVALID_MIN_POSITION', 404: 'ACCOUNT_NOT_FOUND', 500: INTERNAL_ERROR })
  async get(
    @Param('id', uuidParam()) id: string,
    @Res({ passthrough: true }) response: Response,
    @ProjectionRead('account-summary') _position: number,
  ): Promise<AccountResponse> {
    const account = await this.queries.execute(new GetAccount(id));
    if (!account) throw new AccountNotFoundError(id);
    response.setHeader('ETag', formatEtag(account.version));
    return AccountResponse.of(account);
  }

  @QueryEndpoint()
  @Get()
  @ApiOperation({ summary: 'List accounts, newest first, filtered by owner and status (keyset pagination)' })
  @ReadsProjection('account-summary', 'async')
  @ApiOkResponse({ type: AccountListResponse, headers: PROJECTION_POSITION_DOC })
  @ApiProblemResponses({ 400: 'VALIDATION_FAILED, INVALID_CURSOR, INVALID_MIN_POSITION', 500: INTERNAL_ERROR })
  async list(@Query() request: ListAccountsRequest, @ProjectionRead('account-summary') _position: number): Promise<AccountListResponse> {
    const after = request.cursor === undefined ? undefined : decodeCursor(request.cursor, isAccountCursor).after;
    const page = await this.queries.execute(new ListAccounts({ owner: request.owner, status: request.status }, request.limit ?? 20, after));
    return {
      items: page.items.map((record) => AccountResponse.of(record)),
      nextCursor: page.nextAfter === null ? null : encodeCursor({ after: page.nextAfter }),
    };
  }

  @QueryEndpoint()
  @Get(':id/transactions')
  @ApiOperation({
    summary: "The account's money movements (deposits, withdrawals and transfer legs: out, in, refund), newest first (keyset pagination)",
  })
  @ACCOUNT_ID
  @ReadsProjection('account-transactions', 'async')
  @ApiOkResponse({ type: AccountTransactionListResponse, headers: PROJECTION_POSITION_DOC })
  @ApiExtraModels(AccountTransactionResponse)
  @ApiProblemResponses({
    400: 'INVALID_ID, VALIDATION_FAILED, INVALID_CURSOR, INVALID_MIN_POSITION',
    404: 'ACCOUNT_NOT_FOUND',
    500: INTERNAL_ERROR,
  })
  async transactions(
    @Param('id', uuidParam()) id: string,
    @Query() request: ListAccountTransactionsRequest,
    @ProjectionRead('account-transactions') _position: number,
  ): Promise<AccountTransactionListResponse> {
    const before = request.cursor === undefined ? undefined : decodeCursor(request.cursor, isPositionCursor).before;
    const page = await this.queries.execute(new ListAccountTransactions(id, request.limit ?? 20, before));
    return {
      items: page.items.map((record) => AccountTransactionResponse.of(record)),
      nextCursor: page.nextBefore === null ? null : encodeCursor({ before: page.nextBefore }),
    };
  }
}
