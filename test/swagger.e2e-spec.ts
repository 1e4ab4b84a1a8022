import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Test } from 'supertest';
import { testToken } from './support/auth.js';
import { type TestApp, startTestApp } from './support/test-app.js';

// The published API description: a user exploring /docs should never meet an undocumented answer.

const PROBLEM = 'application/problem+json';
const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

interface Operation {
  operationId?: string;
  summary?: string;
  description?: string;
  parameters?: Array<{ name: string; in: string; required?: boolean; description?: string; schema?: Record<string, unknown> }>;
  security?: unknown[];
  responses: Record<
    string,
    { description?: string; content?: Record<string, { schema?: Record<string, unknown> }>; headers?: Record<string, unknown> }
  >;
}

let t: TestApp;
let document: {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, { required?: string[]; properties?: Record<string, unknown> }> };
};

beforeAll(async () => {
  t = await startTestApp();
  const response = await t.http.get('/docs-json').expect(200);
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  document = response.body;
});
afterAll(() => t.close());

function operations(): Array<{ route: string; operation: Operation }> {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => HTTP_METHODS.includes(method))
      .map(([method, operation]) => ({ route: `${method.toUpperCase()} ${path}`, operation })),
  );
}

function operation(route: string): Operation {
  const [method, path] = route.split(' ');
  const found = document.paths[path]?.[method.toLowerCase()];
  if (!found) throw new Error(`${route} is not documented`);
  return found;
}

/** The routes Express really serves (Swagger's own excepted), as "METHOD /path/{param}". */
function servedRoutes(): string[] {
  const express = t.app.getHttpAdapter().getInstance() as {
    router: { stack: Array<{ route?: { path: string; methods: Record<string, boolean> } }> };
  };
  return (
    express.router.stack
      .flatMap((layer) => (layer.route ? Object.keys(layer.route.methods).map((method) => ({ method, path: layer.route!.path })) : []))
      .filter(({ path }) => !path.startsWith('/docs'))
      // Middleware Nest binds to every route (nestjs-pino's request-scoped logger) is mounted as one
      // `{/*splat}` layer per HTTP method; it passes every request on and serves nothing itself.
      .filter(({ path }) => path !== '{/*splat}')
      .map(({ method, path }) => `${method.toUpperCase()} ${path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`)
      .sort()
  );
}

const COMMANDS = ['POST /accounts/{id}/deposits', 'POST /accounts/{id}/withdrawals', 'POST /accounts/{id}/close'];
/** The queries served by a projection kept asynchronously, and that projection. */
const PROJECTION_QUERIES: Record<string, string> = {
  'GET /accounts': 'account-summary',
  'GET /accounts/{id}': 'account-summary',
  'GET /accounts/{id}/transactions': 'account-transactions',
  'GET /transfers/{id}': 'transfers',
  'GET /accounts/{id}/transfers': 'transfers',
};
const ACCOUNT_ROUTES = [...Object.keys(PROJECTION_QUERIES), 'GET /accounts/{id}/events', 'POST /accounts', ...COMMANDS];
const ADMIN_ROUTES = [
  'GET /admin/projections',
  'GET /admin/projections/{name}',
  'POST /admin/projections/{name}/rebuild',
  'POST /admin/projections/{name}/retry',
  'POST /admin/projections/{name}/skip',
];

describe('Swagger UI', () => {
  it('/docs serves the Swagger UI page', async () => {
    const response = await t.http.get('/docs').expect(200);
    expect(response.headers['content-type']).toMatch(/^text\/html/);
    expect(response.text).toContain('<title>Swagger UI</title>');
    expect(response.text).toMatch(/swagger-ui-bundle\.js/);
    expect(response.text).toMatch(/swagger-ui-init\.js/);
  });

  it('the page gets the same document as /docs-json, and its assets are served', async () => {
    const init = await t.http.get('/docs/swagger-ui-init.js').expect(200);
    expect(init.text).toContain('"AccountsController_open"');
    for (const { operation: op } of operations()) expect(init.text).toContain(`"${op.operationId}"`);
    const bundle = await t.http.get('/docs/swagger-ui-bundle.js').expect(200);
    expect(bundle.headers['content-type']).toMatch(/javascript/);
  });
});

describe('/docs-json', () => {
  it('is an OpenAPI 3 document listing exactly the routes the application serves', () => {
    expect(document.openapi).toMatch(/^3\./);
    const documented = operations()
      .map(({ route }) => route)
      .sort();
    expect(servedRoutes()).toEqual(documented);
    expect(documented).toEqual(expect.arrayContaining([...ACCOUNT_ROUTES, ...ADMIN_ROUTES]));
  });

  it('documents every error response of every operation as application/problem+json', () => {
    let checked = 0;
    for (const { route, operation: op } of operations()) {
      const errors = Object.entries(op.responses).filter(([status]) => Number(status) >= 400);
      expect({ route, errors: errors.length > 0 }).toEqual({ route, errors: true });
      for (const [status, response] of errors) {
        expect({ route, status, types: Object.keys(response.content ?? {}) }).toEqual({ route, status, types: [PROBLEM] });
        expect(response.content![PROBLEM].schema).toEqual({ $ref: '#/components/schemas/ProblemDetailsDto' });
        expect({ route, status, description: response.description }).toEqual({ route, status, description: expect.stringMatching(/\S/) });
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(20);
  });

  it('the problem schema requires type, title, status, detail and code', () => {
    const problem = document.components.schemas.ProblemDetailsDto;
    expect(problem.required?.sort()).toEqual(['code', 'detail', 'status', 'title', 'type']);
    expect(Object.keys(problem.properties ?? {})).toEqual(expect.arrayContaining(['type', 'title', 'status', 'detail', 'code', 'errors']));
  });

  it('documents the success answers of the accounts routes as application/json', () => {
    for (const route of ACCOUNT_ROUTES) {
      const op = operation(route);
      const successes = Object.entries(op.responses).filter(([status]) => Number(status) < 300);
      expect({ route, successes: successes.map(([status]) => status) }).toEqual({
        route,
        successes: [route === 'POST /accounts' ? '201' : '200'],
      });
      for (const [, response] of successes) expect(Object.keys(response.content ?? {})).toEqual(['application/json']);
    }
  });

  it('every command documents its ETag response header, and opening also Location', () => {
    for (const route of ['POST /accounts', ...COMMANDS]) {
      const success = operation(route).responses[route === 'POST /accounts' ? '201' : '200'];
      expect({ route, headers: Object.keys(success.headers ?? {}) }).toEqual({ route, headers: expect.arrayContaining(['ETag']) });
    }
    expect(Object.keys(operation('POST /accounts').responses['201'].headers ?? {})).toEqual(expect.arrayContaining(['Location', 'ETag']));
    expect(Object.keys(operation('GET /accounts/{id}').responses['200'].headers ?? {})).toContain('ETag');
  });

  it('documents If-Match on deposit, withdraw and close, and the current ETag on their 412', () => {
    for (const route of COMMANDS) {
      const op = operation(route);
      const ifMatch = op.parameters?.find((parameter) => parameter.in === 'header' && parameter.name === 'If-Match');
      expect({ route, ifMatch }).toEqual({ route, ifMatch: expect.objectContaining({ required: false }) });
      expect(Object.keys(op.responses['412']?.headers ?? {})).toContain('ETag');
    }
    expect(operation('POST /accounts').parameters?.some((parameter) => parameter.name === 'If-Match')).toBe(false);
  });

  it('documents every status code the contract can answer', () => {
    const documented = (route: string) => Object.keys(operation(route).responses).sort();
    // 409 and 422 also answer a reused or busy Idempotency-Key; 401, 403 and 429 every secured route.
    expect(documented('POST /accounts')).toEqual(['201', '400', '401', '403', '409', '413', '415', '422', '429', '500']);
    for (const route of COMMANDS) {
      expect({ route, statuses: documented(route) }).toEqual({
        route,
        statuses: ['200', '400', '401', '403', '404', '409', '412', '413', '415', '422', '429', '500', '503'],
      });
    }
    expect(documented('GET /accounts/{id}')).toEqual(['200', '400', '401', '403', '404', '413', '415', '429', '500', '503']);
    expect(documented('GET /accounts/{id}/transactions')).toEqual(['200', '400', '401', '403', '404', '413', '415', '429', '500', '503']);
    // The history reads the event store itself: always current, never a 503.
    expect(documented('GET /accounts/{id}/events')).toEqual(['200', '400', '401', '403', '404', '413', '415', '429', '500']);
    expect(documented('GET /transfers/{id}/events')).toEqual(['200', '400', '401', '403', '404', '413', '415', '429', '500']);
    expect(documented('GET /accounts')).toEqual(['200', '400', '401', '403', '413', '415', '429', '500', '503']);
    // an unknown account is a 404, as for its siblings /transactions and /events
    expect(documented('GET /accounts/{id}/transfers')).toEqual(['200', '400', '401', '403', '404', '413', '415', '429', '500', '503']);
    // a body sent with a GET is parsed and checked like any other: 400, 413, 415
    expect(documented('GET /admin/projections/{name}')).toEqual(['200', '400', '401', '403', '404', '413', '415', '429', '500']);
    expect(documented('GET /admin/projections')).toEqual(['200', '400', '401', '403', '413', '415', '429', '500']);
  });

  it('names the stable codes of each error response', () => {
    const description = (route: string, status: string) => operation(route).responses[status].description ?? '';
    expect(description('POST /accounts/{id}/withdrawals', '422')).toMatch(/ACCOUNT_INSUFFICIENT_FUNDS/);
    for (const route of COMMANDS) {
      expect(description(route, '422')).toMatch(/ACCOUNT_CLOSED/);
      expect(description(route, '400')).toMatch(/INVALID_IF_MATCH/);
      expect(description(route, '400')).toMatch(/INVALID_ID/);
      expect(description(route, '400')).toMatch(/MALFORMED_JSON/);
      expect(description(route, '404')).toMatch(/ACCOUNT_NOT_FOUND/);
      expect(description(route, '503')).toMatch(/STREAM_BUSY/);
    }
    expect(description('POST /accounts/{id}/close', '422')).toMatch(/ACCOUNT_BALANCE_NOT_ZERO/);
    expect(description('GET /accounts', '400')).toMatch(/INVALID_CURSOR/);
    expect(description('GET /accounts/{id}/transactions', '400')).toMatch(/INVALID_CURSOR/);
    for (const route of Object.keys(PROJECTION_QUERIES)) {
      expect({ route, description: description(route, '400') }).toEqual({
        route,
        description: expect.stringMatching(/INVALID_MIN_POSITION/),
      });
      expect({ route, description: description(route, '503') }).toEqual({
        route,
        description: expect.stringMatching(/PROJECTION_NOT_CAUGHT_UP/),
      });
    }
    for (const route of [
      'GET /accounts/{id}',
      'GET /accounts/{id}/transactions',
      'GET /accounts/{id}/transfers',
      'GET /accounts/{id}/events',
    ]) {
      expect({ route, description: description(route, '400') }).toEqual({ route, description: expect.stringMatching(/INVALID_ID/) });
      expect({ route, description: description(route, '404') }).toEqual({ route, description: expect.stringMatching(/ACCOUNT_NOT_FOUND/) });
    }
    for (const route of ['GET /accounts/{id}/events', 'GET /transfers/{id}/events', 'GET /accounts/{id}/transfers']) {
      expect({ route, description: description(route, '400') }).toEqual({ route, description: expect.stringMatching(/INVALID_CURSOR/) });
      expect({ route, description: description(route, '400') }).toEqual({ route, description: expect.stringMatching(/VALIDATION_FAILED/) });
    }
    expect(description('GET /transfers/{id}/events', '404')).toMatch(/TRANSFER_NOT_FOUND/);
    for (const { route } of operations()) {
      expect({ route, description: description(route, '400') }).toEqual({
        route,
        description: expect.stringMatching(/MALFORMED_JSON.*BODY_TOO_DEEP|BODY_TOO_DEEP.*MALFORMED_JSON/),
      });
      expect({ route, description: description(route, '413') }).toEqual({ route, description: expect.stringMatching(/PAYLOAD_TOO_LARGE/) });
      expect({ route, description: description(route, '415') }).toEqual({
        route,
        description: expect.stringMatching(/UNSUPPORTED_MEDIA_TYPE/),
      });
    }
  });

  it('documents the id path parameter as a UUID, and the list query parameters', () => {
    for (const { route, operation: op } of operations().filter(({ route }) => route.includes('{id}'))) {
      const id = op.parameters?.find((parameter) => parameter.in === 'path' && parameter.name === 'id');
      expect({ route, id }).toEqual({
        route,
        id: expect.objectContaining({ required: true, schema: expect.objectContaining({ format: 'uuid' }) }),
      });
    }
    const query = (route: string) =>
      operation(route)
        .parameters?.filter((parameter) => parameter.in === 'query')
        .map((parameter) => parameter.name)
        .sort();
    expect(query('GET /accounts')).toEqual(['cursor', 'limit', 'minPosition', 'owner', 'status']);
    expect(query('GET /accounts/{id}/transactions')).toEqual(['cursor', 'limit', 'minPosition']);
    expect(query('GET /accounts/{id}')).toEqual(['minPosition']);
    for (const route of ['GET /accounts/{id}/events', 'GET /transfers/{id}/events']) {
      expect({ route, query: query(route) }).toEqual({ route, query: ['cursor', 'limit'] });
      const limit = operation(route).parameters!.find((parameter) => parameter.name === 'limit')!;
      expect({ route, schema: limit.schema }).toEqual({
        route,
        schema: expect.objectContaining({ minimum: 1, maximum: 1000, default: 100 }),
      });
    }
  });

  it('every event list answers the one EventResponse shape, streamId included', () => {
    const event = document.components.schemas.EventResponse;
    expect(event.required?.sort()).toEqual(['data', 'metadata', 'position', 'recordedAt', 'schemaVersion', 'streamId', 'type', 'version']);
    const itemsOf = (schema: string) => (document.components.schemas[schema].properties as Record<string, any>).items;
    for (const route of ['GET /accounts/{id}/events', 'GET /transfers/{id}/events']) {
      expect({ route, schema: operation(route).responses['200'].content?.['application/json']?.schema }).toEqual({
        route,
        schema: { $ref: '#/components/schemas/EventListResponse' },
      });
    }
    expect(operation('GET /events').responses['200'].content?.['application/json']?.schema).toEqual({
      $ref: '#/components/schemas/EventPageResponse',
    });
    for (const page of ['EventListResponse', 'EventPageResponse']) {
      expect({ page, items: itemsOf(page) }).toEqual({
        page,
        items: { type: 'array', items: { $ref: '#/components/schemas/EventResponse' } },
      });
    }
    expect(document.components.schemas.EventListResponse.required?.sort()).toEqual(['items', 'nextCursor']);
    expect(
      Object.keys(document.components.schemas)
        .filter((name) => /Event.*Response$/.test(name))
        .sort(),
    ).toEqual(['EventListResponse', 'EventPageResponse', 'EventResponse']);
  });

  it('documents the request bodies with their constraints', () => {
    const open = document.components.schemas.OpenAccountRequest;
    expect(open.required?.sort()).toEqual(['currency', 'ownerName']);
    expect(open.properties).toMatchObject({
      ownerName: { type: 'string', minLength: 1, maxLength: 100 },
      currency: { type: 'string', minLength: 3, maxLength: 3 },
    });
    expect(document.components.schemas.AmountRequest.properties).toMatchObject({
      amount: { minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
    });
  });
});

describe('read-your-writes in /docs-json', () => {
  it.each(Object.entries(PROJECTION_QUERIES))(
    '%s says it is served asynchronously by the %s projection and documents minPosition',
    (route, projection) => {
      const op = operation(route);
      const minPosition = op.parameters?.filter((parameter) => parameter.in === 'query' && parameter.name === 'minPosition') ?? [];
      expect(minPosition).toHaveLength(1);
      expect(minPosition[0]).toMatchObject({ required: false, schema: { type: expect.stringMatching(/^(integer|number)$/) } });
      expect(minPosition[0].description).toContain(`\`${projection}\``);
      expect(minPosition[0].description).toMatch(/asynchronous/i);
      expect(minPosition[0].description).toMatch(/position/);
      expect(minPosition[0].description).toMatch(/READ_YOUR_WRITES_TIMEOUT_MS/);
    },
  );

  it.each(Object.keys(PROJECTION_QUERIES))('%s documents the X-Min-Position header, the 503 answer and X-Projection-Position', (route) => {
    const op = operation(route);
    const header = op.parameters?.filter((parameter) => parameter.in === 'header' && parameter.name === 'X-Min-Position') ?? [];
    expect(header).toEqual([expect.objectContaining({ required: false, description: expect.stringMatching(/minPosition/) })]);

    const unavailable = op.responses['503'];
    expect(unavailable?.description).toMatch(/PROJECTION_NOT_CAUGHT_UP/);
    expect(unavailable?.description).toMatch(/Retry-After/);
    expect(Object.keys(unavailable?.content ?? {})).toEqual([PROBLEM]);

    const position = op.responses['200'].headers?.['X-Projection-Position'] as
      { description?: string; schema?: { type?: string } } | undefined;
    expect(position).toEqual(expect.objectContaining({ description: expect.stringMatching(/position/), schema: { type: 'integer' } }));
  });

  it('GET /events/live documents its connection caps: 429 LIVE_FEED_CLIENT_LIMIT and 503 LIVE_FEED_AT_CAPACITY, with Retry-After', () => {
    const op = operation('GET /events/live');
    expect(op.responses['429']?.description).toMatch(/LIVE_FEED_CLIENT_LIMIT/);
    expect(op.responses['429']?.description).toMatch(/RATE_LIMITED/);
    expect(op.responses['503']?.description).toMatch(/LIVE_FEED_AT_CAPACITY/);
    for (const status of ['429', '503']) {
      expect(Object.keys(op.responses[status]?.content ?? {})).toEqual([PROBLEM]);
      expect(Object.keys(op.responses[status]?.headers ?? {})).toContain('Retry-After');
    }
  });

  it('POST /transfers documents its backpressure: 503 TRANSFER_BACKLOG_FULL as problem+json with Retry-After', () => {
    const op = operation('POST /transfers');
    expect(op.responses['503']?.description).toMatch(/TRANSFER_BACKLOG_FULL/);
    expect(Object.keys(op.responses['503']?.content ?? {})).toEqual([PROBLEM]);
    expect(Object.keys(op.responses['503']?.headers ?? {})).toContain('Retry-After');
  });

  // Regression: the 503 answer carried Retry-After without the document listing it.
  it.each(Object.keys(PROJECTION_QUERIES))('%s documents the Retry-After header of its 503 answer', (route) => {
    expect(Object.keys(operation(route).responses['503']?.headers ?? {})).toContain('Retry-After');
  });

  it('only the projection-backed queries take minPosition or answer 503: not the commands, not the history', () => {
    for (const { route, operation: op } of operations().filter(({ route }) => !(route in PROJECTION_QUERIES))) {
      const names = (op.parameters ?? []).map((parameter) => parameter.name);
      expect({ route, names }).toEqual({ route, names: expect.not.arrayContaining(['minPosition', 'X-Min-Position']) });
      // The live feed's 503 is its connection cap, POST /transfers' its backlog bound (both documented
      // below), readiness's its verdict, an account command's a queue too long on its account
      // (STREAM_BUSY): not a projection's.
      if (COMMANDS.includes(route)) expect(op.responses['503']?.description).not.toMatch(/PROJECTION_NOT_CAUGHT_UP/);
      else if (route !== 'GET /events/live' && route !== 'POST /transfers' && route !== 'GET /health/ready')
        expect({ route, statuses: Object.keys(op.responses) }).toEqual({ route, statuses: expect.not.arrayContaining(['503']) });
      const success = Object.entries(op.responses).find(([status]) => Number(status) < 300)?.[1];
      expect({ route, headers: Object.keys(success?.headers ?? {}) }).toEqual({
        route,
        headers: expect.not.arrayContaining(['X-Projection-Position']),
      });
    }
  });

  it('every command documents the position to pass as minPosition', () => {
    const result = document.components.schemas.CommandResult;
    expect(result.required?.sort()).toEqual(['id', 'position', 'version']);
    for (const route of ['POST /accounts', ...COMMANDS]) {
      const success = operation(route).responses[route === 'POST /accounts' ? '201' : '200'];
      expect({ route, schema: success.content?.['application/json']?.schema }).toEqual({
        route,
        schema: { $ref: '#/components/schemas/CommandResult' },
      });
    }
  });
});

describe('every answer an operation gives is documented', () => {
  /** The path of an operation with an unknown id (or projection name) in it: refused, nothing written. */
  const unknownIds = (path: string) => path.replace('{id}', randomUUID()).replace('{name}', 'no-such-projection');

  /** Requests of one operation that the service answers without doing anything. */
  const probes: Record<string, { path?: (path: string) => string; request?: (request: Test) => Test }> = {
    'no body': {},
    'malformed JSON': { request: (request) => request.set('Content-Type', 'application/json').send('{"amount": ') },
    'too deeply nested JSON': {
      request: (request) => request.set('Content-Type', 'application/json').send('['.repeat(40) + ']'.repeat(40)),
    },
    'a text/plain body': { request: (request) => request.set('Content-Type', 'text/plain').send('hello') },
    'a body over BODY_LIMIT_BYTES': {
      request: (request) => request.set('Content-Type', 'application/json').send(JSON.stringify({ filler: 'x'.repeat(200 * 1024) })),
    },
    'no token': { request: (request) => request.unset('Authorization') },
    'a token without the scope': { request: (request) => request.set('Authorization', `Bearer ${testToken([])}`) },
    'a path parameter that is not a valid escape': { path: (path) => path.replace('{id}', '%E0%A4%A').replace('{name}', '%zz') },
    'a path parameter that is not a UUID': { path: (path) => path.replace('{id}', 'not-a-uuid').replace('{name}', 'x'.repeat(300)) },
    'an unknown query parameter': { path: (path) => `${unknownIds(path)}?unknownParameter=1` },
  };

  it.each(Object.keys(probes))('%s: every operation answers a status its documentation lists', async (probe) => {
    const answered: Array<{ route: string; status: number; code: string; documented: boolean }> = [];
    for (const { route, operation: op } of operations()) {
      const [method, path] = route.split(' ');
      let request = t.http[method.toLowerCase() as 'get' | 'post']((probes[probe].path ?? unknownIds)(path));
      // The live feed would stream forever: a bad Last-Event-ID makes it answer at once.
      if (path === '/events/live') request = request.set('Last-Event-ID', 'not-a-position');
      const response = await (probes[probe].request ?? ((same: Test) => same))(request);
      answered.push({ route, status: response.status, code: response.body?.code, documented: String(response.status) in op.responses });
    }
    expect(answered.filter((answer) => !answer.documented)).toEqual([]);
    // and the description of that answer names the code it carried
    for (const { route, status, code } of answered.filter((answer) => answer.status >= 400)) {
      expect({ route, status, code, named: (operation(route).responses[String(status)].description ?? '').includes(code) }).toEqual({
        route,
        status,
        code,
        named: true,
      });
    }
  });

  it('every operation documents 400, 413, 415 and 500, and every secured one 401, 403 and 429', () => {
    for (const { route, operation: op } of operations()) {
      // Only the probes and the metrics are open (no token, never rate limited): test/auth.e2e-spec.ts names them.
      const secured = op.security !== undefined;
      expect({ route, statuses: Object.keys(op.responses) }).toEqual({
        route,
        statuses: expect.arrayContaining(['400', '413', '415', '500', ...(secured ? ['401', '403', '429'] : [])]),
      });
    }
  });
});
