// The connector worker's activities: a thin Temporal adapter over the runner (core/runner.ts). It
// adds what only an activity has: the cancellation signal, heartbeats, the attempt, and one log line
// per finished call.
import { Context, log } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { createConnectionRunner, type ConnectionRunnerDeps } from '../core/runner';
import type { ConnectionResult, ConnectorActivities } from '../workflows/types';

/** What the connector activities need; tests pass their own real instances. */
export type ConnectorActivityDeps = ConnectionRunnerDeps;

type ConnectorRef = ConnectionResult['connector'];

/**
 * How often every `connectors.invoke` heartbeats while it runs, whatever its connector type does: 2 s,
 * well inside the `connection` workflow's heartbeat timeout (10 s).
 */
export const INVOKE_HEARTBEAT_INTERVAL_MS = 2_000;

/** The connector worker's activities: `connectors.describe` (no secrets) and `connectors.invoke` (the whole call). */
export function createConnectorActivities(deps: ConnectorActivityDeps): ConnectorActivities {
  const runner = createConnectionRunner(deps);
  return {
    'connectors.describe': (request) => runner.describe(request),
    'connectors.invoke': async (input) => {
      const activity = Context.current();
      const started = performance.now();
      let resolved: { connector: ConnectorRef; via?: ConnectorRef } | undefined;
      // One line per finished call: who was called and how it went, never inputs or outputs. Before
      // resolution (connector not found, say) only what the request names is known.
      const finished = (outcome: Record<string, unknown>) => {
        const named = typeof input.connector === 'string' ? { name: input.connector, type: null } : { name: null, type: input.connector.type };
        const connector = resolved?.connector ?? { ...named, version: null };
        log.info('connector call finished', {
          connector: connector.name,
          connector_type: connector.type,
          connector_version: connector.version,
          ...(resolved?.via ? { via: resolved.via.name } : {}),
          action: input.action ?? 'invoke',
          duration_ms: Math.round(performance.now() - started),
          attempt: activity.info.attempt,
          ...outcome,
        });
      };
      // A heartbeat on a clock, besides the types' own: loading, Vault and a quiet external call
      // heartbeat too, so Temporal notices a dead worker within the heartbeat timeout. It repeats the
      // type's latest details, so the details Temporal keeps stay the type's.
      // A local activity (the `localActivity` call option) cannot heartbeat: its workflow task's own
      // timeout notices a dead worker instead.
      let details: unknown;
      const heartbeat = (d: unknown) => {
        details = d;
        if (!activity.info.isLocal) activity.heartbeat(d);
      };
      const heartbeats = setInterval(() => heartbeat(details), INVOKE_HEARTBEAT_INTERVAL_MS);
      heartbeats.unref();
      try {
        const result = await runner.run(input, {
          signal: activity.cancellationSignal,
          heartbeat,
          attempt: activity.info.attempt,
          onResolved: (call) => (resolved = call),
        });
        finished({ outcome: 'ok' });
        return result;
      } catch (err) {
        const failure =
          err instanceof CancelledFailure
            ? { failure_type: 'Cancelled' }
            : err instanceof ApplicationFailure
              ? { failure_type: err.type ?? null, retryable: !err.nonRetryable }
              : { failure_type: (err as Error)?.name ?? null };
        finished({ outcome: 'failed', ...failure });
        throw err;
      } finally {
        clearInterval(heartbeats);
      }
    },
  };
}
