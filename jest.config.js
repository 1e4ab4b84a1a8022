/** @type {import('jest').Config} */
export default {
  // NestJS 12 is ESM-only: jest runs in ESM mode (see "test" in package.json) with ts-jest.
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
    // @nestjs/throttler is CommonJS requiring ESM-only NestJS: bridged for jest only (see the file).
    '/node_modules/@nestjs/throttler/.+\\.js$': '<rootDir>/test/support/jest/nest-esm-for-cjs.transformer.cjs',
  },
  transformIgnorePatterns: ['/node_modules/(?!@nestjs/throttler/)'],
  setupFiles: ['<rootDir>/test/support/jest/nest-esm-for-cjs.setup.js'],
  roots: ['<rootDir>/src', '<rootDir>/test'],
  testMatch: ['**/*.spec.ts', '**/*.int-spec.ts', '**/*.e2e-spec.ts'],
  testEnvironment: 'node',
  // One real PostgreSQL for the run (embedded unless TEST_DATABASE_URL); a database per test file.
  globalSetup: '<rootDir>/test/support/global-setup.js',
  globalTeardown: '<rootDir>/test/support/global-teardown.js',
  maxWorkers: 2,
  // A worker keeps memory from every file it ran (ESM module registries): past this after a file it
  // is replaced, so that a late file's own allocations do not meet V8's heap limit (a worker ran out
  // of memory in CI at its ~60th file).
  workerIdleMemoryLimit: '1GB',
  testTimeout: 60_000,
};
