import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';

/** Swagger UI at /docs, the OpenAPI document at /docs-json. */
export function setUpSwagger(app: INestApplication): void {
  const config = new DocumentBuilder()
    .setTitle('Ledger — CQRS + event sourcing on NestJS and PostgreSQL')
    .setDescription(
      [
        'Commands (POST) append immutable events to a PostgreSQL event store through the account aggregate; queries (GET) read denormalised read tables kept by projections.',
        'Money is an integer number of minor units (cents). Every error is `application/problem+json` with a stable `code`.',
        'Every response carries `X-Correlation-Id` (yours if you sent a valid one, otherwise a new one); it is stored in the metadata of every event the request appends.',
      ].join('\n\n'),
    )
    .setVersion('0.1.0')
    .build();
  const document = addCorrelationHeader(SwaggerModule.createDocument(app, config));
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs-json' });
}

function addCorrelationHeader(document: OpenAPIObject): OpenAPIObject {
  for (const path of Object.values(document.paths)) {
    for (const operation of Object.values(path)) {
      if (typeof operation !== 'object' || operation === null || !('responses' in operation)) continue;
      operation.parameters = [
        ...(operation.parameters ?? []),
        {
          name: 'X-Correlation-Id',
          in: 'header',
          required: false,
          description: 'Ties this request to the events it appends (1–128 of A–Z a–z 0–9 . _ : -); a new one is made when absent or invalid.',
          schema: { type: 'string' },
        },
      ];
      for (const response of Object.values(operation.responses) as Array<{ headers?: Record<string, unknown> }>) {
        response.headers = {
          ...response.headers,
          'X-Correlation-Id': { description: 'The correlation id of this request', schema: { type: 'string' } },
        };
      }
    }
  }
  return document;
}
