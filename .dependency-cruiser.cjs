// Import boundaries, checked in CI by `npm run boundaries` (README, "Development").
//
// Features are the folders of src/ that hold one business capability. The core (src/event-sourcing)
// knows none of them; a feature reaches another only through that feature's index.ts.
//
// Domain files are named by a rule: at the root of a feature folder, a one-word name, optionally with
// the suffix .events, .errors or .upcasters (index.ts, the public face, excepted): src/accounts/account.ts,
// account.events.ts, account.errors.ts, account.upcasters.ts, src/transfers/transfer.ts,
// transfer.events.ts. They are pure (deciders, event classes, domain errors): no framework, no
// database, and from the core only its pure entry point src/event-sourcing/domain.ts. Anything else
// (handlers, controllers, modules, requests) has a role suffix or a hyphenated name: not a domain file.
const FEATURES = '(accounts|transfers|event-log|admin)';
const DOMAIN_FILE = `^src/${FEATURES}/[a-z]+(\\.(events|errors|upcasters))?\\.ts$`;
const INDEX_FILE = `^src/${FEATURES}/index\\.ts$`;

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A cycle makes the load order (and so decorators and DI tokens) depend on which file is imported first.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'core-imports-no-feature',
      severity: 'error',
      comment: 'The event-sourcing core is generic: it must not know any feature of the ledger.',
      from: { path: '^src/event-sourcing/' },
      to: { path: `^src/${FEATURES}/` },
    },
    {
      name: 'feature-through-index',
      severity: 'error',
      comment: "A feature reaches another only through that feature's public index.ts, so its inner files can move freely.",
      from: { path: `^src/${FEATURES}/` },
      to: { path: `^src/${FEATURES}/`, pathNot: [`^src/$1/`, `^src/${FEATURES}/index\\.ts$`] },
    },
    {
      name: 'domain-imports-no-framework',
      severity: 'error',
      comment: 'Domain files are pure: loading an event class or a decider must not load Nest, TypeORM or pg.',
      from: { path: DOMAIN_FILE, pathNot: INDEX_FILE },
      to: { path: '^node_modules/(@nestjs/|typeorm/|pg/|pg-)' },
    },
    {
      name: 'domain-imports-pure-core-only',
      severity: 'error',
      comment: "Domain files use the core's pure entry point (domain.ts), never its barrel, which loads the persistence stack.",
      from: { path: DOMAIN_FILE, pathNot: INDEX_FILE },
      to: { path: '^src/event-sourcing/', pathNot: '^src/event-sourcing/(domain|decider|event-type|upcaster)\\.ts$' },
    },
    {
      name: 'domain-reaches-no-framework',
      severity: 'error',
      comment: 'Not even indirectly: whatever a domain file loads, transitively, stays free of Nest, TypeORM and pg.',
      from: { path: DOMAIN_FILE, pathNot: INDEX_FILE },
      to: { path: '^node_modules/(@nestjs/|typeorm/|pg/|pg-)', reachable: true },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that cannot be resolved is a typo or a missing dependency.',
      from: {},
      // test/support/*.js load the compiled dist/, which exists only after `tsc` (run after this check).
      to: { couldNotResolve: true, pathNot: '^(\\.\\./)+dist/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|bench/results)/' },
    // Type-only imports count: a domain file must not even name a persistence type.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.cjs', '.mjs', '.d.ts'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
