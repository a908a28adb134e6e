// The connector worker's activities: a thin Temporal adapter over the runner (core/runner.ts). It
// adds what only an activity has: the cancellation signal, heartbeats, the attempt, and one log line
// per finished call.
import { Context, log } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { parseDurationMs } from '../connectors/durations';
import { transientFailure } from '../connectors/errors';
import { ConnectorLimiter, maxBackoffMs } from '../core/limits';
import { createConnectionRunner, type ConnectionRunnerDeps } from '../core/runner';
import { storeUnavailable } from '../core/store/connector-store';
import { FailureType } from '../workflows/failures';
import type { ConnectionInput, ConnectionResult, ConnectorActivities, ConnectorLimits } from '../workflows/types';

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
    // A store that cannot be reached fails as Connector.Store.Unavailable (retried), as in every other step.
    'connectors.acquire': async ({ connector, holder, attempt }) => {
      try {
        const limits = (await deps.service.load(connector))?.limits;
        if (!limits) return { granted: true, slot: { lease: null, attempt }, in_use: 0 };
        const answer = await limiter.acquire(connector, limits, holder);
        return answer.granted ? { granted: true, slot: { lease: answer.lease, attempt }, in_use: answer.in_use } : answer;
      } catch (err) {
        const unavailable = storeUnavailable(err, limiter.db);
        if (unavailable) throw transientFailure(FailureType.StoreUnavailable, unavailable.message);
        throw err;
      }
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
      // At once, too: an activity task may have waited in its queue for part of the lease granted at acquire.
      if (lease) await limiter.renew(lease).catch(() => undefined);
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
      } catch (caught) {
        // Capped here, once, for the back-off every call shares and for this call's next retry: the
        // cap is the connector's current `limits.max_backoff`, else 10 min.
        const capMs = caught instanceof ApplicationFailure && retryDelayMs(caught) !== undefined ? maxBackoffMs(await currentLimits(input.connector)) : undefined;
        const err = caught instanceof ApplicationFailure && capMs !== undefined ? capRetryDelay(caught, capMs) : caught;
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

  /** The limits of a stored connector's current version; none when it has none or cannot be read now (the default cap applies). */
  async function currentLimits(connector: ConnectionInput['connector']): Promise<ConnectorLimits | undefined> {
    if (typeof connector !== 'string') return undefined;
    return (await deps.service.load(connector).catch(() => undefined))?.limits;
  }
}

/** `failure` with its next retry delay at most `capMs`: an external system's Retry-After never stalls a connector for longer. */
function capRetryDelay(failure: ApplicationFailure, capMs: number): ApplicationFailure {
  const delayMs = retryDelayMs(failure);
  if (delayMs === undefined || delayMs <= capMs) return failure;
  return ApplicationFailure.create({
    type: failure.type ?? undefined,
    message: failure.message,
    nonRetryable: failure.nonRetryable ?? undefined,
    details: failure.details ?? undefined,
    nextRetryDelay: capMs,
  });
}

function retryDelayMs(failure: ApplicationFailure): number | undefined {
  const delay = failure.nextRetryDelay;
  if (delay === undefined || delay === null) return undefined;
  return typeof delay === 'number' ? delay : typeof delay === 'string' ? parseDurationMs(delay) : undefined;
}

/** The Retry-After of an HTTP 429 failure, in milliseconds; undefined for any other failure. */
function tooManyRequestsDelay(failure: ApplicationFailure): number | undefined {
  if (failure.type !== FailureType.Http) return undefined;
  const details = failure.details?.[0] as { status?: number } | undefined;
  if (details?.status !== 429) return undefined;
  const ms = retryDelayMs(failure);
  return ms !== undefined && ms > 0 ? ms : undefined;
}
