import { AckPolicy, DeliverPolicy, type JsMsg, JetStreamApiError, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';

/** What the consumer needs of a relayed event (its body is the event as GET /events shows it). */
interface RelayedEvent {
  readonly streamId: string;
  readonly version: number;
  readonly data: { readonly balanceAfter?: unknown };
}

export type ApplyOutcome = 'applied' | 'duplicate' | 'gap';

/** Its own table in its own schema: a consumer owns its storage, and creates it (idempotent) at start. */
export async function createBalancesTable(pool: pg.Pool, schema: string): Promise<void> {
  await pool.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
  await pool.query(`CREATE TABLE IF NOT EXISTS "${schema}".broker_balances (
    account_id uuid PRIMARY KEY,
    balance bigint NOT NULL,
    version integer NOT NULL)`);
}

/**
 * Applies one account event if, and only if, it is the next version of its account (dedupe and
 * order by (stream, version)), in one transaction. A version already applied is a duplicate
 * (a redelivery after a crash between commit and ack); a version beyond the next is a gap (an
 * earlier one will be redelivered first) and changes nothing.
 */
export async function applyBalanceEvent(pool: pg.Pool, schema: string, event: RelayedEvent): Promise<ApplyOutcome> {
  const accountId = event.streamId.slice('account-'.length);
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(`INSERT INTO "${schema}".broker_balances (account_id, balance, version) VALUES ($1, 0, 0) ON CONFLICT DO NOTHING`, [
      accountId,
    ]);
    const { rows } = await client.query<{ version: number }>(
      `SELECT version FROM "${schema}".broker_balances WHERE account_id = $1 FOR UPDATE`,
      [accountId],
    );
    const current = rows[0].version;
    if (event.version !== current + 1) {
      await client.query('ROLLBACK');
      return event.version <= current ? 'duplicate' : 'gap';
    }
    // Every account event moves the version; those that move money carry the balance after them.
    const balance = typeof event.data.balanceAfter === 'number' ? event.data.balanceAfter : null;
    await client.query(`UPDATE "${schema}".broker_balances SET balance = coalesce($2, balance), version = $3 WHERE account_id = $1`, [
      accountId,
      balance,
      event.version,
    ]);
    await client.query('COMMIT');
    return 'applied';
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

export interface BalancesConsumerOptions {
  readonly stream: string;
  /** The durable consumer's name: the broker remembers what it acknowledged across restarts. */
  readonly durable: string;
  readonly schema: string;
  readonly log: (line: string) => void;
}

/**
 * Keeps broker_balances from a durable JetStream consumer of `ledger.events.account.>`: for each
 * message, apply-if-next and COMMIT, then ack. A crash after the commit and before the ack gets
 * the message again, which is then a duplicate and only acked. A gap is nak'ed with a delay.
 * Resolves when stop() is called.
 */
export class BalancesConsumer {
  private stopping = false;
  private stopCurrent?: () => void;

  constructor(
    private readonly connection: NatsConnection,
    private readonly pool: pg.Pool,
    private readonly options: BalancesConsumerOptions,
  ) {}

  async run(): Promise<void> {
    const { stream, durable, schema, log } = this.options;
    await createBalancesTable(this.pool, schema);
    await this.ensureConsumer();
    const consumer = await jetstream(this.connection).consumers.get(stream, durable);
    const messages = await consumer.consume({ max_messages: 200 });
    this.stopCurrent = () => {
      messages.stop();
    };
    if (this.stopping) this.stopCurrent();
    log(`consuming ${stream} as durable "${durable}" into ${schema}.broker_balances`);
    for await (const message of messages) await this.handle(message);
  }

  stop(): void {
    this.stopping = true;
    this.stopCurrent?.();
  }

  private async handle(message: JsMsg): Promise<void> {
    const outcome = await applyBalanceEvent(this.pool, this.options.schema, message.json<RelayedEvent>());
    // Commit first (above), then ack: the broker forgets the message only once the table has it.
    if (outcome === 'gap') message.nak(500);
    else message.ack();
  }

  /** Creates the durable consumer if missing; waits for the stream (the relay creates it). */
  private async ensureConsumer(): Promise<void> {
    const manager = await jetstreamManager(this.connection);
    const { stream, durable, log } = this.options;
    for (let attempt = 1; !this.stopping; attempt++) {
      try {
        await manager.consumers.info(stream, durable);
        return;
      } catch (error) {
        if (!(error instanceof JetStreamApiError) || error.status !== 404) throw error;
      }
      try {
        await manager.consumers.add(stream, {
          durable_name: durable,
          filter_subject: 'ledger.events.account.>',
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: 30_000_000_000,
        });
        return;
      } catch (error) {
        // The stream does not exist yet: the relay has published nothing so far.
        if (!(error instanceof JetStreamApiError) || error.status !== 404) throw error;
        if (attempt === 1) log(`stream ${stream} not found yet: waiting for the relay to create it`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }
}
