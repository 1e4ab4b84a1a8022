import { randomUUID } from 'node:crypto';
import { CommandEndpoint, QueryEndpoint } from '../auth/scopes.js';
import { Body, Controller, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { ApiAcceptedResponse, ApiExtraModels, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { EVENT_PAGE_DEFAULT, EventListRequest, EventListResponse, EventResponse } from '../event-log/index.js';
import type { CommandMetadata } from '../event-sourcing/index.js';
import { ApiProblemResponses } from '../shared/http/api-problem-responses.decorator.js';
import { decodeCursor, encodeCursor } from '../shared/http/cursor.js';
import { RequestMetadata } from '../shared/http/request-metadata.decorator.js';
import { PROJECTION_POSITION_DOC, ProjectionRead, ReadsProjection } from '../shared/http/read-consistency.js';
import { uuidParam } from '../shared/http/uuid-param.pipe.js';
import { ProblemDetailsDto } from '../shared/problem-details/problem-details.js';
import { ProblemException } from '../shared/problem-details/problem.exception.js';
import { HistoryPointRequest } from '../shared/http/history-point.request.js';
import { GetTransferEvents } from './transfer-history/get-transfer-events.query.js';
import { GetTransferStateAt } from './transfer-history/get-transfer-state.query.js';
import { TransferStateResponse } from './transfer-history/transfer-state.response.js';
import { ListTransfersRequest } from './transfer-summary/list-transfers.request.js';
import { RequestTransfer } from './request-transfer/request-transfer.command.js';
import { RequestTransferRequest } from './request-transfer/request-transfer.request.js';
import { BACKLOG_RETRY_AFTER_MAX_SECONDS, BACKLOG_RETRY_AFTER_MIN_SECONDS, TransferBacklog } from './request-transfer/transfer-backlog.js';
import { GetTransfer, ListAccountTransfers } from './transfer-summary/transfer.queries.js';
import { TransferAcceptedResponse, TransferListResponse, TransferResponse } from './transfer-summary/transfer.response.js';

const ID = ApiParam({ name: 'id', format: 'uuid' });
const INTERNAL = { 500: 'INTERNAL_ERROR: unexpected; nothing is leaked, the error is logged' };

function transferNotFound(id: string): ProblemException {
  return new ProblemException(404, 'TRANSFER_NOT_FOUND', 'Transfer not found', `Transfer ${id} does not exist`, { transferId: id });
}

/** HTTP ⇄ commands and queries of the transfers feature. */
@ApiTags('transfers')
@ApiExtraModels(ProblemDetailsDto, EventResponse)
@Controller()
export class TransfersController {
  constructor(
    private readonly commands: CommandBus,
    private readonly queries: QueryBus,
    private readonly backlog: TransferBacklog,
  ) {}

  @CommandEndpoint()
  @Post('transfers')
  @HttpCode(202)
  @ApiOperation({
    summary: 'Transfer money between two accounts (asynchronous)',
    description:
      'Accepted at once; the transfer process then withdraws from the source and deposits to the target, exactly once, and completes — or fails with a code (insufficient funds, a closed account, a currency mismatch), refunding the source if the deposit was refused. Both accounts must exist when the transfer is asked for: an unknown account is a 404 here, not a failed transfer. Follow the status at the Location (pass `position` as minPosition to see the transfer at once). Backpressure: while more than TRANSFER_MAX_BACKLOG transfers are pending (the transfer process is that far behind; an approximate figure, refreshed every TRANSFER_BACKLOG_REFRESH_MS), the request is refused with 503 TRANSFER_BACKLOG_FULL and Retry-After, and nothing is written.',
  })
  @ApiAcceptedResponse({
    type: TransferAcceptedResponse,
    headers: { Location: { description: '/transfers/{id}', schema: { type: 'string' } } },
  })
  @ApiProblemResponses({
    400: 'VALIDATION_FAILED (each invalid field, including toAccountId equal to fromAccountId), MALFORMED_JSON, BODY_TOO_DEEP, INVALID_TEXT',
    404: 'ACCOUNT_NOT_FOUND: the source or the target account does not exist',
    413: 'PAYLOAD_TOO_LARGE',
    415: 'UNSUPPORTED_MEDIA_TYPE',
    ...INTERNAL,
    503: `TRANSFER_BACKLOG_FULL: more than TRANSFER_MAX_BACKLOG transfers are pending; nothing was written. Retry-After: the seconds the recent settle rate needs to bring the backlog under the bound (${BACKLOG_RETRY_AFTER_MIN_SECONDS} to ${BACKLOG_RETRY_AFTER_MAX_SECONDS}; the longest when nothing settled recently)`,
  })
  async request(
    @Body() body: RequestTransferRequest,
    @RequestMetadata() metadata: CommandMetadata,
    @Res({ passthrough: true }) response: Response,
  ): Promise<TransferAcceptedResponse> {
    await this.backlog.admit(); // before anything is written: a refused request leaves no trace
    const id = randomUUID();
    const appended = await this.commands.execute(
      new RequestTransfer(id, body.fromAccountId, body.toAccountId, body.amount, body.reference ?? null, metadata),
    );
    response.location(`/transfers/${id}`);
    return { id, status: 'pending', position: appended.position };
  }

  @QueryEndpoint()
  @Get('transfers/:id')
  @ApiOperation({ summary: 'One transfer: status (pending, completed, failed), failure code, amounts, accounts, timestamps' })
  @ID
  @ReadsProjection('transfers', 'async')
  @ApiOkResponse({ type: TransferResponse, headers: PROJECTION_POSITION_DOC })
  @ApiProblemResponses({ 400: 'INVALID_ID, INVALID_MIN_POSITION', 404: 'TRANSFER_NOT_FOUND', ...INTERNAL })
  async get(@Param('id', uuidParam()) id: string, @ProjectionRead('transfers') _position: number): Promise<TransferResponse> {
    const transfer = await this.queries.execute(new GetTransfer(id));
    if (!transfer) throw transferNotFound(id);
    return TransferResponse.of(transfer);
  }

  @QueryEndpoint()
  @Get('transfers/:id/state')
  @ApiOperation({
    summary: 'Time travel: the transfer after a given version, or as it stood at an instant',
    description: "Folded from the transfer's own stream up to that point. Give exactly one of atVersion and asOf.",
  })
  @ID
  @ApiOkResponse({ type: TransferStateResponse })
  @ApiProblemResponses({
    400: 'INVALID_ID, VALIDATION_FAILED (neither or both of atVersion and asOf, or an invalid one)',
    404: 'TRANSFER_NOT_FOUND, VERSION_NOT_FOUND, NOT_YET_EXISTING',
    ...INTERNAL,
  })
  async stateAt(@Param('id', uuidParam()) id: string, @Query() request: HistoryPointRequest): Promise<TransferStateResponse> {
    const point = await this.queries.execute(new GetTransferStateAt(id, HistoryPointRequest.toPoint(request)));
    if (!point) throw transferNotFound(id);
    return TransferStateResponse.of(point);
  }

  @QueryEndpoint()
  @Get('transfers/:id/events')
  @ApiOperation({
    summary:
      "The transfer's whole chain: the events of its correlation id that are its own or its accounts' legs (debit, credit, settlement, refund), in log order, a page at a time (keyset pagination)",
    description:
      'The chain mixes streams: each event carries its `streamId`. Pages hold `limit` events (100 by default, at most 1000); pass `nextCursor` as `cursor` for the next one.',
  })
  @ID
  @ApiOkResponse({ type: EventListResponse })
  @ApiProblemResponses({
    400: 'INVALID_ID, VALIDATION_FAILED (limit not an integer from 1 to 1000, or an unknown parameter), INVALID_CURSOR',
    404: 'TRANSFER_NOT_FOUND',
    ...INTERNAL,
  })
  async chain(@Param('id', uuidParam()) id: string, @Query() request: EventListRequest): Promise<EventListResponse> {
    const afterPosition = request.cursor === undefined ? 0 : decodeCursor(request.cursor, isPositionCursor).afterPosition;
    const page = await this.queries.execute(new GetTransferEvents(id, request.limit ?? EVENT_PAGE_DEFAULT, afterPosition));
    if (!page) throw transferNotFound(id);
    return {
      items: page.items.map((event) => EventResponse.of(event)),
      nextCursor: page.nextAfterPosition === null ? null : encodeCursor({ afterPosition: page.nextAfterPosition }),
    };
  }

  @QueryEndpoint()
  @Get('accounts/:id/transfers')
  @ApiTags('accounts')
  @ApiOperation({ summary: 'Transfers from or to an account, newest first (keyset pagination)' })
  @ID
  @ReadsProjection('transfers', 'async')
  @ApiOkResponse({ type: TransferListResponse, headers: PROJECTION_POSITION_DOC })
  @ApiProblemResponses({
    400: 'INVALID_ID, VALIDATION_FAILED, INVALID_CURSOR, INVALID_MIN_POSITION',
    404: 'ACCOUNT_NOT_FOUND',
    ...INTERNAL,
  })
  async forAccount(
    @Param('id', uuidParam()) id: string,
    @Query() request: ListTransfersRequest,
    @ProjectionRead('transfers') _position: number,
  ): Promise<TransferListResponse> {
    const before = request.cursor === undefined ? undefined : decodeCursor(request.cursor, isBeforeCursor).before;
    const page = await this.queries.execute(new ListAccountTransfers(id, request.limit ?? 20, before));
    return {
      items: page.items.map((record) => TransferResponse.of(record)),
      nextCursor: page.nextBefore === null ? null : encodeCursor({ before: page.nextBefore }),
    };
  }
}

function isBeforeCursor(value: unknown): value is { before: number } {
  const before = (value as { before?: unknown } | null)?.before;
  return typeof before === 'number' && Number.isSafeInteger(before) && before > 0;
}

/** A cursor of GET /transfers/{id}/events: the log position of the last event of the previous page. */
function isPositionCursor(value: unknown): value is { afterPosition: number } {
  const afterPosition = (value as { afterPosition?: unknown } | null)?.afterPosition;
  return typeof afterPosition === 'number' && Number.isSafeInteger(afterPosition) && afterPosition > 0;
}
