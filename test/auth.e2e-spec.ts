import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { type Server, createServer } from 'node:http';
import { promisify } from 'node:util';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { JwtService } from '@nestjs/jwt';
import { ALL_SCOPES, SCOPES, type Scope } from '../src/auth/scopes.js';
import { DEVELOPMENT_JWT_SECRET } from '../src/config/app-config.js';
import { startAppProcess } from './support/app-process.js';
import { TEST_SUBJECT, testToken } from './support/auth.js';
import { expectProblemAnswer } from './support/problem.js';
import { connectSse } from './support/sse-client.js';
import { type TestApp, startTestApp } from './support/test-app.js';

/**
 * Access to the API: every route needs a bearer token with the scope of its side (commands, queries,
 * admin); the token's subject is the actor of the events it causes. Routes are enumerated from the
 * OpenAPI document, so a new endpoint that forgets its scope fails here.
 */

interface Operation {
  readonly method: 'get' | 'post';
  readonly path: string;
  readonly scope: Scope;
}

/** The scope an endpoint should need, from what it is: admin, the global feed, else by method. */
function expectedScope(method: string, path: string): Scope {
  if (path.startsWith('/admin')) return SCOPES.admin;
  if (path.startsWith('/events')) return SCOPES.events;
  return method === 'post' ? SCOPES.commands : SCOPES.queries;
}

/**
 * The only routes open without a token: what the platform calls (Kubernetes probes, the Prometheus
 * scraper), which carries no token. Named one by one, so that a route forgetting its scope still fails.
 */
const PUBLIC_PATHS = ['/health/live', '/health/ready', '/metrics'];

/** A concrete URL for an OpenAPI path template: ids become fresh UUIDs, a projection name a real one. */
function concrete(path: string): string {
  return path.replace('{name}', 'account-summary').replace(/\{[^}]+\}/g, () => randomUUID());
}

const execFileAsync = promisify(execFile);

let t: TestApp;
let operations: Operation[];
let publicOperations: string[];

const eventCount = async () => Number((await t.dataSource.query('SELECT count(*)::int AS n FROM events'))[0].n);

function send(operation: Operation, token?: string) {
  const url = concrete(operation.path);
  const pending = operation.method === 'post' ? t.anonymous.post(url).send({}) : t.anonymous.get(url);
  return token === undefined ? pending : pending.set('Authorization', `Bearer ${token}`);
}

beforeAll(async () => {
  t = await startTestApp();
  const document = (await t.anonymous.get('/docs-json').expect(200)).body;
  publicOperations = Object.keys(document.paths).filter((path) => PUBLIC_PATHS.includes(path));
  operations = Object.entries(document.paths as Record<string, Record<string, unknown>>)
    .filter(([path]) => !PUBLIC_PATHS.includes(path))
    .flatMap(([path, methods]) =>
      Object.keys(methods)
        .filter((method): method is 'get' | 'post' => method === 'get' || method === 'post')
        .map((method) => ({ method, path, scope: expectedScope(method, path) })),
    );
});

afterAll(async () => {
  await t?.close();
});

describe('every endpoint of the OpenAPI document', () => {
  it('covers the whole API (commands, queries, the event feed and admin)', () => {
    expect(operations.length).toBeGreaterThanOrEqual(20);
    expect(new Set(operations.map((operation) => operation.scope))).toEqual(new Set(ALL_SCOPES));
  });

  it('leaves only the probes (and the metrics, when served) open, without documenting a token for them', async () => {
    expect(publicOperations).toEqual(expect.arrayContaining(['/health/live', '/health/ready']));
    const document = (await t.anonymous.get('/docs-json').expect(200)).body;
    for (const path of publicOperations) {
      expect({ path, security: document.paths[path].get.security }).toEqual({ path, security: undefined });
      expect({ path, status: (await t.anonymous.get(path)).status }).toEqual({ path, status: 200 });
    }
  });

  it('answers 401 UNAUTHENTICATED without a token, with WWW-Authenticate, and writes nothing', async () => {
    const before = await eventCount();
    for (const operation of operations) {
      const response = await send(operation);
      expectProblemAnswer(response, 401, 'UNAUTHENTICATED');
      expect(response.headers['www-authenticate']).toBe('Bearer realm="ledger"');
    }
    expect(await eventCount()).toBe(before);
  });

  it.each([
    ['a malformed token', 'not-a-jwt'],
    [
      'a token signed with another secret',
      new JwtService().sign({ scope: ALL_SCOPES.join(' ') }, { secret: 'x'.repeat(40), subject: 'mallory' }),
    ],
    [
      'an expired token',
      new JwtService().sign(
        { scope: ALL_SCOPES.join(' '), exp: Math.floor(Date.now() / 1000) - 60 },
        { secret: DEVELOPMENT_JWT_SECRET, subject: 'late' },
      ),
    ],
    [
      'a token without subject',
      new JwtService().sign({ scope: ALL_SCOPES.join(' ') }, { secret: DEVELOPMENT_JWT_SECRET, expiresIn: '1h' }),
    ],
    // A token that never expires is a credential that can never be taken back: refused.
    ['a token without exp', new JwtService().sign({ scope: ALL_SCOPES.join(' ') }, { secret: DEVELOPMENT_JWT_SECRET, subject: 'forever' })],
    [
      'an unsigned token (alg none)',
      `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'x', scope: ALL_SCOPES.join(' ') })).toString('base64url')}.`,
    ],
  ])('answers 401 INVALID_TOKEN to %s', async (_label, token) => {
    const before = await eventCount();
    for (const operation of operations) {
      const response = await send(operation, token);
      expectProblemAnswer(response, 401, 'INVALID_TOKEN');
      expect(response.headers['www-authenticate']).toContain('error="invalid_token"');
    }
    expect(await eventCount()).toBe(before);
  });

  it('answers 403 INSUFFICIENT_SCOPE to a token holding every scope but the one needed, and writes nothing', async () => {
    const before = await eventCount();
    for (const operation of operations) {
      const others = ALL_SCOPES.filter((scope) => scope !== operation.scope);
      const response = await send(operation, testToken(others));
      const body = expectProblemAnswer(response, 403, 'INSUFFICIENT_SCOPE');
      expect({ path: operation.path, requiredScope: body.requiredScope }).toEqual({ path: operation.path, requiredScope: operation.scope });
    }
    expect(await eventCount()).toBe(before);
  });

  it('lets a token with only the needed scope through (the answer is the endpoint’s own)', async () => {
    for (const operation of operations.filter((candidate) => candidate.path !== '/events/live')) {
      const response = await send(operation, testToken([operation.scope]));
      expect({ path: operation.path, refused: [401, 403].includes(response.status) }).toEqual({ path: operation.path, refused: false });
    }
    const server = t.app.getHttpServer().listen(0);
    try {
      const live = await connectSse(server.address().port, { token: testToken([SCOPES.events]) });
      live.close();
    } finally {
      server.close();
    }
  });

  // ledger:admin operates the service (rebuild, retry, skip); reading the feed is ledger:events, so a
  // consumer of the feed is not given the power to skip events, nor an operator the feed by default.
  it('the global feed needs ledger:events: ledger:admin alone is refused it, and ledger:events opens nothing else', async () => {
    const admin = testToken([SCOPES.admin]);
    const events = testToken([SCOPES.events]);
    for (const path of ['/events', '/events/live']) {
      const body = expectProblemAnswer(await t.anonymous.get(path).set('Authorization', `Bearer ${admin}`), 403, 'INSUFFICIENT_SCOPE');
      expect({ path, requiredScope: body.requiredScope }).toEqual({ path, requiredScope: SCOPES.events });
    }
    expect((await t.anonymous.get('/events').set('Authorization', `Bearer ${events}`)).status).toBe(200);
    for (const operation of operations.filter((candidate) => !candidate.path.startsWith('/events'))) {
      const response = await send(operation, events);
      expect({ path: operation.path, method: operation.method, status: response.status }).toEqual({
        path: operation.path,
        method: operation.method,
        status: 403,
      });
    }
  });

  it('is documented with the bearer scheme and its 401, 403 and 429 answers', async () => {
    const document = (await t.anonymous.get('/docs-json').expect(200)).body;
    expect(document.components.securitySchemes.bearer).toEqual(
      expect.objectContaining({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' }),
    );
    for (const operation of operations) {
      const documented = document.paths[operation.path][operation.method];
      expect({ path: operation.path, security: documented.security }).toEqual({ path: operation.path, security: [{ bearer: [] }] });
      expect(Object.keys(documented.responses)).toEqual(expect.arrayContaining(['401', '403', '429']));
    }
  });
});

describe('the actor', () => {
  it('of every event a request appends is the token’s subject', async () => {
    const alice = testToken([SCOPES.commands], 'alice@example.com');
    const opened = await t.anonymous
      .post('/accounts')
      .set('Authorization', `Bearer ${alice}`)
      .send({ ownerName: 'Alice', currency: 'EUR' })
      .expect(201);
    await t.anonymous
      .post(`/accounts/${opened.body.id}/deposits`)
      .set('Authorization', `Bearer ${testToken([SCOPES.commands], 'bob')}`)
      .send({ amount: 5 })
      .expect(200);
    const rows: Array<{ actor: string }> = await t.dataSource.query(
      `SELECT metadata->>'actor' AS actor FROM events WHERE stream_id = $1 ORDER BY version`,
      [`account-${opened.body.id}`],
    );
    expect(rows.map((row) => row.actor)).toEqual(['alice@example.com', 'bob']);
  });

  it('defaults to the tests’ own subject through the authenticated test client', async () => {
    const opened = await t.http.post('/accounts').send({ ownerName: 'Tester', currency: 'EUR' }).expect(201);
    const events = await t.http.get(`/accounts/${opened.body.id}/events`).expect(200);
    expect(events.body.items[0].metadata.actor).toBe(TEST_SUBJECT);
  });
});

describe('hardening headers', () => {
  it('sends helmet’s security headers and no X-Powered-By', async () => {
    const response = await t.http.get(`/accounts/${randomUUID()}`).expect(404);
    expect(response.headers['x-content-type-options']).toBe('nosniff');
    expect(response.headers['content-security-policy']).toContain("default-src 'self'");
    expect(response.headers['content-security-policy']).not.toContain('upgrade-insecure-requests');
    expect(response.headers['strict-transport-security']).toMatch(/max-age=\d+/);
    expect(response.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(response.headers['x-powered-by']).toBeUndefined();
  });

  it('sends no CORS headers when CORS_ORIGINS is empty', async () => {
    const response = await t.anonymous
      .options('/accounts')
      .set('Origin', 'https://evil.example')
      .set('Access-Control-Request-Method', 'POST');
    expect(response.headers['access-control-allow-origin']).toBeUndefined();
  });
});

describe('rate limits per client, separate for commands and queries', () => {
  let limited: TestApp;

  beforeAll(async () => {
    limited = await startTestApp({
      RATE_LIMIT_ENABLED: 'true',
      RATE_LIMIT_COMMANDS_PER_MINUTE: '3',
      RATE_LIMIT_QUERIES_PER_MINUTE: '5',
      CORS_ORIGINS: 'https://app.example, https://admin.example',
    });
  });

  afterAll(async () => {
    await limited?.close();
  });

  it('answers 429 RATE_LIMITED with Retry-After past the commands budget, writing nothing; queries and other clients go on', async () => {
    const carol = `Bearer ${testToken(ALL_SCOPES, 'carol')}`;
    for (let index = 0; index < 3; index++) {
      await limited.anonymous
        .post('/accounts')
        .set('Authorization', carol)
        .send({ ownerName: `Carol ${index}`, currency: 'EUR' })
        .expect(201);
    }
    const before = Number((await limited.dataSource.query('SELECT count(*)::int AS n FROM events'))[0].n);
    const refused = await limited.anonymous.post('/accounts').set('Authorization', carol).send({ ownerName: 'Carol 4', currency: 'EUR' });
    expectProblemAnswer(refused, 429, 'RATE_LIMITED');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number((await limited.dataSource.query('SELECT count(*)::int AS n FROM events'))[0].n)).toBe(before);

    // The queries budget is untouched by the commands…
    await limited.anonymous.get('/accounts').set('Authorization', carol).expect(200);
    // …and another client has a budget of its own.
    await limited.anonymous
      .post('/accounts')
      .set('Authorization', `Bearer ${testToken(ALL_SCOPES, 'dave')}`)
      .send({ ownerName: 'Dave', currency: 'EUR' })
      .expect(201);
  });

  it('limits queries with their own budget', async () => {
    const erin = `Bearer ${testToken(ALL_SCOPES, 'erin')}`;
    const statuses: number[] = [];
    for (let index = 0; index < 7; index++) statuses.push((await limited.anonymous.get('/accounts').set('Authorization', erin)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
    await limited.anonymous.post('/accounts').set('Authorization', erin).send({ ownerName: 'Erin', currency: 'EUR' }).expect(201);
  });

  it('allows the configured CORS origins only, exposing the headers a browser client needs', async () => {
    const allowed = await limited.anonymous
      .options('/accounts')
      .set('Origin', 'https://app.example')
      .set('Access-Control-Request-Method', 'POST')
      .set('Access-Control-Request-Headers', 'authorization, content-type, idempotency-key');
    expect(allowed.status).toBe(204);
    expect(allowed.headers['access-control-allow-origin']).toBe('https://app.example');
    expect(allowed.headers['access-control-allow-headers']).toMatch(/Authorization/);
    const answer = await limited.anonymous
      .get('/accounts')
      .set('Origin', 'https://admin.example')
      .set('Authorization', `Bearer ${testToken()}`);
    expect(answer.headers['access-control-allow-origin']).toBe('https://admin.example');
    expect(answer.headers['access-control-expose-headers']).toMatch(/ETag/);

    const refused = await limited.anonymous
      .options('/accounts')
      .set('Origin', 'https://evil.example')
      .set('Access-Control-Request-Method', 'POST');
    expect(refused.headers['access-control-allow-origin']).toBeUndefined();
  });
});

describe('verification keys', () => {
  it('RS256 with JWT_PUBLIC_KEY: accepts tokens of the private key, refuses an HS256 token (no algorithm confusion)', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const app = await startTestApp({ JWT_PUBLIC_KEY: publicKey.export({ type: 'spki', format: 'pem' }).toString() });
    try {
      const good = new JwtService().sign(
        { scope: SCOPES.queries },
        { privateKey, algorithm: 'RS256', subject: 'rsa-client', expiresIn: '5m' },
      );
      await app.anonymous.get('/accounts').set('Authorization', `Bearer ${good}`).expect(200);
      expectProblemAnswer(await app.anonymous.get('/accounts').set('Authorization', `Bearer ${testToken()}`), 401, 'INVALID_TOKEN');
      const forever = new JwtService().sign({ scope: SCOPES.queries }, { privateKey, algorithm: 'RS256', subject: 'rsa-client' });
      const refused = expectProblemAnswer(
        await app.anonymous.get('/accounts').set('Authorization', `Bearer ${forever}`),
        401,
        'INVALID_TOKEN',
      );
      expect(refused.detail).toMatch(/exp/);
    } finally {
      await app.close();
    }
  });

  it('ES256 keys from a JWKS URL, chosen by kid; issuer and audience enforced', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwks = { keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'key-1', use: 'sig', alg: 'ES256' }] };
    const server: Server = createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks)),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
    const app = await startTestApp({ JWT_JWKS_URL: jwksUrl, JWT_ISSUER: 'https://idp.example', JWT_AUDIENCE: 'ledger-api' });
    const sign = (options: Record<string, unknown>) =>
      new JwtService().sign({ scope: SCOPES.queries }, { privateKey, algorithm: 'ES256', subject: 'es-client', ...options });
    try {
      const good = sign({ keyid: 'key-1', issuer: 'https://idp.example', audience: 'ledger-api', expiresIn: '5m' });
      await app.anonymous.get('/accounts').set('Authorization', `Bearer ${good}`).expect(200);
      for (const bad of [
        sign({ keyid: 'key-1', issuer: 'https://idp.example', audience: 'ledger-api' }), // no exp
        sign({ keyid: 'key-1', issuer: 'https://other.example', audience: 'ledger-api', expiresIn: '5m' }),
        sign({ keyid: 'key-1', issuer: 'https://idp.example', audience: 'another-api', expiresIn: '5m' }),
        sign({ keyid: 'unknown-key', issuer: 'https://idp.example', audience: 'ledger-api', expiresIn: '5m' }),
      ]) {
        expectProblemAnswer(await app.anonymous.get('/accounts').set('Authorization', `Bearer ${bad}`), 401, 'INVALID_TOKEN');
      }
    } finally {
      await app.close();
      server.close();
    }
  });
});

describe('tokens the service issues', () => {
  it('always carry exp, and every scope by default (ledger token, the tests’ tokens)', async () => {
    const { stdout } = await execFileAsync(process.execPath, ['dist/src/cli/ledger.js', 'token'], {
      cwd: process.cwd(),
      env: { ...process.env, JWT_SECRET: '' },
    });
    for (const token of [stdout.trim(), testToken()]) {
      const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
      expect(claims.scope.split(' ').sort()).toEqual([...ALL_SCOPES].sort());
      expect(claims.exp - claims.iat).toBe(3600);
      expect(claims.scope.split(' ')).toContain(SCOPES.events);
    }
  });
});

describe('the service process', () => {
  it('prints a ready-to-use development token when it runs on the development secret', async () => {
    const service = await startAppProcess(t.database.url, { PROJECTIONS_ENABLED: 'false' });
    try {
      const printed = /(eyJ[\w-]+\.[\w-]+\.[\w-]+)/.exec(service.output())?.[1];
      expect(printed).toBeDefined();
      for (const path of ['/admin/projections', '/events', '/accounts']) {
        const response = await fetch(`${service.url}${path}`, { headers: { authorization: `Bearer ${printed}` } });
        expect({ path, status: response.status }).toEqual({ path, status: 200 });
      }
      const claims = JSON.parse(Buffer.from(printed!.split('.')[1], 'base64url').toString());
      expect(claims.scope.split(' ').sort()).toEqual([...ALL_SCOPES].sort());
      expect(claims.exp - claims.iat).toBe(30 * 24 * 3600);
    } finally {
      await service.stop();
    }
  });

  it('refuses to start in production without a JWT key of its own', async () => {
    await expect(startAppProcess(t.database.url, { NODE_ENV: 'production' })).rejects.toThrow(/Cannot start: .*JWT_SECRET/);
    await expect(startAppProcess(t.database.url, { NODE_ENV: 'production', JWT_SECRET: DEVELOPMENT_JWT_SECRET })).rejects.toThrow(
      /not to the development default/,
    );
  });
});
