import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The node flags a build's service runs with in production: those of its package.json's `start:prod`
 * (`node <flags> dist/src/main.js`), e.g. the V8 heap flags of issue 14. The HTTP benchmark starts
 * each build's service with its own (none for a build from before them), so it measures the service
 * as it is deployed. A build without a readable package.json or `start:prod` gets none.
 */
export function productionNodeFlags(buildRoot: string): string[] {
  let script: unknown;
  try {
    script = (JSON.parse(readFileSync(join(buildRoot, 'package.json'), 'utf8')) as { scripts?: Record<string, unknown> }).scripts?.[
      'start:prod'
    ];
  } catch {
    return [];
  }
  if (typeof script !== 'string') return [];
  const words = script.trim().split(/\s+/);
  if (words[0] !== 'node') return [];
  const flags: string[] = [];
  for (const word of words.slice(1)) {
    if (!word.startsWith('--')) break; // the entry point: flags end here
    flags.push(word);
  }
  return flags;
}
