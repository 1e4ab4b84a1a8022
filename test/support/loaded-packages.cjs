// Preloaded into a service process (node --require) by production-start.e2e-spec.ts: when the
// process exits, prints the npm packages whose CommonJS modules it loaded (ESM imports of CommonJS
// packages go through the same cache), one line `LOADED_PACKAGES <json>`, so a test can tell which
// optional dependencies a configuration pulls into memory.
'use strict';
const Module = require('node:module');

process.on('exit', () => {
  const packages = new Set();
  for (const file of Object.keys(Module._cache)) {
    const match = /node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+)/.exec(file);
    if (match) packages.add(match[1].replace(/\\/g, '/'));
  }
  process.stdout.write(`\nLOADED_PACKAGES ${JSON.stringify([...packages].sort())}\n`);
});
