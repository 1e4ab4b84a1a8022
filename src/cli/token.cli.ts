// `npm run token -- [--scopes ledger:commands,ledger:queries,ledger:events,ledger:admin] [--sub alice] [--ttl 1h]`
// prints a bearer token signed with the configured JWT_SECRET (or the development default). Every
// scope by default; it always expires (the service refuses a token without exp).
import { parseArgs } from 'node:util';
import { ALL_SCOPES } from '../auth/scopes.js';
import { issueToken } from '../auth/token-issuer.js';
import { loadConfig, loadDotEnv } from '../config/app-config.js';

try {
  const { values } = parseArgs({
    options: {
      scopes: { type: 'string', default: ALL_SCOPES.join(',') },
      sub: { type: 'string', default: 'developer' },
      ttl: { type: 'string', default: '1h' },
    },
  });
  const scopes = values.scopes
    .split(',')
    .map((scope) => scope.trim())
    .filter(Boolean);
  const unknown = scopes.filter((scope) => !(ALL_SCOPES as readonly string[]).includes(scope));
  if (unknown.length) throw new Error(`unknown scope(s) ${unknown.join(', ')}; the scopes are ${ALL_SCOPES.join(', ')}`);
  loadDotEnv();
  console.log(issueToken(loadConfig(), { subject: values.sub, scopes, expiresIn: values.ttl }));
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
}
