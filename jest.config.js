/** Tests run against real servers started once per run by test/global-setup.ts. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  globalSetup: '<rootDir>/test/global-setup.ts',
  globalTeardown: '<rootDir>/test/global-teardown.ts',
  // The slowest files first, also on a machine whose jest cache is empty (see the file).
  testSequencer: '<rootDir>/test/sequencer.js',
  testTimeout: 120_000,
  maxWorkers: 2,
  verbose: true,
};
