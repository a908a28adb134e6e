// The connector worker's activities: a thin Temporal adapter over the runner (core/runner.ts). It
// adds what only an activity has: the cancellation signal, heartbeats, the attempt, and one log line
// per finished call.
import { Context, log } from '@temporalio/activity';
import { createHash, randomUUID } from 'node:crypto';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { parseDurationMs } from '../connectors/durations';
import { transientFailure } from '../connectors/errors';
import { DESCRIPTOR_SEAL_SECRET, DescriptorSeal } from '../core/descriptor-seal';
import { ConnectorLimiter, maxBackoffMs, type StartAnswer } from '../core/limits';
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
  // Read once from the store, when first needed; a failed read is tried again by the next call.
  let sealing: Promise<DescriptorSeal> | undefined;
  const seals = () => {
    if (!sealing) {
      const reading = deps.service.store.workerSecret(DESCRIPTOR_SEAL_SECRET).then((secret) => new DescriptorSeal(secret));
      reading.catch(() => sealing === reading && (sealing = undefined));
      sealing = reading;
    }
    return sealing;
  };
  // The store being out of reach fails as Connector.Store.Unavailable (retried), as in every other step.
  const storeFailure = (err: unknown) => {
    const unavailable = storeUnavailable(err, limiter.db);
    return unavailable ? transientFailure(FailureType.StoreUnavailable, unavailable.message) : err;
  };

  return {
    // Sealed for this execution: only a version this worker described to it is ever run pinned.
    'connectors.describe': async (request) => {
      const descriptor = await runner.describe(request);
      if (descriptor.name === null || descriptor.version === null) return descriptor;
      try {
        const execution = Context.current().info.workflowExecution;
        // An activity started on its own, outside any workflow, has no execution to seal for.
        if (!execution) return descriptor;
        return { ...descriptor, seal: (await seals()).seal(descriptor.name, descriptor.version, execution) };
      } catch (err) {
        throw storeFailure(err);
      }
    },
    // The connector's current limits, not those of the version the call is pinned to: a change of
    // limits applies to the next slot. A connector that lost its limits grants at once.
    'connectors.acquire': async ({ connector, attempt }) => {
      // The slot belongs to the execution that asks, as the server reports it; the holder the input
      // names is not trusted.
      const owner = executionOf(Context.current());
      try {
        const limits = (await deps.service.load(connector))?.limits;
        if (!limits) return { granted: true, slot: { lease: null, attempt }, in_use: 0 };
        const answer = await limiter.acquire(connector, limits, `${owner.workflowId}/${owner.runId}#${attempt}`, owner);
        return answer.granted ? { granted: true, slot: { lease: answer.lease, attempt }, in_use: answer.in_use } : answer;
      } catch (err) {
        throw storeFailure(err);
      }
    },
    'connectors.invoke': async (input) => {
      const activity = Context.current();
      const execution = executionOf(activity);
      const started = performance.now();
      let resolved: { connector: ConnectorRef; via?: ConnectorRef; conversation?: boolean } | undefined;
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

      const name = typeof input.connector === 'string' ? input.connector : undefined;
      let limits: ConnectorLimits | undefined;
      let lease: string | undefined;
      let sent = false;
      // Stops the call when its lease is lost while it runs: its place may be another call's by now.
      const leaseLost = new AbortController();
      let renewals: NodeJS.Timeout | undefined;
      // The slot of the connector a delegating type (an AGENT) hands its call to, taken right before sending.
      let delegated: { limits?: ConnectorLimits; lease?: string } = {};
      let subCalls = 0;
      try {
        // Whatever the input says: the connector's current limits, and a version only when this
        // worker sealed it for this execution (else the newest).
        ({ limits, lease } = await slotOfCall(input, name, execution));
        const version = await sealedVersion(input, name, execution);
        if (lease) {
          const held = lease;
          // A slot's lease lives while the call does: renewed every third of its time, released at the end.
          // A renewal that finds it gone stops a call already sent; one not yet sent is refused by `start`.
          renewals = setInterval(() => {
            void limiter.renew(held, execution).then(
              (kept) => {
                if (!kept && sent) leaseLost.abort(leaseLostFailure(name!));
              },
              () => undefined, // the store out of reach: the lease may still be there, and `start` checks
            );
          }, limiter.leaseMs / 3);
          renewals.unref();
        }
        const result = await runner.run(
          { ...input, descriptor: version === undefined ? undefined : { version } },
          {
            signal: AbortSignal.any([activity.cancellationSignal, leaseLost.signal]),
            heartbeat,
            // Each attempt of a call with limits is an activity of its own, so the workflow counts them.
            attempt: input.slot?.attempt ?? activity.info.attempt,
            onResolved: (call) => (resolved = call),
            idempotencyKey: execution.standalone ? undefined : idempotencyKeyOf(execution),
            beforeSend: async () => {
              if (lease && limits && name) {
                const answer = await limiter.start(name, lease, execution, limits).catch((err: unknown) => Promise.reject(storeFailure(err)));
                if (!answer.started) throw busyFailure(name, answer);
              }
              // A call that an AGENT (stored or inline) hands to another connector obeys that connector's
              // limits too: it performs the call, and its quota is the external system's.
              // An agent's conversation takes a slot per call instead (beforeSubCall), since it makes many.
              const performer = resolved?.conversation ? undefined : resolved?.via?.name;
              if (performer && performer !== name) {
                delegated = await slotOfCall({}, performer, execution, `${execution.workflowId}/${execution.runId}#via`);
                if (delegated.lease && delegated.limits) {
                  const answer = await limiter.start(performer, delegated.lease, execution, delegated.limits).catch((err: unknown) => Promise.reject(storeFailure(err)));
                  if (!answer.started) throw busyFailure(performer, answer);
                }
              }
              sent = true;
            },
            // Each model and tool call of an agent's conversation obeys the limits of the connector it
            // goes through, as a call of its own would: a slot taken right before it is sent, released
            // when it ends. No free slot fails the attempt as Connector.Limits.Busy (retried).
            beforeSubCall: async (connector) => {
              const slot = await slotOfCall({}, connector, execution, `${execution.workflowId}/${execution.runId}#sub-${++subCalls}`);
              if (!slot.lease || !slot.limits) return undefined;
              const held = slot.lease;
              const answer = await limiter.start(connector, held, execution, slot.limits).catch((err: unknown) => Promise.reject(storeFailure(err)));
              if (!answer.started) {
                await limiter.release(held, execution).catch(() => undefined);
                throw busyFailure(connector, answer);
              }
              // Renewed while the call runs, as the call's own lease is: a tool may work for longer than a lease.
              const renewals = setInterval(() => void limiter.renew(held, execution).catch(() => undefined), limiter.leaseMs / 3);
              renewals.unref();
              return async () => {
                clearInterval(renewals);
                await limiter.release(held, execution).catch(() => undefined);
              };
            },
          },
        );
        finished({ outcome: 'ok' });
        return result;
      } catch (thrown) {
        // However the type reports an abort, a lost lease is what stopped the call.
        const caught: unknown = leaseLost.signal.aborted && !(thrown instanceof CancelledFailure) ? leaseLost.signal.reason : thrown;
        // Capped here, once, for the back-off every call shares and for this call's next retry.
        const err = caught instanceof ApplicationFailure ? capRetryDelay(caught, maxBackoffMs(limits)) : caught;
        // A 429 that says when to come back slows every later call through a connector with limits.
        const retryAfter = err instanceof ApplicationFailure ? tooManyRequestsDelay(err) : undefined;
        if (limits && name && retryAfter !== undefined) await limiter.backOff(name, retryAfter).catch(() => undefined);
        const performer = resolved?.via?.name;
        if (delegated.limits && performer && retryAfter !== undefined) await limiter.backOff(performer, retryAfter).catch(() => undefined);
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
        // Only a lease of this execution (else it expires within one lease time).
        if (lease) await limiter.release(lease, execution).catch(() => undefined);
        if (delegated.lease) await limiter.release(delegated.lease, execution).catch(() => undefined);
      }
    },
  };

  /**
   * The current limits of the call's connector, and the lease it sends under: the one its `connection`
   * acquired (checked right before sending), or, for a call scheduled without one (another workflow
   * scheduling `connectors.invoke` itself), one taken here, once: without a free slot the call fails
   * as Connector.Limits.Busy, retried by the caller's retry policy after the wait it names.
   */
  async function slotOfCall(input: Pick<ConnectionInput, 'slot'>, name: string | undefined, owner: Execution, holder = `${owner.workflowId}/${owner.runId}#invoke`) {
    if (!name) return { limits: undefined, lease: undefined };
    let limits: ConnectorLimits | undefined;
    try {
      limits = (await deps.service.load(name))?.limits;
    } catch (err) {
      throw storeFailure(err);
    }
    if (!limits) return { limits, lease: undefined };
    if (input.slot?.lease && !owner.standalone) return { limits, lease: input.slot.lease };
    const answer = await limiter.acquire(name, limits, holder, owner).catch((err: unknown) => Promise.reject(storeFailure(err)));
    if (!answer.granted) throw busyFailure(name, { started: false, reason: answer.reason === 'concurrency' ? 'busy' : answer.reason, wait_ms: answer.wait_ms });
    return { limits, lease: answer.lease };
  }

  /** The version the input pins, when this worker sealed it for this very execution; else undefined (the newest). */
  async function sealedVersion(input: ConnectionInput, name: string | undefined, execution: Execution): Promise<number | undefined> {
    const version = input.descriptor?.version;
    if (!name || execution.standalone || typeof version !== 'number' || input.descriptor?.seal === undefined) return undefined;
    try {
      return (await seals()).verify(name, version, execution, input.descriptor.seal) ? version : undefined;
    } catch (err) {
      throw storeFailure(err);
    }
  }
}

/**
 * The idempotency key of a `connection`'s call: a hash of its workflow ID, which every attempt, re-run
 * (reset) and replay of that connection shares, and no other connection has. Hashed, so that a
 * business ID in a parent's workflow ID does not travel to the external system as it is.
 */
function idempotencyKeyOf(execution: Execution): string {
  return `tc-${createHash('sha256').update(execution.workflowId).digest('hex').slice(0, 32)}`;
}

/** The workflow execution an activity runs for, as the server reports it (never as its input says). */
interface Execution {
  workflowId: string;
  runId: string;
  /** An activity started on its own, outside any workflow: it holds no seal and no slot but its own. */
  standalone?: true;
}

function executionOf(activity: Context): Execution {
  const { workflowExecution } = activity.info;
  if (workflowExecution) return { workflowId: workflowExecution.workflowId, runId: workflowExecution.runId };
  // A name no workflow execution has and nobody can present: leases taken for it are started only by this activity.
  return { workflowId: `(standalone activity ${activity.info.activityId})`, runId: randomUUID(), standalone: true };
}

/** Why a call may not send now, in words, by {@link StartAnswer} reason (and `busy`/`backoff` from a self-taken slot). */
const BUSY_REASONS: Record<string, string> = {
  lost: "its slot's lease is gone (it ran out before the call could start, and was taken back)",
  expired: "its slot's lease ran out before the call could start (its activity task waited too long in its queue)",
  foreign: 'its slot was granted to another workflow execution',
  used: 'its slot has been used by an earlier start',
  rate: 'the rate limit allows no more calls in the current period',
  busy: 'every slot is taken (max_concurrent)',
  backoff: 'the connector answered 429 Too Many Requests and every call waits',
};

/** Connector.Limits.Busy: nothing was sent; ask for a slot again after `wait_ms`. */
function busyFailure(connector: string, answer: Exclude<StartAnswer, { started: true }> | { started: false; reason: string; wait_ms: number }): ApplicationFailure {
  const why = BUSY_REASONS[answer.reason] ?? answer.reason;
  return transientFailure(FailureType.LimitsBusy, `connector ${connector}: the call was not sent, because ${why}; it may ask for a slot again in ${answer.wait_ms} ms`, {
    details: { reason: answer.reason, wait_ms: answer.wait_ms },
    nextRetryDelayMs: answer.wait_ms,
  });
}

function leaseLostFailure(connector: string): ApplicationFailure {
  return transientFailure(
    FailureType.LimitsLeaseLost,
    `connector ${connector}: the call's slot lease ran out while it ran (its renewals did not reach the store in time) and the call was stopped, since another call may hold that slot now`,
  );
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
