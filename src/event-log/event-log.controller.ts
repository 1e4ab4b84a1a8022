import { Controller, Get, Headers, Query, Req, Res } from '@nestjs/common';
import { EventsEndpoint } from '../auth/scopes.js';
import { ApiExtraModels, ApiHeader, ApiOkResponse, ApiOperation, ApiProduces, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import type { Principal } from '../auth/token-verifier.js';
import { EventLogReader, START_OF_LOG } from '../event-sourcing/index.js';
import { ApiProblemResponses } from '../shared/http/api-problem-responses.decorator.js';
import { ProblemDetailsDto } from '../shared/problem-details/problem-details.js';
import { ProblemException } from '../shared/problem-details/problem.exception.js';
import { EventFeedRequest } from './event-feed.request.js';
import { EventPageResponse, EventResponse } from './event.response.js';
import { LiveFeed } from './live-feed.js';
import { LIVE_FEED_RETRY_AFTER_SECONDS } from './live-feed-slots.js';

function noEventAt(position: number, field: string): ProblemException {
  return new ProblemException(
    400,
    'UNKNOWN_POSITION',
    'Unknown position',
    `There is no event at position ${position}: pass a position this feed returned`,
    {
      errors: [{ field, messages: [`${field} must be the position of an existing event`] }],
    },
  );
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
    const after = request.after ? await this.store.log.checkpointAt(request.after) : START_OF_LOG;
    if (!after) throw noEventAt(request.after!, 'after');
    const { events, checkpoint } = await this.store.log.readAll(after, request.limit ?? 100, undefined, {
      types: request.type,
      streamId: request.stream,
    });
    return { items: events.map((event) => EventResponse.of(event)), next: checkpoint.position };
  }

  @Get('live')
  @ApiOperation({
    summary: 'Server-Sent Events: every event as it commits',
    description:
      'Each message has the event position as `id`, the type as `event` and the event (as in GET /events) as `data`. Reconnect with `Last-Event-ID` (browsers do it themselves) to resume right after the last event received: nothing missed, nothing repeated. Without it, the stream starts at the current end of the log. A client too slow to keep up is disconnected and resumes the same way. Open streams are limited per instance: LIVE_FEED_MAX_CONNECTIONS_PER_CLIENT per client (the token subject; one more is a 429) and LIVE_FEED_MAX_CONNECTIONS in total (one more is a 503), both with Retry-After.',
  })
  @ApiProduces('text/event-stream')
  @ApiHeader({ name: 'Last-Event-ID', required: false, description: 'Position of the last event received (0: from the start of the log).' })
  @ApiQuery({ name: 'lastEventId', required: false, description: 'Same as Last-Event-ID, for clients that cannot set headers.' })
  @ApiOkResponse({ description: 'An endless text/event-stream', content: { 'text/event-stream': { schema: { type: 'string' } } } })
  @ApiProblemResponses({
    400: 'UNKNOWN_POSITION, INVALID_LAST_EVENT_ID',
    429: `LIVE_FEED_CLIENT_LIMIT: this client already has LIVE_FEED_MAX_CONNECTIONS_PER_CLIENT open streams on this instance (close one; Retry-After ${LIVE_FEED_RETRY_AFTER_SECONDS}); RATE_LIMITED: too many requests from this client; retry after Retry-After seconds`,
    500: 'INTERNAL_ERROR',
    503: `LIVE_FEED_AT_CAPACITY: this instance already serves LIVE_FEED_MAX_CONNECTIONS streams; retry after Retry-After seconds (${LIVE_FEED_RETRY_AFTER_SECONDS})`,
  })
  async stream(
    @Headers('last-event-id') header: string | undefined,
    @Query('lastEventId') query: string | string[] | undefined, // repeated in the query string: an array
    @Req() request: Request & { principal?: Principal },
    @Res() response: Response,
  ): Promise<void> {
    const raw = header ?? query;
    if (raw !== undefined && (typeof raw !== 'string' || !POSITION.test(raw.trim()))) {
      throw new ProblemException(
        400,
        'INVALID_LAST_EVENT_ID',
        'Invalid Last-Event-ID',
        'Last-Event-ID must be the position (an integer) of the last event received',
      );
    }
    const lastEventId = typeof raw === 'string' ? Number(raw.trim()) : undefined;
    // The client, as for the rate limits: the verified token's subject (the AuthGuard ran first).
    const lease = this.live.admit(request.principal ? `subject:${request.principal.subject}` : `address:${String(request.ip)}`);
    try {
      const from = await this.live.startingPoint(lastEventId);
      if (!from) throw noEventAt(lastEventId!, 'Last-Event-ID');
      await this.live.stream(response, from, lease);
    } finally {
      lease.release(); // however it ended, even refused after admission
    }
  }
}
