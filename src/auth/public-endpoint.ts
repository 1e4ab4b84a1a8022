import { SetMetadata, applyDecorators } from '@nestjs/common';
import { SkipThrottle } from '@nestjs/throttler';

export const PUBLIC_ENDPOINT = Symbol('public-endpoint');

/**
 * Open without a token and never rate limited: only for what the platform itself calls (the
 * Kubernetes probes, the Prometheus scraper), which carries no token and must never get a 429.
 * Such a route answers nothing about the ledger's content.
 */
export const PublicEndpoint = () => applyDecorators(SetMetadata(PUBLIC_ENDPOINT, true), SkipThrottle({ commands: true, queries: true }));
