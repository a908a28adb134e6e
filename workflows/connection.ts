import { ActivityFailure, ApplicationFailure, proxyActivities, setCurrentDetails, type RetryPolicy } from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
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

/**
 * The `connection` workflow: one call through one connector, an execution of its own in the Web UI.
 * Resolution and the call happen in a single activity, so secrets never enter this history.
 */
export async function connection(input: ConnectionInput): Promise<ConnectionResult> {
  const { descriptor, options = {} } = input;
  const { 'connectors.invoke': invoke } = proxyActivities<ConnectorActivities>({
    startToCloseTimeout: options.timeout ?? (descriptor.timeout as Duration | undefined) ?? DEFAULT_TIMEOUT,
    // Replay checks only an activity's type and ID, so histories that older code scheduled without a
    // heartbeat timeout still replay (test/runtime/replay.test.ts).
    heartbeatTimeout: DEFAULT_HEARTBEAT_TIMEOUT,
    retry: { ...DEFAULT_RETRY, ...retryFromConnector(descriptor), ...options.retry },
    summary: descriptor.summary,
  });
  // Shown in the Web UI while the call runs (and after), next to the static summary.
  setCurrentDetails(`${input.action ?? 'invoke'}: ${descriptor.summary} (connector version ${descriptor.version ?? 'inline'})`);
  try {
    const result = await invoke(input);
    setCurrentDetails(`done: ${descriptor.summary} in ${result.duration_ms} ms, attempt ${result.attempt}`);
    return result;
  } catch (err) {
    // Fail with the connector's own failure (type, message, retry facts), not a wrapper around it.
    if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) throw err.cause;
    throw err;
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
