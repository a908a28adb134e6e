// Helpers for tests that call connector types directly, outside Temporal.
import { ApplicationFailure } from '@temporalio/common';
import type { InvokeContext } from '../../connectors/types';
import type { ScratchDatabase } from '../../scripts/devstack/postgres';

/** An invoke context with a live signal and a no-op heartbeat, plus `overrides`. */
export function invokeContext(overrides: Partial<InvokeContext> = {}): InvokeContext {
  return { signal: new AbortController().signal, heartbeat: () => undefined, ...overrides };
}

/** The failure a promise ends with; fails the test when it succeeds. */
export async function failureOf(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

/** POSTGRES connection inputs of a scratch database, taken from its URL (so DATABASE_URL and PG* settings apply). */
export function postgresInputs(database: ScratchDatabase): Record<string, unknown> {
  const url = new URL(database.url);
  return {
    host: url.hostname,
    port: Number(url.port || 5432),
    database: decodeURIComponent(url.pathname.slice(1)),
    user: decodeURIComponent(url.username),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
  };
}
