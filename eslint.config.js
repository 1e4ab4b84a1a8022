// ESLint (flat config), run in CI by `npm run lint`. typescript-eslint's strictest type-checked sets,
// with the few rules that fight this code base's deliberate style switched off or tuned, each with why.
// Formatting is Prettier's job (`npm run format:check`); import boundaries are dependency-cruiser's.
import eslint from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  // client/ledger-api.d.ts is generated and checked byte for byte against its generator.
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'bench/results/', '.data/', 'client/ledger-api.d.ts'] },
  eslint.configs.recommended,
  tseslint.configs.strictTypeChecked,
  tseslint.configs.stylisticTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // Template literals build log lines and problem details from numbers and bigints on purpose.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true, allowNullish: true }],
      // Nest modules, CQRS commands and queries are classes with only static members or an empty body by design.
      '@typescript-eslint/no-extraneous-class': ['error', { allowWithDecorator: true, allowEmpty: true }],
      // `_` marks a parameter a signature requires but the body does not use (handlers, reducers).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // `T[]` for simple element types, `Array<{ ... }>` for object and union types: reads better, as written.
      '@typescript-eslint/array-type': ['error', { default: 'array-simple' }],
      // `(x) => doSomething(x)` as a callback is idiomatic; the rule still catches `return voidCall()` elsewhere.
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      // Without noUncheckedIndexedAccess the rule takes `rows[0]` as always defined and asks to delete the
      // checks for an empty result set: following it would remove guards the database needs.
      '@typescript-eslint/no-unnecessary-condition': 'off',
      // Classes are data shapes here (Swagger DTOs, event classes built from their data): an object literal
      // of the class's shape is what Nest's serializer and the event registry expect.
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
      // Event classes are looked up by `event.constructor`, which TypeScript types as `Function`.
      '@typescript-eslint/no-unsafe-function-type': 'off',
      // `async` on a method whose contract returns a Promise turns a throw into a rejection; removing it, as
      // the rule asks when there is no await, would change how errors surface.
      '@typescript-eslint/require-await': 'off',
      // TypeORM's `query<T = any>()` infers T from the `as` around it, so the rule calls that assertion
      // unnecessary; its autofix removes it and leaves the rows typed `any`.
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      // `!` marks invariants the types cannot see (a Map entry just set, a field a state guard proved set),
      // next to the code that guarantees them; a throw in their place would be an untestable dead branch.
      '@typescript-eslint/no-non-null-assertion': 'off',
      // `||` on strings treats an empty environment variable as unset, on purpose.
      '@typescript-eslint/prefer-nullish-coalescing': ['error', { ignorePrimitives: { string: true } }],
    },
  },
  {
    // Tests and benchmarks read untyped JSON (supertest bodies, SSE payloads, pg rows): `any` there is the
    // shape under test, checked by the assertions themselves (and so are sums and messages built from it).
    files: ['test/**/*.ts', 'bench/**/*.ts', 'src/**/*.spec.ts', 'src/event-sourcing/testing/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/restrict-plus-operands': 'off',
      '@typescript-eslint/restrict-template-expressions': 'off',
    },
  },
  {
    // Plain JavaScript (jest config and setup, CommonJS bridge): no type information to check with.
    files: ['**/*.js', '**/*.cjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', setInterval: 'readonly', require: 'readonly', module: 'writable' },
    },
  },
  {
    // The jest transformer must be CommonJS (jest loads transformers with require).
    files: ['**/*.cjs'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
