import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import type { ProjectionStatusReport } from '../event-sourcing/index.js';

class CheckpointResponse {
  @ApiProperty({ example: '1234', description: 'Transaction id (xid8) of the last event applied.' }) transactionId!: string;
  @ApiProperty({ example: 1042, description: 'Log position of the last event applied.' }) position!: number;
}

class RebuildProgressResponse {
  @ApiProperty({ enum: ['requested', 'running'] }) status!: string;
  @ApiProperty({ description: 'Log position the fresh copy has reached.' }) position!: number;
  @ApiProperty() eventsApplied!: number;
  @ApiProperty({ description: 'Committed events the fresh copy still has to apply before the swap.' }) eventsRemaining!: number;
  @ApiProperty({ type: String, format: 'date-time' }) requestedAt!: string;
}

class SegmentStatusResponse {
  @ApiProperty({ example: 0, description: 'Index of the segment (0 to segments - 1).' }) segment!: number;
  @ApiProperty({ enum: ['running', 'failed'] }) status!: string;
  @ApiProperty({ type: CheckpointResponse }) checkpoint!: CheckpointResponse;
  @ApiProperty({ description: 'Committed events after its checkpoint (of every key: what it has still to read past).' }) lagEvents!: number;
  @ApiProperty({ description: 'Age in ms of the oldest of those (0 when caught up).' }) lagMs!: number;
  @ApiProperty({ description: 'Failed attempts at its current event.' }) attempts!: number;
  @ApiPropertyOptional({ type: String, nullable: true }) lastError!: string | null;
  @ApiPropertyOptional({ type: Number, nullable: true }) failedPosition!: number | null;
  @ApiPropertyOptional({ type: String, nullable: true, description: 'The process currently running this segment (its live lease).' })
  runner!: string | null;
}

export class ProjectionStatusResponse {
  @ApiProperty({ example: 'account-summary' }) name!: string;
  @ApiProperty({ enum: ['inline', 'async'], description: 'inline: updated in the append transaction; async: by the runner after commit.' })
  mode!: string;
  @ApiProperty({ enum: ['running', 'failed'] }) status!: string;
  @ApiProperty({ type: CheckpointResponse }) checkpoint!: CheckpointResponse;
  @ApiProperty({ description: 'Committed events not applied yet.' }) lagEvents!: number;
  @ApiProperty({ description: 'Age in ms of the oldest committed event not applied yet (0 when caught up).' }) lagMs!: number;
  @ApiProperty({ description: 'Failed attempts at the current event.' }) attempts!: number;
  @ApiPropertyOptional({ type: String, nullable: true }) lastError!: string | null;
  @ApiPropertyOptional({ type: Number, nullable: true, description: 'Position of the event that failed.' }) failedPosition!: number | null;
  @ApiPropertyOptional({ type: String, format: 'date-time', nullable: true }) failedAt!: string | null;
  @ApiPropertyOptional({ type: String, nullable: true, description: 'The process currently running this projection.' }) runner!:
    string | null;
  @ApiPropertyOptional({ type: RebuildProgressResponse, nullable: true }) rebuild!: RebuildProgressResponse | null;
  @ApiPropertyOptional({ type: String, format: 'date-time', nullable: true }) lastRebuildCompletedAt!: string | null;
  @ApiProperty({
    type: [SegmentStatusResponse],
    description:
      'Every segment (PROJECTION_SEGMENTS): the fields above aggregate them — status failed when any is, the earliest ' +
      "checkpoint, the largest lag and attempts, the first failing segment's error, segment 0's runner and rebuild.",
  })
  segments!: SegmentStatusResponse[];

  static of(report: ProjectionStatusReport): ProjectionStatusResponse {
    const leaseLive = report.leaseExpiresAt !== null && report.leaseExpiresAt.getTime() > Date.now();
    return {
      name: report.name,
      mode: report.mode,
      status: report.status,
      checkpoint: report.checkpoint,
      lagEvents: report.lagEvents,
      lagMs: report.lagMs,
      attempts: report.attempts,
      lastError: report.lastError,
      failedPosition: report.failedPosition,
      failedAt: report.failedAt?.toISOString() ?? null,
      runner: leaseLive ? report.leaseOwner : null,
      rebuild: report.rebuild && { ...report.rebuild, requestedAt: report.rebuild.requestedAt.toISOString() },
      lastRebuildCompletedAt: report.lastRebuildCompletedAt?.toISOString() ?? null,
      segments: report.segments.map((segment) => ({
        segment: segment.segment,
        status: segment.status,
        checkpoint: segment.checkpoint,
        lagEvents: segment.lagEvents,
        lagMs: segment.lagMs,
        attempts: segment.attempts,
        lastError: segment.lastError,
        failedPosition: segment.failedPosition,
        runner: segment.leaseExpiresAt !== null && segment.leaseExpiresAt.getTime() > Date.now() ? segment.leaseOwner : null,
      })),
    };
  }
}

export class ProjectionListResponse {
  @ApiProperty({ type: [ProjectionStatusResponse] }) items!: ProjectionStatusResponse[];
}

export class SkipResponse {
  @ApiProperty({ description: 'Position of the event that was skipped (recorded in projection_skips).' }) skippedPosition!: number;
  @ApiProperty({ type: ProjectionStatusResponse }) projection!: ProjectionStatusResponse;
}
