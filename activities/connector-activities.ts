// The connector worker's activities: a thin Temporal adapter over the runner (core/runner.ts). It
// adds what only an activity has: the cancellation signal, heartbeats, the attempt, and one log line
// per finished call.
import { Context, log } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { parseDurationMs } from '../connectors/durations';
import { ConnectorLimiter } from '../core/limits';
import { createConnectionRunner, type ConnectionRunnerDeps } from '../core/runner';
import { FailureType } from '../workflows/failures';
import type { ConnectionResult, ConnectorActivities } from '../workflows/types';

/** What the connector activities need; tests pass their own real instances. */
export interface ConnectorActivityDeps extends ConnectionRunnerDeps {
  /** The lease and rate state of connectors with `limits`. Default: one on the service's store, with 15 s leases. */
  limiter?: ConnectorLimiter;
}

type ConnectorRef = ConnectionResult['connector'];

/**
 * How often every `connectors.invoke` heartbeats while it runs, whatever its connector type does: 2 s,
 * well inside the `connection` workflow's heartbeat timeout (10 s).
 */
export const INVOKE_HEARTBEAT_INTERVAL_MS = 2_000;

/** The connector worker's activities: `connectors.describe` (no secrets) and `connectors.invoke` (the whole call). */
export function createConnectorActivities(deps: ConnectorActivityDeps): ConnectorActivities {
  const runner = createConnectionRunner(deps);
  const limiter = deps.limiter ?? new ConnectorLimiter(deps.service.store.db);
  return {
    'connectors.describe': (request) => runner.describe(request),
    // The connector's current limits, not those of the version the call is pinned to: a change of
    // limits applies to the next slot. A connector that lost its limits grants at once.
    'connectors.acquire': async ({ connector, holder, attempt }) => {
      const limits = (await deps.service.load(connector))?.limits;
      if (!limits) return { granted: true, slot: { lease: null, attempt }, in_use: 0 };
      const answer = await limiter.acquire(connector, limits, holder);
      return answer.granted ? { granted: true, slot: { lease: answer.lease, attempt }, in_use: answer.in_use } : answer;
    },
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
      // A slot's lease lives while the call does: renewed every third of its time, released at the end.
      const lease = input.slot?.lease ?? undefined;
      const renewals = lease ? setInterval(() => void limiter.renew(lease).catch(() => undefined), limiter.leaseMs / 3) : undefined;
      renewals?.unref();
      try {
        const result = await runner.run(input, {
          signal: activity.cancellationSignal,
          heartbeat,
          // Each attempt of a call with limits is an activity of its own, so the workflow counts them.
          attempt: input.slot?.attempt ?? activity.info.attempt,
          onResolved: (call) => (resolved = call),
        });
        finished({ outcome: 'ok' });
        return result;
      } catch (err) {
        // A 429 that says when to come back slows every later call through a connector with limits.
        const retryAfter = err instanceof ApplicationFailure ? tooManyRequestsDelay(err) : undefined;
        if (input.slot && retryAfter !== undefined && typeof input.connector === 'string') {
          await limiter.backOff(input.connector, retryAfter).catch(() => undefined);
        }
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
        if (renewals) clearInterval(renewals);
        if (lease) await limiter.release(lease).catch(() => undefined); // else it expires within one lease time
      }
    },
  };
}

/** The Retry-After of an HTTP 429 failure, in milliseconds; undefined for any other failure. */
function tooManyRequestsDelay(failure: ApplicationFailure): number | undefined {
  if (failure.type !== FailureType.Http || failure.nextRetryDelay === undefined || failure.nextRetryDelay === null) return undefined;
  const details = failure.details?.[0] as { status?: number } | undefined;
  if (details?.status !== 429) return undefined;
  const delay = failure.nextRetryDelay;
  const ms = typeof delay === 'number' ? delay : typeof delay === 'string' ? parseDurationMs(delay) : undefined;
  return ms !== undefined && ms > 0 ? ms : undefined;
}
