import { randomUUID } from 'node:crypto';
import { Body, Controller, Get, HttpCode, Inject, Module, Param, Post, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Response } from 'express';
import type pg from 'pg';
import { DataSource } from 'typeorm';
import { AmountRequest } from '../src/accounts/amount.request.js';
import { CommandEndpoint, QueryEndpoint } from '../src/auth/scopes.js';
import { type CommandMetadata, QUERY_DATA_SOURCE } from '../src/event-sourcing/index.js';
import { RequestMetadata } from '../src/shared/http/request-metadata.decorator.js';
import { ProblemException } from '../src/shared/problem-details/problem.exception.js';
import { uuidParam } from '../src/shared/http/uuid-param.pipe.js';

/** The pg pool under a TypeORM DataSource: the bare endpoints use the service's own pools. */
const poolOf = (dataSource: DataSource): pg.Pool => (dataSource.driver as unknown as { master: pg.Pool }).master;

const LAST_EVENT = {
  name: 'bare-last-event',
  text: `SELECT version, coalesce((data->>'balanceAfter')::bigint, 0) AS balance FROM events
         WHERE stream_id = $1 ORDER BY version DESC LIMIT 1`,
};
const INSERT_EVENT = {
  name: 'bare-insert-event',
  text: `INSERT INTO events (stream_id, version, type, schema_version, event_id, data, metadata)
         VALUES ($1, $2, 'accounts.MoneyDeposited', 2, $3, $4, $5) RETURNING position`,
};
const SELECT_ACCOUNT = {
  name: 'bare-select-account',
  text: `SELECT id, owner_name, currency, balance, status, version, opened_at, updated_at FROM account_summaries WHERE id = $1`,
};

const notFound = (id: string) => new ProblemException(404, 'ACCOUNT_NOT_FOUND', 'Account not found', `No account ${id}`, {});

/**
 * The baselines of the HTTP benchmark, inside the same application (same middleware, guards, pipes,
 * filters and interceptors as the real routes): the equivalent SQL written by hand with pg on the
 * service's own pools, without the command bus, aggregate, event store or query bus.
 *   POST /bench/accounts/:id/deposits: BEGIN; the stream's last version and balance; INSERT the next
 *     MoneyDeposited (same type, data and metadata as the service writes); COMMIT. A lost race on
 *     UNIQUE(stream_id, version) is retried, as the command runner does.
 *   GET /bench/accounts/:id: the account_summaries row by primary key.
 * Never part of the service: only the benchmark's own process (bench-service.ts) imports it.
 */
@ApiExcludeController()
@Controller('bench/accounts')
class BareEndpointsController {
  private readonly commands: pg.Pool;
  private readonly queries: pg.Pool;

  constructor(dataSource: DataSource, @Inject(QUERY_DATA_SOURCE) queryDataSource: DataSource) {
    this.commands = poolOf(dataSource);
    this.queries = poolOf(queryDataSource);
  }

  @CommandEndpoint()
  @Post(':id/deposits')
  @HttpCode(200)
  async deposit(
    @Param('id', uuidParam()) id: string,
    @Body() body: AmountRequest,
    @RequestMetadata() context: CommandMetadata,
    @Res({ passthrough: true }) response: Response,
  ): Promise<{ id: string; version: number; position: number }> {
    const streamId = `account-${id}`;
    for (let attempt = 1; ; attempt++) {
      const client = await this.commands.connect();
      try {
        await client.query('BEGIN');
        const { rows } = await client.query<{ version: number; balance: string }>({ ...LAST_EVENT, values: [streamId] });
        if (rows.length === 0) throw notFound(id);
        const version = rows[0].version + 1;
        const eventId = randomUUID();
        const data = {
          accountId: id,
          amount: body.amount,
          balanceAfter: Number(rows[0].balance) + body.amount,
          reference: body.reference ?? null,
        };
        const metadata = {
          correlationId: context.correlationId,
          causationId: context.causationId,
          ...(context.actor === undefined ? {} : { actor: context.actor }),
          occurredAt: new Date().toISOString(),
          eventId,
        };
        const inserted = await client.query<{ position: string }>({
          ...INSERT_EVENT,
          values: [streamId, version, eventId, JSON.stringify(data), JSON.stringify(metadata)],
        });
        await client.query('COMMIT');
        response.setHeader('ETag', `"${version}"`);
        return { id, version, position: Number(inserted.rows[0].position) };
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        const lostRace = (error as { code?: string }).code === '23505' && attempt < 10;
        if (!lostRace) throw error;
      } finally {
        client.release();
      }
    }
  }

  @QueryEndpoint()
  @Get(':id')
  async get(@Param('id', uuidParam()) id: string, @Res({ passthrough: true }) response: Response): Promise<object> {
    const { rows } = await this.queries.query<{
      id: string;
      owner_name: string;
      currency: string;
      balance: string;
      status: string;
      version: number;
      opened_at: Date;
      updated_at: Date;
    }>({ ...SELECT_ACCOUNT, values: [id] });
    if (rows.length === 0) throw notFound(id);
    const row = rows[0];
    response.setHeader('ETag', `"${row.version}"`);
    return {
      id: row.id,
      ownerName: row.owner_name,
      currency: row.currency,
      balance: Number(row.balance),
      status: row.status,
      version: row.version,
      openedAt: row.opened_at.toISOString(),
      updatedAt: row.updated_at.toISOString(),
    };
  }
}

@Module({ controllers: [BareEndpointsController] })
export class BareEndpointsModule {}
