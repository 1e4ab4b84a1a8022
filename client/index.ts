// The typed client of the ledger API, for a team that calls the service from TypeScript.
// ledger-api.d.ts is generated from openapi.json (`npm run openapi` regenerates both from the code;
// never edit them by hand: test/openapi-document.e2e-spec.ts fails when either is out of step).
// The runtime is openapi-fetch (a few kB over the platform's fetch): a path the API does not have, a
// missing or mistyped parameter or body field is a compile error, and every answer is typed by its
// status. (An extra field is not always caught by TypeScript; the service refuses it: 400.)
import createClient, { type Client, type ClientOptions } from 'openapi-fetch';
import type { components, paths } from './ledger-api.js';

export type { components, operations, paths } from './ledger-api.js';
/** The schemas of the API by name, e.g. `LedgerSchemas['TransferResponse']`. */
export type LedgerSchemas = components['schemas'];
/** Every error answer: application/problem+json with a stable `code`. */
export type Problem = LedgerSchemas['ProblemDetailsDto'];
export type LedgerClient = Client<paths>;

/**
 * A client for the service at `baseUrl` (e.g. http://localhost:3000) sending `token` as the bearer
 * token (`npm run token` makes one). `options` reach openapi-fetch as they are (a custom fetch,
 * more headers...).
 *
 *   const ledger = createLedgerClient('http://localhost:3000', token);
 *   const { data, error } = await ledger.POST('/accounts', { body: { ownerName: 'Ada', currency: 'EUR' } });
 */
export function createLedgerClient(
  baseUrl: string,
  token: string,
  options: Omit<ClientOptions, 'baseUrl' | 'headers'> & { headers?: Record<string, string> } = {},
): LedgerClient {
  return createClient<paths>({ ...options, baseUrl, headers: { ...options.headers, Authorization: `Bearer ${token}` } });
}
