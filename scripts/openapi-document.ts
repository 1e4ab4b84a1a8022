import { isDeepStrictEqual } from 'node:util';

/**
 * The committed OpenAPI document and the typed client generated from it. Shared by the command that
 * writes them (scripts/openapi.ts, `npm run openapi`) and the test that fails when they are stale
 * (test/openapi-document.e2e-spec.ts), so both agree on the file names and the canonical form.
 */
export const OPENAPI_FILE = 'openapi.json';
export const CLIENT_TYPES_FILE = 'client/ledger-api.d.ts';
/** The one command that brings both files back in step with the code. */
export const REGENERATE_COMMAND = 'npm run openapi';
/** The openapi-typescript command line, without its output option (the test writes elsewhere). */
export const CLIENT_GENERATOR = ['node_modules/openapi-typescript/bin/cli.js', OPENAPI_FILE];

/** The document a running service serves at /docs-json, fetched over HTTP as any client would. */
export async function fetchServedDocument(baseUrl: string): Promise<unknown> {
  const response = await fetch(`${baseUrl}/docs-json`);
  if (!response.ok) throw new Error(`GET ${baseUrl}/docs-json answered ${response.status}`);
  return response.json();
}

/**
 * The text committed as openapi.json: keys sorted at every level (arrays keep their order, which
 * means something), two-space indent, final newline. Sorting makes the file independent of the order
 * in which modules and decorators register, so a diff shows only what really changed.
 */
export function canonicalJson(document: unknown): string {
  return `${JSON.stringify(sortKeys(document), null, 2)}\n`;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((key) => [key, sortKeys((value as Record<string, unknown>)[key])]),
  );
}

/**
 * Where two documents differ, as JSON paths with both values ("- committed", "+ served"), the first
 * `limit` of them: enough to see what changed without reading two 5,000-line files side by side.
 */
export function documentDifferences(committed: unknown, served: unknown, limit = 20): string[] {
  const found: string[] = [];
  const show = (value: unknown) => {
    const text = value === undefined ? '(absent)' : JSON.stringify(value);
    return text.length > 120 ? `${text.slice(0, 117)}...` : text;
  };
  const walk = (a: unknown, b: unknown, path: string) => {
    if (found.length >= limit || isDeepStrictEqual(a, b)) return;
    const bothObjects = a !== null && b !== null && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b);
    if (!bothObjects) {
      found.push(`${path || '(root)'}\n    - committed: ${show(a)}\n    + served:    ${show(b)}`);
      return;
    }
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const key of keys)
      walk((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], `${path}${Array.isArray(a) ? `[${key}]` : `.${key}`}`);
  };
  walk(committed, served, '');
  return found;
}
