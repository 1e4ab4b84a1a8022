import { Controller, Get, Param, Query } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiExtraModels, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { QueryEndpoint } from '../../auth/scopes.js';
import { EVENT_PAGE_DEFAULT, EventListRequest, EventListResponse, EventResponse } from '../../event-log/index.js';
import { ApiProblemResponses } from '../../shared/http/api-problem-responses.decorator.js';
import { decodeCursor, encodeCursor } from '../../shared/http/cursor.js';
import { HistoryPointRequest } from '../../shared/http/history-point.request.js';
import { uuidParam } from '../../shared/http/uuid-param.pipe.js';
import { ProblemDetailsDto } from '../../shared/problem-details/problem-details.js';
import { AccountStateResponse } from '../account-history/account-state.response.js';
import { GetAccountHistory } from '../account-history/get-account-history.query.js';
import { GetAccountStateAt } from '../account-history/get-account-state.query.js';
import { AccountNotFoundError } from '../account.errors.js';
import { ACCOUNT_ID, INTERNAL_ERROR } from './account-api.docs.js';
import { isVersionCursor } from './account-cursors.js';

/** HTTP → the account's own stream in the event store: always current, no read model in between. */
@ApiTags('accounts')
@ApiExtraModels(ProblemDetailsDto)
@Controller('accounts')
export class AccountHistoryController {
  constructor(private readonly queries: QueryBus) {}

  @QueryEndpoint()
  @Get(':id/state')
  @ApiOperation({
    summary: 'Time travel: the account after a given version, or as it stood at an instant',
    description:
      "Folded from the account's own events up to that point (the event store, not a read model), starting from the newest snapshot at or before it; the answer is exactly that of a fold from the first event. Give exactly one of atVersion and asOf.",
  })
  @ACCOUNT_ID
  @ApiOkResponse({ type: AccountStateResponse })
  @ApiProblemResponses({
    400: 'INVALID_ID, VALIDATION_FAILED (neither or both of atVersion and asOf, or an invalid one)',
    404: 'ACCOUNT_NOT_FOUND, VERSION_NOT_FOUND (beyond the current version), NOT_YET_EXISTING (asOf before the account was opened)',
    500: INTERNAL_ERROR,
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
    description:
      'Reads the event store itself: always current. Pages hold `limit` events (100 by default, at most 1000); pass `nextCursor` as `cursor` for the next one.',
  })
  @ACCOUNT_ID
  @ApiOkResponse({ type: EventListResponse })
  @ApiExtraModels(EventResponse)
  @ApiProblemResponses({
    400: 'INVALID_ID, VALIDATION_FAILED (limit not an integer from 1 to 1000, or an unknown parameter), INVALID_CURSOR',
    404: 'ACCOUNT_NOT_FOUND',
    500: INTERNAL_ERROR,
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
