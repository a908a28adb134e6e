import {
  ActivityFailure,
  ApplicationFailure,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  upsertSearchAttributes,
  workflowInfo,
  type RetryPolicy,
} from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import { FailureType } from './failures';
import { ConnectorNameKey, ConnectorTypeKey } from './search-attributes';
import type { ConnectionInput, ConnectionResult, ConnectorActivities, ConnectorDescriptor } from './types';

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
    const descriptor = input.descriptor ?? (await describe(input));
    const startToCloseTimeout = options.timeout ?? (descriptor.timeout as Duration | undefined) ?? DEFAULT_TIMEOUT;
    const timeoutMs = durationMs(startToCloseTimeout); // refuses a bad duration, whichever way the call runs
    const invokeOptions = {
      startToCloseTimeout,
      retry: { ...DEFAULT_RETRY, ...retryFromConnector(descriptor), ...options.retry },
      summary: descriptor.summary,
    };
    // Connections started with a descriptor come from versions that always scheduled an activity,
    // and must replay as such.
    const local = input.descriptor ? options.localActivity === true : (options.localActivity ?? timeoutMs <= msToNumber(LOCAL_ACTIVITY_MAX_TIMEOUT));
    const { 'connectors.invoke': invoke } = local
      ? proxyLocalActivities<ConnectorActivities>({ ...invokeOptions, localRetryThreshold: LOCAL_RETRY_THRESHOLD })
      : proxyActivities<ConnectorActivities>({
          ...invokeOptions,
          // Replay checks only an activity's type and ID, so histories that older code scheduled without a
          // heartbeat timeout still replay (test/runtime/replay.test.ts).
          heartbeatTimeout: DEFAULT_HEARTBEAT_TIMEOUT,
        });
    // Shown in the Web UI while the call runs (and after), next to the static summary.
    setCurrentDetails(`${input.action ?? 'invoke'}: ${descriptor.summary} (connector version ${descriptor.version ?? 'inline'})`);
    const result = await invoke({ ...input, descriptor });
    setCurrentDetails(`done: ${descriptor.summary} in ${result.duration_ms} ms, attempt ${result.attempt}`);
    return result;
  } catch (err) {
    // Fail with the connector's own failure (type, message, retry facts), not a wrapper around it.
    if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) throw err.cause;
    throw err;
  }
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
function durationMs(timeout: Duration): number {
  try {
    return msToNumber(timeout);
  } catch {
    throw ApplicationFailure.create({ type: FailureType.InvalidInput, message: `timeout: ${JSON.stringify(timeout)} is not a duration (e.g. '30s' or milliseconds)`, nonRetryable: true });
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
