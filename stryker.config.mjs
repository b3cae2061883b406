// @ts-check
/**
 * `npm run mutate`: StrykerJS over the modules that decide things, with the `command` test runner driving
 * ava on the fast tests (no lab, no root). Not part of `npm test` or CI: every mutant reruns the whole command, so the
 * full set takes hours on 2 cores. To score one module with only the tests that exercise it (minutes), narrow both:
 *
 *   KUBETLS_MUTATE_TESTS='npx ava test/knownhosts.test.ts' npm run mutate -- --mutate lib/remote/knownhosts.ts
 *
 * KUBETLS_MUTATE_TESTS is a shell command line (it may chain two ava runs with &&). test/MUTATION.md has the commands
 * used, the scores measured and the surviving mutants judged.
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
const fastTests = [
  'test/envfile.test.ts', 'test/inventory.test.ts', 'test/knownhosts.test.ts', 'test/kubeconfig.test.ts',
  'test/pki.test.ts', 'test/status.test.ts', 'test/bite-local.test.ts', 'test/import-check.test.ts', 'test/csr-decide.test.ts',
];

export default {
  packageManager: 'npm',
  testRunner: 'command',
  // exec'd by /bin/sh in the sandbox, with __STRYKER_ACTIVE_MUTANT__ set (inherited by the scripts the tests spawn)
  commandRunner: { command: `eval "\${KUBETLS_MUTATE_TESTS:-npx ava ${fastTests.join(' ')}}"` },
  mutate: [
    'lib/inventory.ts', 'lib/inventory/*.ts', 'config/certs.ts', 'config/openssl.ts', 'lib/pki/openssl.ts',
    'lib/pki/read.ts', 'lib/pki/check.ts', 'lib/pki/token.ts', 'lib/pki/dir.ts', 'lib/pki/plan.ts', 'lib/pki/apply.ts',
    'lib/atomic.ts', 'lib/envfile.ts', 'lib/kubeconfig.ts', 'lib/remote/knownhosts.ts', 'lib/status.ts', 'lib/lock.ts',
    'lib/pki/import-check.ts', 'lib/csr/decide.ts',
  ],
  concurrency: 1, // 2 cores shared; ava itself runs 2 test files at once
  timeoutMS: 60_000,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  // Stryker rewrites tsconfig.json's extends/references through the TypeScript JS API, which TypeScript 7 (the native
  // compiler this project uses) no longer has; ours has neither, so point it at a file that does not exist.
  tsconfigFile: 'tsconfig.stryker-none.json',
  // labs (sockets, live namespaces) and generated PKIs must never be copied into the sandbox
  ignorePatterns: ['.lab', '/pki', 'reports', '.stryker-tmp*', 'bench', '*.log', 'dist'],
};
