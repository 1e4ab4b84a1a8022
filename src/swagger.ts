import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';

/** Swagger UI at /docs, the OpenAPI document at /docs-json (built when first asked for). */
export function setUpSwagger(app: INestApplication): void {
  const config = new DocumentBuilder()
    .setTitle('Ledger — CQRS + event sourcing on NestJS and PostgreSQL')
    .setDescription(
      [
        'Commands (POST) append immutable events to a PostgreSQL event store through the account aggregate; queries (GET) read denormalised read tables kept by projections.',
        'Money is an integer number of minor units (cents). Every error is `application/problem+json` with a stable `code`.',
        'Every endpoint needs a bearer token (JWT) with a scope: `ledger:commands` for commands, `ledger:queries` for queries, `ledger:events` for the global feed (`/events`, `/events/live`), `ledger:admin` for projection admin. Tokens must carry `exp`. Without a valid token: 401; with the wrong scope: 403. Click Authorize and paste a token: the development server prints one at start, and `npm run token` makes others.',
        'Every response carries `X-Correlation-Id` (yours if you sent a valid one, otherwise a new one); it is stored in the metadata of every event the request appends.',
      ].join('\n\n'),
    )
    .setVersion('0.1.0')
    .addBearerAuth({
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'JWT',
      description: 'A JWT whose `scope` claim holds ledger:commands, ledger:queries, ledger:events and/or ledger:admin, and an `exp`',
    })
    .build();
  // A factory: SwaggerModule builds the document on the first request for /docs or /docs-json and
  // keeps it, so a service nobody asks for its documentation never holds it (issue 14: peak RSS).
  const document = () => addCommonHeaders(SwaggerModule.createDocument(app, config, { operationIdFactory: operationId }));
  SwaggerModule.setup('docs', app, document, {
    jsonDocumentUrl: 'docs-json',
    swaggerOptions: { persistAuthorization: true }, // the pasted token survives a page reload
  });
}

/** The part of an OpenAPI operation these functions touch. */
interface Operation {
  parameters?: unknown[];
  responses: Record<string, { headers?: Record<string, unknown> }>;
}

/**
 * Operation ids are part of the contract (generated clients name their methods after them): the
 * accounts controller was split by concern (commands, queries, history) and keeps its ids.
 */
const OPERATION_ID_PREFIX: Record<string, string> = {
  AccountCommandsController: 'AccountsController',
  AccountQueriesController: 'AccountsController',
  AccountHistoryController: 'AccountsController',
};

function operationId(controllerKey: string, methodKey: string): string {
  return `${OPERATION_ID_PREFIX[controllerKey] ?? controllerKey}_${methodKey}`;
}

function addCommonHeaders(document: OpenAPIObject): OpenAPIObject {
  for (const [route, path] of Object.entries(document.paths)) {
    for (const [method, candidate] of Object.entries(path) as Array<[string, unknown]>) {
      if (typeof candidate !== 'object' || candidate === null || !('responses' in candidate)) continue;
      const operation = candidate as Operation;
      if (method === 'post') addIdempotencyKey(operation);
      addRequestProblems(operation, route.includes('{'));
      operation.parameters = [
        ...(operation.parameters ?? []),
        {
          name: 'X-Correlation-Id',
          in: 'header',
          required: false,
          description:
            'Ties this request to the events it appends (1–128 of A–Z a–z 0–9 . _ : -); a new one is made when absent or invalid.',
          schema: { type: 'string' },
        },
      ];
      for (const response of Object.values(operation.responses)) {
        response.headers = {
          ...response.headers,
          'X-Correlation-Id': { description: 'The correlation id of this request', schema: { type: 'string' } },
        };
      }
    }
  }
  return document;
}

/** Every POST accepts Idempotency-Key (see IdempotencyInterceptor); say so, and what it can answer. */
function addIdempotencyKey(operation: { parameters?: unknown[]; responses: Record<string, unknown> }): void {
  operation.parameters = [
    ...(operation.parameters ?? []),
    {
      name: 'Idempotency-Key',
      in: 'header',
      required: false,
      description:
        'Makes a retry safe: the same key with the same request replays the original answer (status, headers, body; marked Idempotent-Replayed: true) without doing anything again. Keys are kept IDEMPOTENCY_KEY_TTL_HOURS; only successful answers are stored. 1–255 visible ASCII characters.',
      schema: { type: 'string', maxLength: 255 },
    },
  ];
  const problem = (description: string) => ({
    description,
    content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/ProblemDetailsDto' } } },
  });
  const responses = operation.responses;
  responses['409'] ??= problem('');
  responses['422'] ??= problem('');
  responses['400'] ??= problem('');
  appendDescription(responses['409'], 'IDEMPOTENCY_KEY_IN_USE: a request with the same Idempotency-Key is still running');
  appendDescription(responses['422'], 'IDEMPOTENCY_KEY_REUSED: the Idempotency-Key was used for a different request');
  appendDescription(responses['400'], 'INVALID_IDEMPOTENCY_KEY');
}

/**
 * Every request's body is parsed and checked before routing (app.factory.ts: jsonOnly, the JSON body
 * parser, jsonBodyGuard), whatever the method: a GET that sends a body can be refused too. And Express
 * refuses a path parameter that is not valid percent-encoding before any handler runs. Say so on
 * every operation, adding only the codes its own documentation does not name already.
 */
function addRequestProblems(operation: { responses: Record<string, unknown> }, hasPathParameters: boolean): void {
  const problem = () => ({
    description: '',
    content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/ProblemDetailsDto' } } },
  });
  const responses = operation.responses;
  const answers: Record<string, Array<[code: string, text: string]>> = {
    '400': [
      ['MALFORMED_JSON', 'MALFORMED_JSON: a body that is not valid JSON'],
      ['BODY_TOO_DEEP', 'BODY_TOO_DEEP: a body nested more than 32 levels'],
      ['INVALID_TEXT', 'INVALID_TEXT: a string with an unpaired surrogate in the body'],
      ['REQUEST_SIZE_INVALID', 'REQUEST_SIZE_INVALID: a body whose length is not its Content-Length'],
      ...(hasPathParameters
        ? [['BAD_REQUEST', 'BAD_REQUEST: a path parameter that is not valid percent-encoding'] as [string, string]]
        : []),
    ],
    '413': [['PAYLOAD_TOO_LARGE', 'PAYLOAD_TOO_LARGE: a body over BODY_LIMIT_BYTES']],
    '415': [['UNSUPPORTED_MEDIA_TYPE', 'UNSUPPORTED_MEDIA_TYPE: a body that is not application/json']],
  };
  for (const [status, codes] of Object.entries(answers)) {
    responses[status] ??= problem();
    const existing = (responses[status] as { description?: string }).description ?? '';
    for (const [code, text] of codes) if (!existing.includes(code)) appendDescription(responses[status], text);
  }
}

function appendDescription(response: unknown, text: string): void {
  const target = response as { description?: string };
  target.description = target.description ? `${target.description}; ${text}` : text;
}
