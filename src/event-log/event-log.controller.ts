import { Controller, Get, Headers, Query, Res } from '@nestjs/common';
import { EventsEndpoint } from '../auth/scopes.js';
import { ApiExtraModels, ApiHeader, ApiOkResponse, ApiOperation, ApiProduces, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { EventLogReader, START_OF_LOG } from '../event-sourcing/index.js';
import { ApiProblemResponses } from '../shared/http/api-problem-responses.decorator.js';
import { ProblemDetailsDto } from '../shared/problem-details/problem-details.js';
import { ProblemException } from '../shared/problem-details/problem.exception.js';
import { EventFeedRequest } from './event-feed.request.js';
import { EventPageResponse, EventResponse } from './event.response.js';
import { LiveFeed } from './live-feed.js';

function noEventAt(position: number, field: string): ProblemException {
  return new ProblemException(400, 'UNKNOWN_POSITION', 'Unknown position', `There is no event at position ${position}: pass a position this feed returned`, {
    errors: [{ field, messages: [`${field} must be the position of an existing event`] }],
  });
}

const POSITION = /^(0|[1-9][0-9]{0,15})$/;

/** The global event log: a paginated feed and a live stream, both in commit-safe order. */
@ApiTags('events')
@ApiExtraModels(ProblemDetailsDto, EventResponse)
@EventsEndpoint()
@Controller('events')
export class EventLogController {
  constructor(
    private readonly store: EventLogReader,
    private readonly live: LiveFeed,
  ) {}

  @Get()
  @ApiOperation({
    summary: 'The global log in commit-safe order, keyset paginated',
    description:
      'Events in the order their transactions committed (never skipping an event of a transaction that committed late), after the event at position `after`. Page with `next`.',
  })
  @ApiOkResponse({ type: EventPageResponse })
  @ApiProblemResponses({ 400: 'VALIDATION_FAILED, UNKNOWN_POSITION (after is not the position of an event)', 500: 'INTERNAL_ERROR' })
  async feed(@Query() request: EventFeedRequest): Promise<EventPageResponse> {
    const after = request.after ? await this.store.checkpointAt(request.after) : START_OF_LOG;
    if (!after) throw noEventAt(request.after!, 'after');
    const { events, checkpoint } = await this.store.readAll(after, request.limit ?? 100, undefined, {
      types: request.type,
      streamId: request.stream,
    });
    return { items: events.map((event) => EventResponse.of(event)), next: checkpoint.position };
  }

  @Get('live')
  @ApiOperation({
    summary: 'Server-Sent Events: every event as it commits',
    description:
      'Each message has the event position as `id`, the type as `event` and the event (as in GET /events) as `data`. Reconnect with `Last-Event-ID` (browsers do it themselves) to resume right after the last event received: nothing missed, nothing repeated. Without it, the stream starts at the current end of the log. A client too slow to keep up is disconnected and resumes the same way.',
  })
  @ApiProduces('text/event-stream')
  @ApiHeader({ name: 'Last-Event-ID', required: false, description: 'Position of the last event received (0: from the start of the log).' })
  @ApiQuery({ name: 'lastEventId', required: false, description: 'Same as Last-Event-ID, for clients that cannot set headers.' })
  @ApiOkResponse({ description: 'An endless text/event-stream', content: { 'text/event-stream': { schema: { type: 'string' } } } })
  @ApiProblemResponses({ 400: 'UNKNOWN_POSITION, INVALID_LAST_EVENT_ID', 500: 'INTERNAL_ERROR' })
  async stream(
    @Headers('last-event-id') header: string | undefined,
    @Query('lastEventId') query: string | string[] | undefined, // repeated in the query string: an array
    @Res() response: Response,
  ): Promise<void> {
    const raw = header ?? query;
    if (raw !== undefined && (typeof raw !== 'string' || !POSITION.test(raw.trim()))) {
      throw new ProblemException(400, 'INVALID_LAST_EVENT_ID', 'Invalid Last-Event-ID', 'Last-Event-ID must be the position (an integer) of the last event received');
    }
    const lastEventId = typeof raw === 'string' ? Number(raw.trim()) : undefined;
    const from = await this.live.startingPoint(lastEventId);
    if (!from) throw noEventAt(lastEventId!, 'Last-Event-ID');
    await this.live.stream(response, from);
  }
}
