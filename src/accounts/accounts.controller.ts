import { randomUUID } from 'node:crypto';
import { CommandEndpoint, QueryEndpoint } from '../auth/scopes.js';
import { Body, Controller, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import {
  ApiBody,
  ApiCreatedResponse,
  ApiExtraModels,
  ApiHeader,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { ApiProblemResponses } from '../shared/http/api-problem-responses.decorator.js';
import { decodeCursor, encodeCursor } from '../shared/http/cursor.js';
import { HistoryPointRequest } from '../shared/http/history-point.request.js';
import { IfMatchVersion, formatEtag } from '../shared/http/etag.js';
import { NoBodyFieldsPipe } from '../shared/http/no-body-fields.pipe.js';
import { PROJECTION_POSITION_DOC, ProjectionRead, ReadsProjection } from '../shared/http/read-consistency.js';
import { uuidParam } from '../shared/http/uuid-param.pipe.js';
import { ProblemDetailsDto } from '../shared/problem-details/problem-details.js';
import { EVENT_PAGE_DEFAULT, EventListRequest, EventListResponse, EventResponse } from '../event-log/index.js';
import { AccountStateResponse } from './account-history/account-state.response.js';
import { MAX_STREAM_VERSION } from './account-history/get-account-history.handler.js';
import { GetAccountHistory } from './account-history/get-account-history.query.js';
import { GetAccountStateAt } from './account-history/get-account-state.query.js';
import { AccountListResponse, AccountResponse } from './account-summary/account.response.js';
import { GetAccount } from './account-summary/get-account.query.js';
import { ListAccounts } from './account-summary/list-accounts.query.js';
import { ListAccountsRequest } from './account-summary/list-accounts.request.js';
import {
  AccountTransactionListResponse,
  AccountTransactionResponse,
} from './account-transactions/account-transaction.response.js';
import { ListAccountTransactions } from './account-transactions/list-account-transactions.query.js';
import { ListAccountTransactionsRequest } from './account-transactions/list-account-transactions.request.js';
import { AccountNotFoundError } from './account.errors.js';
import { AmountRequest } from './amount.request.js';
import { CloseAccount } from './close-account/close-account.command.js';
import { CommandResult } from './command-result.js';
import { DepositMoney } from './deposit-money/deposit-money.command.js';
import { OpenAccount } from './open-account/open-account.command.js';
import { OpenAccountRequest } from './open-account/open-account.request.js';
import { WithdrawMoney } from './withdraw-money/withdraw-money.command.js';

const ETAG_HEADER = { ETag: { description: 'The account version, a strong entity tag such as "3"', schema: { type: 'string' } } };
const IF_MATCH = ApiHeader({
  name: 'If-Match',
  required: false,
  description: 'The ETag of the version you based this command on, e.g. "3". On a mismatch nothing is written and the answer is 412 with the current ETag. Without it, a concurrent change is retried internally (then 409).',
});
const ACCOUNT_ID = ApiParam({ name: 'id', format: 'uuid' });
const BODY_PROBLEMS = {
  413: 'PAYLOAD_TOO_LARGE: the body is larger than BODY_LIMIT_BYTES',
  415: 'UNSUPPORTED_MEDIA_TYPE: the body is not application/json',
  500: 'INTERNAL_ERROR: unexpected; nothing is leaked, the error is logged',
};
const COMMAND_PROBLEMS = {
  ...BODY_PROBLEMS,
  400: 'VALIDATION_FAILED (each invalid field listed), MALFORMED_JSON, BODY_TOO_DEEP (nested more than 32 levels), INVALID_TEXT (an unpaired surrogate), INVALID_ID (id is not a UUID), INVALID_IF_MATCH',
  404: 'ACCOUNT_NOT_FOUND',
  409: 'CONCURRENCY_CONFLICT: the account kept changing concurrently; retry',
  412: 'VERSION_MISMATCH: If-Match is not the current version (the current ETag is in the answer)',
};

/** HTTP ⇄ commands and queries of the accounts feature; nothing else happens here. */
@ApiTags('accounts')
@ApiExtraModels(ProblemDetailsDto)
@Controller('accounts')
export class AccountsController {
  constructor(
    private readonly commands: CommandBus,
    private readonly queries: QueryBus,
  ) {}

  @CommandEndpoint()
  @Post()
  @ApiOperation({ summary: 'Open an account' })
  @ApiCreatedResponse({
    type: CommandResult,
    headers: { Location: { description: '/accounts/{id}', schema: { type: 'string' } }, ...ETAG_HEADER },
  })
  @ApiProblemResponses({ ...BODY_PROBLEMS, 400: 'VALIDATION_FAILED (each invalid field listed), MALFORMED_JSON, BODY_TOO_DEEP, INVALID_TEXT' })
  async open(@Body() body: OpenAccountRequest, @Res({ passthrough: true }) response: Response): Promise<CommandResult> {
    const id = randomUUID();
    const appended = await this.commands.execute(new OpenAccount(id, body.ownerName, body.currency));
    response.location(`/accounts/${id}`).setHeader('ETag', formatEtag(appended.version));
    return CommandResult.of(id, appended);
  }

  @CommandEndpoint()
  @Post(':id/deposits')
  @HttpCode(200)
  @ApiOperation({ summary: 'Deposit money' })
  @ACCOUNT_ID
  @IF_MATCH
  @ApiOkResponse({ type: CommandResult, headers: ETAG_HEADER })
  @ApiProblemResponses({ ...COMMAND_PROBLEMS, 422: 'ACCOUNT_CLOSED, ACCOUNT_BALANCE_LIMIT_EXCEEDED' })
  async deposit(
    @Param('id', uuidParam()) id: string,
    @Body() body: AmountRequest,
    @IfMatchVersion() expectedVersion: number | undefined,
    @Res({ passthrough: true }) response: Response,
  ): Promise<CommandResult> {
    const appended = await this.commands.execute(new DepositMoney(id, body.amount, expectedVersion, body.reference ?? null));
    response.setHeader('ETag', formatEtag(appended.version));
    return CommandResult.of(id, appended);
  }

  @CommandEndpoint()
  @Post(':id/withdrawals')
  @HttpCode(200)
  @ApiOperation({ summary: 'Withdraw money' })
  @ACCOUNT_ID
  @IF_MATCH
  @ApiOkResponse({ type: CommandResult, headers: ETAG_HEADER })
  @ApiProblemResponses({ ...COMMAND_PROBLEMS, 422: 'ACCOUNT_INSUFFICIENT_FUNDS, ACCOUNT_CLOSED' })
  async withdraw(
    @Param('id', uuidParam()) id: string,
    @Body() body: AmountRequest,
    @IfMatchVersion() expectedVersion: number | undefined,
    @Res({ passthrough: true }) response: Response,
  ): Promise<CommandResult> {
    const appended = await this.commands.execute(new WithdrawMoney(id, body.amount, expectedVersion, body.reference ?? null));
    response.setHeader('ETag', formatEtag(appended.version));
    return CommandResult.of(id, appended);
  }

  @CommandEndpoint()
  @Post(':id/close')
  @HttpCode(200)
  @ApiOperation({ summary: 'Close an account (only at a zero balance)', description: 'Takes no body.' })
  @ACCOUNT_ID
  @IF_MATCH
  @ApiBody({ required: false, schema: { type: 'object', additionalProperties: false } })
  @ApiOkResponse({ type: CommandResult, headers: ETAG_HEADER })
  @ApiProblemResponses({ ...COMMAND_PROBLEMS, 422: 'ACCOUNT_BALANCE_NOT_ZERO, ACCOUNT_TRANSFER_IN_FLIGHT (money sent by a transfer may still come back), ACCOUNT_CLOSED' })
  async close(
    @Param('id', uuidParam()) id: string,
    @Body(NoBodyFieldsPipe) _body: undefined,
    @IfMatchVersion() expectedVersion: number | undefined,
    @Res({ passthrough: true }) response: Response,
  ): Promise<CommandResult> {
    const appended = await this.commands.execute(new CloseAccount(id, expectedVersion));
    response.setHeader('ETag', formatEtag(appended.version));
    return CommandResult.of(id, appended);
  }

  @QueryEndpoint()
  @Get(':id')
  @ApiOperation({ summary: 'One account (read model)' })
  @ACCOUNT_ID
  @ReadsProjection('account-summary', 'async')
  @ApiOkResponse({ type: AccountResponse, headers: { ...ETAG_HEADER, ...PROJECTION_POSITION_DOC } })
  @ApiProblemResponses({ 400: 'INVALID_ID, INVALID_MIN_POSITION', 404: 'ACCOUNT_NOT_FOUND', 500: BODY_PROBLEMS[500] })
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
  @ApiProblemResponses({ 400: 'VALIDATION_FAILED, INVALID_CURSOR, INVALID_MIN_POSITION', 500: BODY_PROBLEMS[500] })
  async list(
    @Query() request: ListAccountsRequest,
    @ProjectionRead('account-summary') _position: number,
  ): Promise<AccountListResponse> {
    const after = request.cursor === undefined ? undefined : decodeCursor(request.cursor, isAccountCursor).after;
    const page = await this.queries.execute(
      new ListAccounts({ owner: request.owner, status: request.status }, request.limit ?? 20, after),
    );
    return {
      items: page.items.map((record) => AccountResponse.of(record)),
      nextCursor: page.nextAfter === null ? null : encodeCursor({ after: page.nextAfter }),
    };
  }

  @QueryEndpoint()
  @Get(':id/transactions')
  @ApiOperation({ summary: "The account's money movements (deposits, withdrawals), newest first (keyset pagination)" })
  @ACCOUNT_ID
  @ReadsProjection('account-transactions', 'async')
  @ApiOkResponse({ type: AccountTransactionListResponse, headers: PROJECTION_POSITION_DOC })
  @ApiExtraModels(AccountTransactionResponse)
  @ApiProblemResponses({
    400: 'INVALID_ID, VALIDATION_FAILED, INVALID_CURSOR, INVALID_MIN_POSITION',
    404: 'ACCOUNT_NOT_FOUND',
    500: BODY_PROBLEMS[500],
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

  @QueryEndpoint()
  @Get(':id/state')
  @ApiOperation({
    summary: 'Time travel: the account after a given version, or as it stood at an instant',
    description: 'Folded from the account\'s own events up to that point (the event store, not a read model), starting from the newest snapshot at or before it; the answer is exactly that of a fold from the first event. Give exactly one of atVersion and asOf.',
  })
  @ACCOUNT_ID
  @ApiOkResponse({ type: AccountStateResponse })
  @ApiProblemResponses({
    400: 'INVALID_ID, VALIDATION_FAILED (neither or both of atVersion and asOf, or an invalid one)',
    404: 'ACCOUNT_NOT_FOUND, VERSION_NOT_FOUND (beyond the current version), NOT_YET_EXISTING (asOf before the account was opened)',
    500: BODY_PROBLEMS[500],
  })
  async stateAt(@Param('id', uuidParam()) id: string, @Query() request: HistoryPointRequest): Promise<AccountStateResponse> {
    const point = await this.queries.execute(new GetAccountStateAt(id, HistoryPointRequest.toPoint(request)));
    if (!point) throw new AccountNotFoundError(id);
    return AccountStateResponse.of(point);
  }

  @QueryEndpoint()
  @Get(':id/events')
  @ApiOperation({
    summary: "The account's history: every event of its stream, oldest first, a page at a time (keyset pagination)",
    description: 'Reads the event store itself: always current. Pages hold `limit` events (100 by default, at most 1000); pass `nextCursor` as `cursor` for the next one.',
  })
  @ACCOUNT_ID
  @ApiOkResponse({ type: EventListResponse })
  @ApiExtraModels(EventResponse)
  @ApiProblemResponses({
    400: 'INVALID_ID, VALIDATION_FAILED (limit not an integer from 1 to 1000, or an unknown parameter), INVALID_CURSOR',
    404: 'ACCOUNT_NOT_FOUND',
    500: BODY_PROBLEMS[500],
  })
  async history(@Param('id', uuidParam()) id: string, @Query() request: EventListRequest): Promise<EventListResponse> {
    const afterVersion = request.cursor === undefined ? 0 : decodeCursor(request.cursor, isVersionCursor).afterVersion;
    const page = await this.queries.execute(new GetAccountHistory(id, request.limit ?? EVENT_PAGE_DEFAULT, afterVersion));
    return {
      items: page.items.map((event) => EventResponse.of(event)),
      nextCursor: page.nextAfterVersion === null ? null : encodeCursor({ afterVersion: page.nextAfterVersion }),
    };
  }
}

/** A cursor of GET /accounts/{id}/events: the version of the last event of the previous page. */
function isVersionCursor(value: unknown): value is { afterVersion: number } {
  const afterVersion = (value as { afterVersion?: unknown } | null)?.afterVersion;
  return typeof afterVersion === 'number' && Number.isInteger(afterVersion) && afterVersion > 0 && afterVersion < MAX_STREAM_VERSION;
}

function isPositionCursor(value: unknown): value is { before: number } {
  const before = (value as { before?: unknown } | null)?.before;
  return typeof before === 'number' && Number.isSafeInteger(before) && before > 0;
}

function isAccountCursor(value: unknown): value is { after: number } {
  const after = (value as { after?: unknown } | null)?.after;
  return typeof after === 'number' && Number.isSafeInteger(after) && after > 0;
}
