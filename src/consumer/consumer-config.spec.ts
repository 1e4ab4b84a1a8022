import { describe, expect, it } from '@jest/globals';
import { ConfigError, loadConfig } from '../config/app-config.js';
import { loadConsumerConfig } from './consumer-config.js';

const load = (env: NodeJS.ProcessEnv) => loadConsumerConfig(env, loadConfig(env));

describe('loadConsumerConfig', () => {
  it('defaults to the service database, schema broker_consumer and durable balances', () => {
    expect(load({ NATS_URL: 'nats://b:4222', DATABASE_URL: 'postgres://u:p@db/ledger' })).toEqual({
      natsUrl: 'nats://b:4222',
      stream: 'LEDGER',
      durable: 'balances',
      databaseUrl: 'postgres://u:p@db/ledger',
      schema: 'broker_consumer',
    });
  });

  it('reads its own variables', () => {
    expect(
      load({
        NATS_URL: 'nats://b:4222',
        NATS_STREAM: 'S',
        NATS_CONSUMER: 'reporting',
        CONSUMER_DATABASE_URL: 'postgres://u:p@other/reports',
        CONSUMER_DATABASE_SCHEMA: 'reports',
      }),
    ).toEqual({
      natsUrl: 'nats://b:4222',
      stream: 'S',
      durable: 'reporting',
      databaseUrl: 'postgres://u:p@other/reports',
      schema: 'reports',
    });
  });

  it.each([
    [{ DATABASE_URL: 'postgres://u:p@db/ledger' }, /NATS_URL must be set/],
    [{ NATS_URL: 'nats://b:4222' }, /CONSUMER_DATABASE_URL/],
    [{ NATS_URL: 'nats://b:4222', DATABASE_URL: 'postgres://db/l', CONSUMER_DATABASE_SCHEMA: 'Bad"schema' }, /CONSUMER_DATABASE_SCHEMA/],
    [{ NATS_URL: 'nats://b:4222', DATABASE_URL: 'postgres://db/l', NATS_CONSUMER: 'a.b' }, /NATS_CONSUMER/],
  ])('refuses %p', (env, message) => {
    expect(() => load(env)).toThrow(ConfigError);
    expect(() => load(env)).toThrow(message);
  });
});
