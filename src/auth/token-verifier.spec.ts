import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { JwtService } from '@nestjs/jwt';
import { loadConfig } from '../config/app-config.js';
import { issueToken } from './token-issuer.js';
import { InvalidTokenError, TokenVerifier } from './token-verifier.js';

/**
 * The verifier remembers the tokens it accepted: remembering must never let a token through that a
 * full verification would refuse now (expired), nor a token it never verified.
 */
describe('TokenVerifier', () => {
  const config = loadConfig({});
  let now = 0;
  beforeEach(() => {
    now = 1_800_000_000_000; // on a whole second
    jest.spyOn(Date, 'now').mockImplementation(() => now);
  });
  afterEach(() => {
    jest.restoreAllMocks();
  });

  const refusal = (promise: Promise<unknown>) =>
    promise.then(
      () => 'accepted',
      (error: unknown) => (error instanceof InvalidTokenError ? error.message : `unexpected ${String(error)}`),
    );

  it('refuses a token it accepted before from the second of its exp on, as a first verification would', async () => {
    const verifier = new TokenVerifier(new JwtService(), config);
    const token = issueToken(config, { subject: 'alice', scopes: ['ledger:commands'], expiresIn: '10s' });
    const principal = await verifier.verify(token);
    expect(principal.subject).toBe('alice');
    expect([...principal.scopes]).toEqual(['ledger:commands']);
    now += 9_999;
    expect((await verifier.verify(token)).subject).toBe('alice'); // remembered: still valid
    now += 1; // the exp second itself
    expect(await refusal(verifier.verify(token))).toBe('jwt expired');
    expect(await refusal(new TokenVerifier(new JwtService(), config).verify(token))).toBe('jwt expired');
    now -= 1; // refused tokens are not remembered: verified afresh (valid again on a clock set back)
    expect((await verifier.verify(token)).subject).toBe('alice');
  });

  it('never answers for a token it did not verify: a changed signature or payload of a remembered token is refused', async () => {
    const verifier = new TokenVerifier(new JwtService(), config);
    const token = issueToken(config, { subject: 'alice', scopes: ['ledger:queries'], expiresIn: '1h' });
    await verifier.verify(token);
    const [header, payload, signature] = token.split('.');
    const otherSignature = `${signature.slice(0, -2)}${signature.endsWith('AA') ? 'BA' : 'AA'}`;
    expect(await refusal(verifier.verify(`${header}.${payload}.${otherSignature}`))).toBe('invalid signature');
    const richer = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), scope: 'ledger:admin' }),
    ).toString('base64url');
    expect(await refusal(verifier.verify(`${header}.${richer}.${signature}`))).toBe('invalid signature');
    expect([...(await verifier.verify(token)).scopes]).toEqual(['ledger:queries']);
  });

  it('keeps answering right when more clients than it remembers take turns', async () => {
    const verifier = new TokenVerifier(new JwtService(), config);
    const tokens = Array.from({ length: 1_200 }, (_, index) =>
      issueToken(config, { subject: `client-${index}`, scopes: ['ledger:queries'], expiresIn: '1h' }),
    );
    for (const round of [1, 2]) {
      for (const [index, token] of tokens.entries()) {
        const { subject } = await verifier.verify(token);
        if (subject !== `client-${index}`) throw new Error(`round ${round}: token ${index} answered as ${subject}`);
      }
    }
  });
});
