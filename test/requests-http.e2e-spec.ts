import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { testToken } from './support/auth.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// requests.http is documentation a developer runs: it is only useful while every request in it
// still works. These tests read it the way the VS Code REST Client does (file variables, `###`
// separated requests, `# @name`, {{name.response.body.$.field}} and {{name.response.headers.Name}}
// from earlier answers), check every request names an operation of openapi.json, and run the whole
// file top to bottom against the app: every answer must be a success.

const ROOT = join(import.meta.dirname, '..');

interface HttpRequest {
  readonly title: string;
  readonly name?: string;
  readonly method: string;
  readonly url: string;
  readonly headers: Array<[string, string]>;
  readonly body: string;
}

function parse(text: string): { variables: Map<string, string>; requests: HttpRequest[] } {
  const [preamble, ...blocks] = text.split(/^###/m);
  const variables = new Map<string, string>();
  for (const line of preamble.split('\n')) {
    const match = /^@(\w+)\s*=\s*(.*)$/.exec(line.trim());
    if (match) variables.set(match[1], match[2]);
  }
  const requests = blocks.map((block) => {
    const lines = block.split('\n');
    const title = lines.shift()!.trim();
    const name = lines.map((line) => /^#\s*@name\s+(\w+)/.exec(line)?.[1]).find(Boolean);
    const content = lines.filter((line) => !line.startsWith('#'));
    while (content.length > 0 && content[0].trim() === '') content.shift();
    const [method, url] = content.shift()!.trim().split(/\s+/);
    const headers: Array<[string, string]> = [];
    while (content.length > 0 && content[0].trim() !== '') {
      const line = content.shift()!;
      const colon = line.indexOf(':');
      headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
    }
    return { title, name, method, url, headers, body: content.join('\n').trim() };
  });
  return { variables, requests };
}

const file = parse(readFileSync(join(ROOT, 'requests.http'), 'utf8'));
const openapi = JSON.parse(readFileSync(join(ROOT, 'openapi.json'), 'utf8')) as { paths: Record<string, Record<string, unknown>> };

/** The operation of openapi.json a concrete method and path are served by, e.g. "POST /accounts/{id}/deposits". */
function operationOf(method: string, path: string): string | undefined {
  const template = Object.keys(openapi.paths).find((candidate) => new RegExp(`^${candidate.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(path));
  return template && method.toLowerCase() in openapi.paths[template] ? `${method} ${template}` : undefined;
}

let t: TestApp;
let host: string;
beforeAll(async () => {
  // Read-your-writes waits get room: under a full parallel suite 2 s was sometimes not enough (a 503).
  t = await startTestApp({ READ_YOUR_WRITES_TIMEOUT_MS: '15000' });
  await t.app.listen(0, '127.0.0.1');
  host = `http://127.0.0.1:${t.app.getHttpServer().address().port}`;
});
afterAll(() => t.close());

describe('requests.http', () => {
  it('covers the main flows, each request an operation of openapi.json', () => {
    const operations = file.requests.map((request) => {
      const path = request.url
        .replace('{{host}}', '')
        .split('?')[0]
        .replace(/\{\{\w+\}\}/g, 'x');
      return { title: request.title, operation: operationOf(request.method, path) };
    });
    expect(operations.filter(({ operation }) => !operation)).toEqual([]);
    expect(operations.map(({ operation }) => operation)).toEqual(
      expect.arrayContaining([
        'POST /accounts',
        'POST /accounts/{id}/deposits',
        'POST /accounts/{id}/withdrawals',
        'GET /accounts/{id}',
        'POST /transfers',
        'GET /transfers/{id}',
        'GET /events',
        'GET /events/live',
        'GET /admin/projections',
      ]),
    );
    expect(file.requests.find((request) => request.url.includes('/deposits'))?.headers.map(([name]) => name)).toContain('Idempotency-Key');
    expect(file.requests.find((request) => request.url.includes('/withdrawals'))?.headers.map(([name]) => name)).toContain('If-Match');
    expect(file.requests.find((request) => request.url.includes('minPosition='))).toBeDefined();
  });

  it('runs top to bottom against the service, every answer a success', async () => {
    const answers = new Map<string, { body: unknown; headers: Headers }>();
    const resolve = (text: string): string =>
      text.replace(/\{\{([\w.$]+)\}\}/g, (_, expression: string) => {
        if (expression === 'host') return host;
        if (expression === 'token') return testToken();
        const variable = file.variables.get(expression);
        if (variable !== undefined) return resolve(variable);
        const [name, , part, ...rest] = expression.split('.');
        const answer = answers.get(name);
        if (!answer) throw new Error(`{{${expression}}}: no earlier request named ${name}`);
        if (part === 'headers') return answer.headers.get(rest.join('.')) ?? '';
        return String(rest.filter((key) => key !== '$').reduce((value: any, key) => value?.[key], answer.body));
      });

    const outcomes: Array<{ request: string; status: number }> = [];
    for (const request of file.requests) {
      const headers = request.headers.map(([name, value]): [string, string] => [name, resolve(value)]);
      const controller = new AbortController();
      const response = await fetch(resolve(request.url), {
        method: request.method,
        headers,
        body: request.body ? resolve(request.body) : undefined,
        signal: controller.signal,
      });
      outcomes.push({ request: `${request.method} ${request.url}`, status: response.status });
      if (response.headers.get('content-type')?.startsWith('text/event-stream')) {
        // The live feed stays open: read up to its first event (Last-Event-ID: 0 replays the events
        // written above), then hang up.
        const reader = response.body!.getReader();
        let received = '';
        while (!/^data: /m.test(received)) {
          const { value, done } = await reader.read();
          if (done) break;
          received += new TextDecoder().decode(value);
        }
        expect(received).toMatch(/^id: \d+\nevent: accounts\.AccountOpened\ndata: /m);
        controller.abort();
        continue;
      }
      const text = await response.text();
      if (request.name) answers.set(request.name, { body: text ? JSON.parse(text) : undefined, headers: response.headers });
    }
    expect(outcomes.filter(({ status }) => status >= 300)).toEqual([]);
    expect(outcomes.length).toBe(file.requests.length);
  });
});
