// The service as the HTTP benchmark runs it, in a process of its own: the application exactly as
// createApp builds it (main.ts's factory: same middleware, guards, pipes, filters), plus the bench-only
// module of bare endpoints. Reads its settings from the environment like the service
// (DATABASE_URL, PORT, LOG_LEVEL, RATE_LIMIT_*, DATABASE_POOL_SIZE…); writes "listening" when ready.
// SIGTERM closes it cleanly (so that `node --cpu-prof` writes its profile).
import 'reflect-metadata';
import { createApp } from '../src/app.factory.js';
import { loadConfig } from '../src/config/app-config.js';
import { BareEndpointsModule } from './bare-endpoints.module.js';

const config = loadConfig(process.env);
const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) throw new Error('bench-service needs DATABASE_URL');
const app = await createApp(config, databaseUrl, { imports: [BareEndpointsModule] });
await app.listen(config.port, '127.0.0.1');
console.log('listening');
process.once('SIGTERM', () => {
  void app.close().finally(() => process.exit(0));
});
