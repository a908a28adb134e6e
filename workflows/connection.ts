import {
  ActivityFailure,
  ApplicationFailure,
  isCancellation,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  sleep,
  TemporalFailure,
  upsertSearchAttributes,
  workflowInfo,
  type RetryPolicy,
} from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import { FailureType } from './failures';
import { ConnectorNameKey, ConnectorTypeKey } from './search-attributes';
import type { ConnectionInput, ConnectionResult, ConnectorActivities, ConnectorDescriptor, ConnectorSlot } from './types';

/** Per-attempt timeout when neither the call nor the connector sets one. */
export const DEFAULT_TIMEOUT = '60s';

/**
 * How long a call may go without a heartbeat before Temporal gives the attempt up and retries it
 * (on another connector worker, when the one running it died): 10 s. Every call heartbeats every 2 s
 * while it runs and the connector worker passes heartbeats on to Temporal at least every 3 s (the
 * SDK throttles them), so only a dead or frozen worker misses it. Without it, a lost call would wait
 * out its whole per-attempt timeout.
 */
export const DEFAULT_HEARTBEAT_TIMEOUT = '10s';

/** Retries when neither the call nor the connector sets them: 5 attempts from 1 s, doubling up to 1 min. */
export const DEFAULT_RETRY: RetryPolicy = { maximumAttempts: 5, initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1m' };

/** Per-attempt timeout of resolving the connector's secret-free facts (a profile read, usually cached): 30 s. */
const DESCRIBE_TIMEOUT = '30s';

/**
 * Longest per-attempt timeout of a call that runs as a local activity unless the call says otherwise:
 * 1 min, which includes the default timeout. A local activity costs no round trip through the task
 * queue, and a dead worker is noticed by the workflow task timeout (10 s), as by the heartbeat timeout
 * of an activity. Longer calls run as activities: they heartbeat, show as pending in the Web UI, and
 * do not hold the workflow task for minutes.
 */
export const LOCAL_ACTIVITY_MAX_TIMEOUT = '1m';

/**
 * Longest wait between two attempts of a local activity that the connector worker sits out itself:
 * 1 s. A longer one (a `Retry-After`, a backoff) becomes a durable timer, so a waiting call holds no
 * workflow task slot of the worker (the SDK's default, 1 min, would hold one for the whole wait).
 */
const LOCAL_RETRY_THRESHOLD = '1s';

/** Longest pause between two asks for a free slot: 2 s. */
const MAX_SLOT_POLL_MS = 2_000;

/** Longest a call waits for its connector's limits when neither the call nor the connector says: 10 min. */
export const DEFAULT_MAX_WAIT = '10m';

// Marks runs that describe their connector themselves even when their input carries a descriptor:
// whoever starts `connection` (a client, any workflow's startChild) could otherwise pin any old
// version and skip the connector's limits. Runs recorded before it used the descriptor of their
// input (their parents had described the connector) and replay so.
const IGNORES_CALLER_DESCRIPTOR_PATCH = 'temporal-connectors/connection-ignores-caller-descriptor';

/**
 * The `connection` workflow: one call through one connector, an execution of its own in the Web UI.
 * Resolution and the call happen in a single activity, so secrets never enter this history.
 *
 * Started without a descriptor (by this version's `connect()`), it first resolves the connector's
 * secret-free facts through a local activity on its own connector worker, in its first workflow task,
 * instead of the parent spending an activity round trip on it before the start.
 */
export async function connection(input: ConnectionInput): Promise<ConnectionResult> {
  const { options = {} } = input;
  try {
    // Asked only when there is a descriptor to ignore, so runs without one record no marker.
    const recordedDescriptor = input.descriptor !== undefined && !patched(IGNORES_CALLER_DESCRIPTOR_PATCH) ? input.descriptor : undefined;
    const descriptor = recordedDescriptor ?? (await describe(input));
    const startToCloseTimeout = options.timeout ?? (descriptor.timeout as Duration | undefined) ?? DEFAULT_TIMEOUT;
    const timeoutMs = durationMs(startToCloseTimeout); // refuses a bad duration, whichever way the call runs
    const invokeOptions = {
      startToCloseTimeout,
      retry: { ...DEFAULT_RETRY, ...retryFromConnector(descriptor), ...options.retry },
      summary: descriptor.summary,
    };
    // Connections recorded with the descriptor of their input come from versions that always
    // scheduled an activity, and must replay as such.
    const local = recordedDescriptor ? options.localActivity === true : (options.localActivity ?? timeoutMs <= msToNumber(LOCAL_ACTIVITY_MAX_TIMEOUT));
    const { 'connectors.invoke': invoke } = local
      ? proxyLocalActivities<ConnectorActivities>({ ...invokeOptions, localRetryThreshold: LOCAL_RETRY_THRESHOLD })
      : proxyActivities<ConnectorActivities>({
          ...invokeOptions,
          // Replay checks only an activity's type and ID, so histories that older code scheduled without a
          // heartbeat timeout still replay (test/runtime/replay.test.ts).
          heartbeatTimeout: DEFAULT_HEARTBEAT_TIMEOUT,
        });
    // Shown in the Web UI while the call runs (and after), next to the static summary.
    const running = `${input.action ?? 'invoke'}: ${descriptor.summary} (connector version ${descriptor.version ?? 'inline'})`;
    setCurrentDetails(running);
    // A slot in the input is the caller's word, which the activity would not take anyway.
    const request: ConnectionInput = { connector: input.connector, overrides: input.overrides, ...(input.action ? { action: input.action } : {}), options };
    const result =
      descriptor.limits && descriptor.name
        ? await invokeWithinLimits(input, descriptor, invokeOptions.retry, running, (slot) => invokeOnce(local, invokeOptions, { ...request, descriptor, slot }))
        : await invoke({ ...request, descriptor });
    setCurrentDetails(`done: ${descriptor.summary} in ${result.duration_ms} ms, attempt ${result.attempt}`);
    return result;
  } catch (err) {
    // Fail with the connector's own failure (type, message, retry facts), not a wrapper around it.
    if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) throw err.cause;
    throw err;
  }
}

/**
 * A call through a connector with `limits`: before each attempt it waits for a slot (durable timers
 * between short local activities that ask, so a waiting call holds no worker slot), then runs that one
 * attempt, whose activity holds the slot's lease. The attempts are counted here rather than by
 * Temporal's retry policy, so waiting never spends one, and a retry waits for a slot of its own.
 */
async function invokeWithinLimits(
  input: ConnectionInput,
  descriptor: ConnectorDescriptor,
  retry: RetryPolicy,
  running: string,
  invokeAttempt: (slot: ConnectorSlot) => Promise<ConnectionResult>,
): Promise<ConnectionResult> {
  const { 'connectors.acquire': acquire } = proxyLocalActivities<ConnectorActivities>({
    startToCloseTimeout: DESCRIBE_TIMEOUT,
    localRetryThreshold: LOCAL_RETRY_THRESHOLD,
    retry: { ...DEFAULT_RETRY, ...input.options?.retry },
  });
  const name = descriptor.name!;
  const maxWait = input.options?.maxWait ?? (descriptor.limits?.max_wait as Duration | undefined) ?? DEFAULT_MAX_WAIT;
  const maxWaitMs = durationMs(maxWait, 'maxWait');
  // Only the time spent waiting for slots counts, in all attempts together: not the attempts
  // themselves nor the backoff between them. Workflow time (Date.now() is the workflow task's time,
  // the same on replay), LA and task turns included.
  let waitedMs = 0;
  const maximumAttempts = retry.maximumAttempts ?? 0;
  const noSlotInTime = (attempt: number, why: string) =>
    ApplicationFailure.create({
      type: FailureType.Timeout,
      message: `connector ${name}: no slot within the longest wait of ${JSON.stringify(maxWait)} (${why}); ${attempt === 1 ? 'no attempt was made' : `attempt ${attempt} was not made`}`,
      nonRetryable: true,
    });
  for (let attempt = 1; ; attempt++) {
    for (;;) {
      let slot: ConnectorSlot | undefined;
      const askedAt = Date.now();
      for (let polls = 0; !slot; polls++) {
        const answer = await acquire({ connector: name, holder: `${workflowInfo().workflowId}#${attempt}`, attempt });
        if (answer.granted) {
          slot = answer.slot;
          break;
        }
        const waitLeftMs = maxWaitMs - waitedMs - (Date.now() - askedAt);
        if (waitLeftMs <= 0) throw noSlotInTime(attempt, `${answer.in_use} in use, ${answer.waiting} waiting`);
        setCurrentDetails(waitingDetails(name, answer));
        // A free slot is not announced, so a waiting call asks again: soon at first, then less often (up
        // to every 2 s), so that a long wait does not fill its history (each ask is a few events).
        const pause = answer.reason === 'concurrency' ? Math.min(MAX_SLOT_POLL_MS, Math.round(answer.wait_ms * 1.25 ** polls)) : answer.wait_ms;
        await sleep(Math.min(pause, waitLeftMs));
      }
      waitedMs += Date.now() - askedAt;
      setCurrentDetails(attempt > 1 ? `${running}, attempt ${attempt}` : running);
      try {
        return await invokeAttempt(slot);
      } catch (err) {
        // An activity's failure comes wrapped; a local activity's may come as the connector's own failure.
        const failure = err instanceof ActivityFailure ? err.cause : err instanceof TemporalFailure ? err : undefined;
        // The slot was no good by the time the call would have been sent (its lease ran out while the
        // activity task was queued, the rate window was full at that moment): nothing was sent, so no
        // attempt is spent; the call waits, as for any slot, and asks again.
        if (failure instanceof ApplicationFailure && failure.type === FailureType.LimitsBusy) {
          const waitLeftMs = maxWaitMs - waitedMs;
          if (waitLeftMs <= 0) throw noSlotInTime(attempt, failure.message);
          setCurrentDetails(`waiting: ${failure.message}`);
          // From its details: a failure's nextRetryDelay does not survive the trip from the activity.
          const { wait_ms: busyMs } = (failure.details?.[0] ?? {}) as { wait_ms?: unknown };
          const pausedAt = Date.now();
          await sleep(Math.min(typeof busyMs === 'number' && busyMs > 0 ? busyMs : MAX_SLOT_POLL_MS, waitLeftMs));
          waitedMs += Date.now() - pausedAt;
          continue;
        }
        const retryable = failure instanceof ApplicationFailure ? !failure.nonRetryable && !(retry.nonRetryableErrorTypes ?? []).includes(failure.type ?? '') : failure !== undefined && !isCancellation(err);
        if (!retryable || (maximumAttempts > 0 && attempt >= maximumAttempts)) throw err;
        const delayMs = failure instanceof ApplicationFailure && failure.nextRetryDelay != null ? msToNumber(failure.nextRetryDelay) : backoffMs(retry, attempt);
        setCurrentDetails(`${running}: attempt ${attempt} failed (${failure?.message ?? 'failed'}); retrying in ${Math.round(delayMs / 100) / 10} s`);
        await sleep(delayMs);
        break;
      }
    }
  }
}

function waitingDetails(name: string, answer: { reason: string; in_use: number; waiting: number; max_concurrent?: number; backoff_until?: string }): string {
  switch (answer.reason) {
    case 'backoff':
      return `waiting: ${name} answered 429 Too Many Requests; every call waits until ${answer.backoff_until ?? 'its Retry-After has passed'}`;
    case 'rate':
      return `waiting for the rate limit of ${name} (${answer.waiting} waiting)`;
    default:
      return `waiting for a slot of ${name} (${answer.in_use}${answer.max_concurrent !== undefined ? ` of ${answer.max_concurrent}` : ''} in use, ${answer.waiting} waiting)`;
  }
}

/** Temporal's backoff: `initialInterval` times `backoffCoefficient` per attempt, at most `maximumInterval`. */
function backoffMs(retry: RetryPolicy, attempt: number): number {
  const initial = msToNumber(retry.initialInterval ?? '1s');
  const maximum = retry.maximumInterval !== undefined ? msToNumber(retry.maximumInterval) : initial * 100;
  return Math.min(maximum, initial * (retry.backoffCoefficient ?? 2) ** (attempt - 1));
}

/** One attempt of a call (Temporal retries nothing: {@link invokeWithinLimits} does). */
function invokeOnce(local: boolean, options: { startToCloseTimeout: Duration; retry: RetryPolicy; summary: string }, input: ConnectionInput): Promise<ConnectionResult> {
  const once = { ...options, retry: { ...options.retry, maximumAttempts: 1 } };
  const { 'connectors.invoke': invoke } = local
    ? proxyLocalActivities<ConnectorActivities>(once)
    : proxyActivities<ConnectorActivities>({ ...once, heartbeatTimeout: DEFAULT_HEARTBEAT_TIMEOUT });
  return invoke(input);
}

/**
 * The connector's secret-free facts (type, pinned version, summary, timeout, retry), resolved on this
 * execution's own worker; the search attributes the parent could not know yet are set from them.
 */
async function describe(input: ConnectionInput): Promise<ConnectorDescriptor> {
  const { 'connectors.describe': describeConnector } = proxyLocalActivities<ConnectorActivities>({
    startToCloseTimeout: DESCRIBE_TIMEOUT,
    localRetryThreshold: LOCAL_RETRY_THRESHOLD,
    retry: { ...DEFAULT_RETRY, ...input.options?.retry },
  });
  const { connector, overrides, action } = input;
  const descriptor = await describeConnector({ connector, overrides, ...(action ? { action } : {}) });
  const known = workflowInfo().typedSearchAttributes;
  // The parent set an inline connector's type as written (`rest`): the registry's name wins, so that
  // `ConnectorType = "REST"` finds it.
  const updates = [
    ...(known.get(ConnectorTypeKey) !== descriptor.type ? [{ key: ConnectorTypeKey, value: descriptor.type }] : []),
    ...(descriptor.name && known.get(ConnectorNameKey) === undefined ? [{ key: ConnectorNameKey, value: descriptor.name }] : []),
  ];
  if (updates.length > 0) upsertSearchAttributes(updates);
  return descriptor;
}

// A plain Error here would fail the workflow task again on every retry; the call's failure ends it.
function durationMs(value: Duration, option = 'timeout'): number {
  try {
    return msToNumber(value);
  } catch {
    throw ApplicationFailure.create({ type: FailureType.InvalidInput, message: `${option}: ${JSON.stringify(value)} is not a duration (e.g. '30s' or milliseconds)`, nonRetryable: true });
  }
}

function retryFromConnector({ retry }: ConnectorDescriptor): RetryPolicy {
  if (!retry) return {};
  const policy: RetryPolicy = {};
  if (retry.maximum_attempts !== undefined) policy.maximumAttempts = retry.maximum_attempts;
  if (retry.initial_interval !== undefined) policy.initialInterval = retry.initial_interval as RetryPolicy['initialInterval'];
  if (retry.backoff_coefficient !== undefined) policy.backoffCoefficient = retry.backoff_coefficient;
  if (retry.maximum_interval !== undefined) policy.maximumInterval = retry.maximum_interval as RetryPolicy['maximumInterval'];
  return policy;
}
