// Runs in every test file's module registry before the test: the NestJS modules that CommonJS
// packages require() get the same instances the test's imports get (see the transformer).
globalThis.__nestEsmForCjs = {
  '@nestjs/common': await import('@nestjs/common'),
  '@nestjs/core': await import('@nestjs/core'),
};
