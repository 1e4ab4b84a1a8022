import { type DynamicModule, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { JwtModule } from '@nestjs/jwt';
import { ThrottlerModule } from '@nestjs/throttler';
import type { AppConfig } from '../config/app-config.js';
import { AuthGuard } from './auth.guard.js';
import { ClientThrottlerGuard } from './client-throttler.guard.js';
import { SlidingWindowThrottlerStorage } from './sliding-window-throttler.storage.js';
import { TokenVerifier } from './token-verifier.js';

/**
 * Bearer tokens with scopes on every route (AuthGuard), then rate limits per client with separate
 * budgets for commands and queries (ClientThrottlerGuard): guards run in this order.
 */
@Module({})
export class AuthModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: AuthModule,
      imports: [
        JwtModule.register({}),
        ThrottlerModule.forRoot({
          throttlers: [
            { name: 'commands', ttl: 60_000, limit: config.rateLimit.commandsPerMinute },
            { name: 'queries', ttl: 60_000, limit: config.rateLimit.queriesPerMinute },
          ],
          skipIf: () => !config.rateLimit.enabled,
          setHeaders: false, // only Retry-After, on a 429 (see ClientThrottlerGuard)
          // The default storage's answers at O(1) per request instead of a scan of the window's hits.
          storage: new SlidingWindowThrottlerStorage(),
        }),
      ],
      providers: [TokenVerifier, { provide: APP_GUARD, useClass: AuthGuard }, { provide: APP_GUARD, useClass: ClientThrottlerGuard }],
      exports: [TokenVerifier],
    };
  }
}
