import { type AppConfig, ConfigError } from '../config/app-config.js';

export interface ConsumerConfig {
  readonly natsUrl: string;
  readonly stream: string;
  readonly durable: string;
  readonly databaseUrl: string;
  readonly schema: string;
}

/** The balances consumer's settings; NATS_URL and a database are required (no embedded default). */
export function loadConsumerConfig(env: NodeJS.ProcessEnv, app: AppConfig): ConsumerConfig {
  if (!app.nats) throw new ConfigError('NATS_URL must be set to consume from the broker');
  const databaseUrl = env.CONSUMER_DATABASE_URL || app.databaseUrl;
  if (!databaseUrl) throw new ConfigError('CONSUMER_DATABASE_URL (or DATABASE_URL) must be set for the consumer');
  const schema = env.CONSUMER_DATABASE_SCHEMA || 'broker_consumer';
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema))
    throw new ConfigError(`CONSUMER_DATABASE_SCHEMA must be a lower-case identifier, got "${schema}"`);
  const durable = env.NATS_CONSUMER || 'balances';
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(durable)) throw new ConfigError(`NATS_CONSUMER must be 1 to 64 of A-Z a-z 0-9 _ -, got "${durable}"`);
  return { natsUrl: app.nats.url, stream: app.nats.stream, durable, databaseUrl, schema };
}
