import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { loadConfig, loadDotEnv } from '../config/app-config.js';
import { BalancesConsumer } from './balances-consumer.js';
import { loadConsumerConfig } from './consumer-config.js';

/**
 * The reference consumer on the other side of the broker, until SIGTERM/SIGINT: keeps
 * broker_balances(account_id, balance, version) in its own schema (CONSUMER_DATABASE_SCHEMA, default
 * broker_consumer) of CONSUMER_DATABASE_URL (default DATABASE_URL) from a durable JetStream consumer
 * (NATS_CONSUMER, default balances) of NATS_STREAM at NATS_URL. Started by `ledger consume balances`
 * (a production install) and `npm run consume:balances` (development).
 */
export async function runBalancesConsumer(): Promise<void> {
  loadDotEnv();
  const consumerConfig = loadConsumerConfig(process.env, loadConfig());
  const pool = new pg.Pool({ connectionString: consumerConfig.databaseUrl, max: 2 });
  const connection = await connect({
    servers: consumerConfig.natsUrl.split(',').map((server) => server.trim()),
    name: 'ledger-balances-consumer',
    maxReconnectAttempts: -1,
    waitOnFirstConnect: true,
  });
  const consumer = new BalancesConsumer(connection, pool, { ...consumerConfig, log: (line) => console.log(line) });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => consumer.stop());
  try {
    await consumer.run();
  } finally {
    await connection.close();
    await pool.end();
  }
}
