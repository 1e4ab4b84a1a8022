import { ApiProperty } from '@nestjs/swagger';
import type { AppendResult } from '../event-sourcing/index.js';

/** What every account command answers: which account, its new version (the ETag) and the log position. */
export class CommandResult {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 2, description: 'The account stream version after the command; also the ETag.' })
  version!: number;
  @ApiProperty({ example: 1042, description: 'Global log position of the last event written.' })
  position!: number;

  static of(id: string, appended: AppendResult): CommandResult {
    return { id, version: appended.version, position: appended.position };
  }
}
