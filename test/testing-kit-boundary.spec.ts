import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';

// The test kit lives under src/ (features import it from their tests) but must never be part of the
// service: no module reachable from an entry point of the production build may import it.

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ENTRY_POINTS = ['src/main.ts', 'src/cli/ledger.ts'];
const IMPORT = /(?:import|export)\s[^'"]*?from\s+['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

/** Every project file reachable from the entry points through relative imports. */
function reachable(): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = readFileSync(join(root, file), 'utf8');
    for (const match of source.matchAll(IMPORT)) {
      const target = relative(root, resolve(root, dirname(file), match[1] ?? match[2])).replace(/\.js$/, '.ts');
      visit(target);
    }
  };
  ENTRY_POINTS.forEach(visit);
  return seen;
}

describe('the test kit stays out of the service', () => {
  it('no module reachable from main.ts or a CLI imports src/event-sourcing/testing/', () => {
    const files = reachable();
    expect(files).toContain('src/accounts/accounts.module.ts'); // the walk follows imports
    expect(files).toContain('src/event-sourcing/projection.ts');
    expect([...files].filter((file) => file.startsWith('src/event-sourcing/testing/'))).toEqual([]);
  });
});
