/** Environment variables through which global-setup.ts hands the running servers to test files. */
export const STACK_ENV = {
  temporalAddress: 'TC_TEST_TEMPORAL_ADDRESS',
  temporalUiUrl: 'TC_TEST_TEMPORAL_UI_URL',
  vaultAddress: 'TC_TEST_VAULT_ADDR',
  vaultToken: 'TC_TEST_VAULT_TOKEN',
  databaseUrl: 'TC_TEST_DATABASE_URL',
  chromiumPath: 'TC_TEST_CHROMIUM_PATH',
} as const;

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests through jest, whose global setup starts the servers.`);
  return value;
}

/** The servers started for this test run. */
export function testStack() {
  return {
    temporal: { address: required(STACK_ENV.temporalAddress), uiUrl: process.env[STACK_ENV.temporalUiUrl] || undefined, namespace: 'default' },
    vault: { address: required(STACK_ENV.vaultAddress), token: required(STACK_ENV.vaultToken) },
    databaseUrl: required(STACK_ENV.databaseUrl),
    chromiumPath: required(STACK_ENV.chromiumPath),
  };
}

/** A name no other test in this run uses, for task queues and workflow IDs. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
