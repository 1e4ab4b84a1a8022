/**
 * Jest-only bridge for @nestjs/throttler, a CommonJS package that require()s the ESM-only NestJS 12
 * packages. Node >= 20.19 loads that natively (require(esm)), so the service runs it as published;
 * jest 30 on Node 20 cannot (its CommonJS loader refuses ESM before Node 24.9). This rewrites those
 * require() calls to read the very module instances the test file imported (see
 * nest-esm-for-cjs.setup.js), so the tests run the package's real code against the same NestJS.
 */
const { createHash } = require('node:crypto');

const BRIDGED = /require\("(@nestjs\/(?:common|core))"\)/g;

module.exports = {
  process(source) {
    return { code: source.replace(BRIDGED, (_match, name) => `globalThis.__nestEsmForCjs[${JSON.stringify(name)}]`) };
  },
  getCacheKey(source, path) {
    return createHash('sha256').update('nest-esm-for-cjs-1').update(path).update(source).digest('hex');
  },
};
