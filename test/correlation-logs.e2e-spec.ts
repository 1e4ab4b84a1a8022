import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type { LoggerService } from '@nestjs/common';
import { type TestApp, startTestApp } from './support/test-app.js';

// The correlation id reaches the log lines through the command's metadata (nothing ambient): a
// command's debug lines (CommandRunner) carry the X-Correlation-Id of its request, and the transfer
// process's lines carry the transfer's, though it runs later, in the projection engine.

const lines: string[] = [];
const capture: LoggerService = {
  log: (message: unknown) => void lines.push(String(message)),
  debug: (message: unknown) => void lines.push(String(message)),
  verbose: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
  t.app.useLogger(capture);
});
afterAll(() => t.close());

async function linesMatching(pattern: RegExp, count: number): Promise<string[]> {
  const deadline = Date.now() + 30_000; // generous: the transfer process runs asynchronously, on a loaded machine
  for (;;) {
    const found = lines.filter((line) => pattern.test(line));
    if (found.length >= count || Date.now() > deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

it("a command's log lines carry its request's X-Correlation-Id; the transfer process's lines the transfer's", async () => {
  const opened = await t.http
    .post('/accounts')
    .set('X-Correlation-Id', `open-${randomUUID()}`)
    .send({ ownerName: 'Logs', currency: 'EUR' });
  const target = await t.http.post('/accounts').send({ ownerName: 'Logs', currency: 'EUR' });
  const depositCorrelation = `deposit-${randomUUID()}`;
  expect(
    (await t.http.post(`/accounts/${opened.body.id}/deposits`).set('X-Correlation-Id', depositCorrelation).send({ amount: 100 })).status,
  ).toBe(200);
  const [appended] = await linesMatching(new RegExp(`account-${opened.body.id}@2: appended`), 1);
  expect(appended).toBe(
    `[correlation ${depositCorrelation}] account-${opened.body.id}@2: appended MoneyDeposited at ${appended.split(' at ')[1]}`,
  );

  const transferCorrelation = `transfer-${randomUUID()}`;
  const accepted = await t.http
    .post('/transfers')
    .set('X-Correlation-Id', transferCorrelation)
    .send({ fromAccountId: opened.body.id, toAccountId: target.body.id, amount: 40 });
  expect(accepted.status).toBe(202);
  const processLines = await linesMatching(new RegExp(`transfer ${accepted.body.id}: `), 2);
  expect(processLines.map((line) => line.replace(/: .*/, ''))).toEqual([
    `[correlation ${transferCorrelation}] transfer ${accepted.body.id}`,
    `[correlation ${transferCorrelation}] transfer ${accepted.body.id}`,
  ]);
  expect(processLines[1]).toMatch(/: completed$/);
  // every command the process sent for it logged the transfer's correlation too (the last append
  // comes just after the "completed" line)
  await linesMatching(new RegExp(`^\\[correlation ${transferCorrelation}\\] .*: appended .*TransferCompleted`), 1);
  const stepLines = lines.filter((line) => line.includes(`[correlation ${transferCorrelation}]`) && line.includes(': appended '));
  expect(stepLines.flatMap((line) => line.replace(/^.*: appended (.*) at \d+$/, '$1').split(', ')).sort()).toEqual(
    [
      'SourceDebited',
      'TargetCredited',
      'TransferCompleted',
      'TransferCredited',
      'TransferDebited',
      'TransferRequested',
      'TransferSettled',
    ].sort(),
  );
});
