import { randomUUID } from 'node:crypto';
import { Body, Controller, HttpCode, Param, Post, Res } from '@nestjs/common';
import { CommandBus } from '@nestjs/cqrs';
import { ApiBody, ApiCreatedResponse, ApiExtraModels, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { CommandEndpoint } from '../../auth/scopes.js';
import type { CommandMetadata } from '../../event-sourcing/index.js';
import { ApiProblemResponses } from '../../shared/http/api-problem-responses.decorator.js';
import { IfMatchVersion, formatEtag } from '../../shared/http/etag.js';
import { RequestMetadata } from '../../shared/http/request-metadata.decorator.js';
import { NoBodyFieldsPipe } from '../../shared/http/no-body-fields.pipe.js';
import { uuidParam } from '../../shared/http/uuid-param.pipe.js';
import { ProblemDetailsDto } from '../../shared/problem-details/problem-details.js';
import { AmountRequest } from '../amount.request.js';
import { CloseAccount } from '../close-account/close-account.command.js';
import { CommandResult } from '../command-result.js';
import { DepositMoney } from '../deposit-money/deposit-money.command.js';
import { OpenAccount } from '../open-account/open-account.command.js';
import { OpenAccountRequest } from '../open-account/open-account.request.js';
import { WithdrawMoney } from '../withdraw-money/withdraw-money.command.js';
import { ACCOUNT_ID, BODY_PROBLEMS, COMMAND_PROBLEMS, ETAG_HEADER, IF_MATCH } from './account-api.docs.js';

/** HTTP → the account commands: each answers the new version as ETag and `{id, version, position}`. */
@ApiTags('accounts')
@ApiExtraModels(ProblemDetailsDto)
@Controller('accounts')
export class AccountCommandsController {
  constructor(private readonly commands: CommandBus) {}

  @CommandEndpoint()
  @Post()
  @ApiOperation({ summary: 'Open an account' })
  @ApiCreatedResponse({
    type: CommandResult,
    headers: { Location: { description: '/accounts/{id}', schema: { type: 'string' } }, ...ETAG_HEADER },
  })
  @ApiProblemResponses({
    ...BODY_PROBLEMS,
    400: 'VALIDATION_FAILED (each invalid field listed), MALFORMED_JSON, BODY_TOO_DEEP, INVALID_TEXT',
  })
  async open(
    @Body() body: OpenAccountRequest,
    @RequestMetadata() metadata: CommandMetadata,
    @Res({ passthrough: true }) response: Response,
  ): Promise<CommandResult> {
    const id = randomUUID();
    const appended = await this.commands.execute(new OpenAccount(id, body.ownerName, body.currency, metadata));
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
    @RequestMetadata() metadata: CommandMetadata,
    @Res({ passthrough: true }) response: Response,
  ): Promise<CommandResult> {
    const appended = await this.commands.execute(new DepositMoney(id, body.amount, expectedVersion, body.reference ?? null, metadata));
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
    @RequestMetadata() metadata: CommandMetadata,
    @Res({ passthrough: true }) response: Response,
  ): Promise<CommandResult> {
    const appended = await this.commands.execute(new WithdrawMoney(id, body.amount, expectedVersion, body.reference ?? null, metadata));
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
  @ApiProblemResponses({
    ...COMMAND_PROBLEMS,
    422: 'ACCOUNT_BALANCE_NOT_ZERO, ACCOUNT_TRANSFER_IN_FLIGHT (money sent by a transfer may still come back), ACCOUNT_CLOSED',
  })
  async close(
    @Param('id', uuidParam()) id: string,
    @Body(NoBodyFieldsPipe) _body: undefined,
    @IfMatchVersion() expectedVersion: number | undefined,
    @RequestMetadata() metadata: CommandMetadata,
    @Res({ passthrough: true }) response: Response,
  ): Promise<CommandResult> {
    const appended = await this.commands.execute(new CloseAccount(id, expectedVersion, metadata));
    response.setHeader('ETag', formatEtag(appended.version));
    return CommandResult.of(id, appended);
  }
}
