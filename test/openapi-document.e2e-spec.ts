import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  CLIENT_GENERATOR,
  CLIENT_TYPES_FILE,
  OPENAPI_FILE,
  REGENERATE_COMMAND,
  canonicalJson,
  documentDifferences,
  fetchServedDocument,
} from '../scripts/openapi-document.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// openapi.json and the typed client generated from it are committed so that a consumer (and a
// reviewer) sees the API's contract change in the diff. They are only worth that if they are the
// contract: these tests fail as soon as the document the service serves, or the client generated
// from openapi.json, differs from what is committed, and say which command brings both back.

const ROOT = join(import.meta.dirname, '..');
const STALE = `Run \`${REGENERATE_COMMAND}\` and commit ${OPENAPI_FILE} and ${CLIENT_TYPES_FILE}.`;

let t: TestApp;
let served: unknown;
beforeAll(async () => {
  // The configuration `npm run openapi` uses: the defaults (rate limiting on, as in production).
  t = await startTestApp({ RATE_LIMIT_ENABLED: 'true' });
  await t.app.listen(0, '127.0.0.1');
  served = await fetchServedDocument(`http://127.0.0.1:${t.app.getHttpServer().address().port}`);
});
afterAll(() => t.close());

describe('the committed API contract', () => {
  it(`${OPENAPI_FILE} is the document the service serves at /docs-json`, () => {
    const committed = readFileSync(join(ROOT, OPENAPI_FILE), 'utf8');
    if (committed === canonicalJson(served)) return;
    let differences: string[];
    try {
      differences = documentDifferences(JSON.parse(committed), served);
    } catch {
      differences = [`${OPENAPI_FILE} is not valid JSON`];
    }
    if (differences.length === 0) differences = ['(same content, not in the canonical form: keys sorted, two-space indent, final newline)'];
    throw new Error(
      `${OPENAPI_FILE} is not the document the service serves at /docs-json. ${STALE}\nFirst differences (- ${OPENAPI_FILE}, + served):\n  ${differences.join('\n  ')}`,
    );
  });

  it(`${CLIENT_TYPES_FILE} is what openapi-typescript generates from ${OPENAPI_FILE}`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'ledger-client-'));
    try {
      const output = join(dir, 'ledger-api.d.ts');
      execFileSync(process.execPath, [...CLIENT_GENERATOR, '-o', output], { cwd: ROOT, stdio: 'pipe' });
      const generated = readFileSync(output, 'utf8');
      const committed = readFileSync(join(ROOT, CLIENT_TYPES_FILE), 'utf8');
      if (generated !== committed) {
        const line = generated.split('\n').findIndex((text, index) => text !== committed.split('\n')[index]);
        throw new Error(
          `${CLIENT_TYPES_FILE} is not what openapi-typescript generates from ${OPENAPI_FILE} (first difference at line ${line + 1}). ${STALE}`,
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the canonical form sorts keys at every level and keeps the order of arrays', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, 1, { z: 0, y: 0 }], c: null } })).toBe(
      `${JSON.stringify({ a: { c: null, d: [3, 1, { y: 0, z: 0 }] }, b: 1 }, null, 2)}\n`,
    );
  });

  it('the differences name each changed JSON path with both values', () => {
    expect(
      documentDifferences(
        { paths: { '/a': { get: { summary: 'old' } } }, tags: ['x'] },
        { paths: { '/a': { get: { summary: 'new' } }, '/b': {} }, tags: ['x'] },
      ),
    ).toEqual([
      `.paths./a.get.summary\n    - committed: "old"\n    + served:    "new"`,
      `.paths./b\n    - committed: (absent)\n    + served:    {}`,
    ]);
  });
});
