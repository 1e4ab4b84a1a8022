import { ALL_SCOPES, type Scope } from '../../src/auth/scopes.js';
import { issueToken } from '../../src/auth/token-issuer.js';
import { loadConfig } from '../../src/config/app-config.js';

/** The subject of the tests' tokens: the actor recorded in the events their requests append. */
export const TEST_SUBJECT = 'test-client';

/**
 * A bearer token the service accepts out of the box: signed with the development secret that
 * loadConfig uses outside production when no JWT key is configured (as in every test app).
 */
export function testToken(scopes: readonly Scope[] = ALL_SCOPES, subject = TEST_SUBJECT, expiresIn = '1h'): string {
  return issueToken(loadConfig({}), { subject, scopes, expiresIn });
}

/** `Authorization: Bearer <token with every scope>`, for fetch and node:http requests. */
export function authorization(token = testToken()): { authorization: string } {
  return { authorization: `Bearer ${token}` };
}
