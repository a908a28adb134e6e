// Types shared by workflow code and the connector worker. Types only: this file is imported on both sides.
import type { Duration, RetryPolicy } from '@temporalio/common';

/** Task queue served by the connector worker. */
export const DEFAULT_CONNECTORS_TASK_QUEUE = 'connectors';

/** Inputs of one call, in the connector type's snake_case (e.g. `{ api_key: '...' }`). */
export type ConnectorInputs = Record<string, unknown>;

/** A connector defined in workflow code: disposable, never stored. `type` names the connector type. */
export interface InlineConnector extends ConnectorInputs {
  type: string;
}

/** Per-call options; they override the connector's own defaults. */
export interface ConnectionOptions {
  /** Per-attempt timeout of the external call, e.g. `'30s'` or milliseconds. Default: the connector's `timeout`, else 60 s. */
  timeout?: Duration;
  /**
   * Retry policy of the external call. Default: the connector's `retry`, else 5 attempts from 1 s,
   * doubling up to 1 min. Non-retryable failures (bad input, 4xx) are never retried. The look-up of
   * the connector before the call (`connectors.describe`) is retried by this option too, else by that
   * default (the connector's own `retry` is read by that look-up).
   */
  retry?: RetryPolicy;
  /** Task queue of the connector worker. Default: `connectors`. */
  taskQueue?: string;
  /**
   * Workflow ID of the `connection` execution. Default: `<parent workflow ID>/connection/<n>`; in a run
   * after the first of its chain (continue-as-new, retry, cron) `<parent workflow ID>/<run ID>/connection/<n>`.
   */
  workflowId?: string;
  /** What happens to a running connection when the parent closes. Default: `TERMINATE`. */
  parentClosePolicy?: 'TERMINATE' | 'ABANDON' | 'REQUEST_CANCEL';
  /**
   * Run the external call as a local activity of its `connection` execution (`true`) or as an activity
   * task (`false`). A local activity costs no round trip through the task queue: the whole connection
   * takes one workflow task. It does not heartbeat, so a connector worker that dies during the call is
   * noticed by the connection's workflow task timeout (10 s) and the call runs again on another worker,
   * and the Web UI shows it once it is done rather than as a pending activity.
   * Default: `true` when the per-attempt timeout is at most 1 min (the default timeout is 60 s), else `false`.
   */
  localActivity?: boolean;
  /**
   * Longest time the call waits, in all, for its connector's `limits` (a free slot, the rate, a shared
   * back-off after a 429) before it fails with `Connector.External.Timeout`; waiting spends no attempt. Cancelling
   * the connection (or its parent) ends the wait at once. Default: the connector's `limits.max_wait`,
   * else 10 min.
   */
  maxWait?: Duration;
}

/** What the connector worker needs to resolve a call. */
export interface ConnectionRequest {
  /** A stored connector's name, or an inline definition. */
  connector: string | InlineConnector;
  /** Inputs that win over the profile and Vault. */
  overrides?: ConnectorInputs;
  /** What to do: call the system (default), test the connection, or introspect the system. */
  action?: ConnectionAction;
}

export type ConnectionAction = 'invoke' | 'test' | 'introspect';

/** Result of a connection test: a person reads `message`. */
export interface ConnectionTestResult {
  ok: boolean;
  message: string;
  latency_ms: number;
}

/** Secret-free facts about a connector, known before the call (for the child's options, summary and search attributes). */
export interface ConnectorDescriptor {
  /** Null for inline connectors. */
  name: string | null;
  type: string;
  /** Null for inline connectors. */
  version: number | null;
  /** E.g. `REST billing_api POST /invoices`. */
  summary: string;
  /** The connector's per-attempt timeout, e.g. `30s`. */
  timeout?: string | number;
  retry?: ConnectorRetry;
  /** The connector's `limits` when it has any: its calls then wait for a slot before each attempt. */
  limits?: ConnectorLimits;
  /**
   * Made by the connector worker that described the connector, for this one `connection` execution:
   * `connectors.invoke` runs `version` on every attempt only when the seal verifies for its own
   * execution, else the newest version. Absent for inline connectors.
   */
  seal?: string;
}

/**
 * How many calls a connector takes, across every connector worker sharing the store. Snake_case:
 * data, as the rest of a profile.
 */
export interface ConnectorLimits {
  /** Most calls in flight at once. Default: no limit. */
  max_concurrent?: number;
  /** Most calls started per period, e.g. `{ calls: 10, per: '1s' }`. Default: no limit. */
  rate?: { calls: number; per: string | number };
  /** Longest wait for a slot before a call fails with `Connector.External.Timeout`. Default: 10 min. */
  max_wait?: string | number;
  /**
   * Longest pause an answer of the external system may cause: a `Retry-After` beyond it counts as this
   * long, for the back-off every call shares and for the retry delay alike. At most 1 h. Default: 10 min.
   */
  max_backoff?: string | number;
}

/** A slot granted by `connectors.acquire`: the call holds its lease until it ends. */
export interface ConnectorSlot {
  /** The lease to renew while the call runs and to release at its end; null when no limit applies. */
  lease: string | null;
  /** Which attempt of the call this is, from 1 (each attempt runs as an activity of its own). */
  attempt: number;
}

/** What `connectors.acquire` answers: a slot, or how long to wait before asking again and why. */
export type SlotAnswer =
  | { granted: true; slot: ConnectorSlot; in_use: number }
  | { granted: false; wait_ms: number; reason: 'concurrency' | 'rate' | 'backoff'; in_use: number; waiting: number; max_concurrent?: number; backoff_until?: string };

/**
 * A connector's retry defaults, one shape for the profile, the store and the descriptor. Snake_case,
 * because they are data (YAML, the API); durations are milliseconds or strings such as `1s`.
 */
export interface ConnectorRetry {
  /** Attempts in all, 1 = no retry. Default: 5. */
  maximum_attempts?: number;
  /** First retry delay. Default: 1 s. */
  initial_interval?: string | number;
  /** Factor each delay grows by. Default: 2. */
  backoff_coefficient?: number;
  /** Longest retry delay. Default: 1 min. */
  maximum_interval?: string | number;
}

/** Input of the `connection` workflow, shown in the Web UI. */
export interface ConnectionInput extends ConnectionRequest {
  /**
   * Absent in connections started by this version: the `connection` resolves its connector itself,
   * in its first workflow task. Present in those started by versions whose parent resolved it first,
   * which replay with it; a new execution ignores a descriptor in its input (only the worker decides
   * which version a call runs and under which limits).
   */
  descriptor?: ConnectorDescriptor;
  options?: Omit<ConnectionOptions, 'workflowId' | 'taskQueue' | 'parentClosePolicy'>;
  /**
   * Set by the `connection` workflow for a connector with limits: the slot this attempt holds. Only a
   * slot granted to the same execution counts; without one, `connectors.invoke` takes one itself.
   */
  slot?: ConnectorSlot;
}

/** Result of the `connection` workflow: the output plus a masked account of how it was produced. */
export interface ConnectionResult<Output = unknown> {
  output: Output;
  connector: { name: string | null; type: string; version: number | null };
  /** For a delegating connector (an agent profile): the connector that performed the call. */
  via?: { name: string; type: string; version: number };
  /** The effective inputs, sensitive and Vault-sourced values masked. */
  inputs: ConnectorInputs;
  /** Which layer each input came from: `profile`, `vault:<path>`, `override` or `inline`. */
  sources: Record<string, string>;
  duration_ms: number;
  /**
   * Which attempt of the external call succeeded, from 1, as Temporal recorded it. Not a count of the
   * requests the system received: a call run as a local activity whose worker or Temporal server was
   * lost mid-call runs again with the same attempt number, so the system may have received it more
   * than once. Calls that must not happen twice set `idempotency_key` (README, "REST").
   */
  attempt: number;
}

/** The connector worker's activities, as workflow code sees them. */
export interface ConnectorActivities {
  'connectors.describe'(request: ConnectionRequest): Promise<ConnectorDescriptor>;
  'connectors.invoke'(input: ConnectionInput): Promise<ConnectionResult>;
  /**
   * A slot of a connector with limits for one attempt of a call, or how long to wait for one. The slot
   * belongs to the execution that asks (`holder` is kept for the input of recorded histories; the
   * worker names the holder from the execution itself).
   */
  'connectors.acquire'(request: { connector: string; holder: string; attempt: number }): Promise<SlotAnswer>;
}
