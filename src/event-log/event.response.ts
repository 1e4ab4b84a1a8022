import { ApiProperty } from '@nestjs/swagger';
import type { RecordedEvent } from '../event-sourcing/index.js';

/**
 * An event as every event list shows it — GET /events, /events/live, GET /accounts/{id}/events and
 * GET /transfers/{id}/events — in its current schema (older versions are upcast). One shape
 * everywhere: a transfer's chain mixes streams, so each event names its own.
 */
export class EventResponse {
  @ApiProperty({ example: 'account-5b0e8c1e-7a4f-4b8e-9d55-3a3f5c2f4d10' }) streamId!: string;
  @ApiProperty({ example: 'accounts.MoneyDeposited' }) type!: string;
  @ApiProperty({ example: 2, description: 'The version of its stream this event made (1, 2, 3… within streamId).' })
  version!: number;
  @ApiProperty({ example: 1042, description: 'The position in the global log.' }) position!: number;
  @ApiProperty({ example: 2, description: 'The schema version of `data` as shown (older stored versions are upcast).' })
  schemaVersion!: number;
  @ApiProperty({ type: 'object', additionalProperties: true }) data!: object;
  @ApiProperty({ type: 'object', additionalProperties: true, description: 'eventId, correlationId, causationId, occurredAt, actor' })
  metadata!: object;
  @ApiProperty({ type: String, format: 'date-time' }) recordedAt!: string;

  static of(event: RecordedEvent): EventResponse {
    return {
      streamId: event.streamId,
      type: event.type,
      version: event.version,
      position: event.position,
      schemaVersion: event.schemaVersion,
      data: event.data,
      metadata: event.metadata,
      recordedAt: event.recordedAt.toISOString(),
    };
  }
}

export class EventPageResponse {
  @ApiProperty({ type: [EventResponse] }) items!: EventResponse[];
  @ApiProperty({
    example: 1042,
    description: 'Pass as `after` to continue: the position of the last event returned (or the `after` given when none was).',
  })
  next!: number;
}

/** A page of a per-stream event list (an account's stream, a transfer's chain). */
export class EventListResponse {
  @ApiProperty({ type: [EventResponse] }) items!: EventResponse[];
  @ApiProperty({
    type: String,
    nullable: true,
    description: 'Pass as `cursor` to get the next page; null on the last page.',
  })
  nextCursor!: string | null;
}
