import {
  ActivityFailure,
  ApplicationFailure,
  ChildWorkflowFailure,
  patched,
  proxyActivities,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import type { SearchAttributePair } from '@temporalio/common';
import { connection } from './connection';
import { FailureType } from './failures';
import { ConnectorNameKey, ConnectorTypeKey } from './search-attributes';
import {
  DEFAULT_CONNECTORS_TASK_QUEUE,
  type ConnectionAction,
  type ConnectionOptions,
  type ConnectionTestResult,
  type ConnectionRequest,
  type ConnectionResult,
  type ConnectorActivities,
  type ConnectorDescriptor,
  type ConnectorInputs,
  type InlineConnector,
} from './types';

export { ConnectorNameKey, ConnectorTypeKey };

/** A started `connection` execution. */
export interface ConnectionHandle<Output = unknown> {
  /**
   * Workflow ID of the `connection` execution: `order-42/connection/3` in the first run of a workflow,
   * `order-42/<run ID>/connection/3` in a run that continued as new, a retry or a cron run.
   */
  workflowId: string;
  /**
   * What the connection goes through, as the call names it: a stored connector's name, or an inline
   * connector's type. The `connection` execution resolves the rest (type, version) itself: see `details()`.
   */
  connector: { name: string | null; type: string | null };
  /** The call's output. Throws an ApplicationFailure of the connector's failure type, e.g. `Connector.NotFound`. */
  result(): Promise<Output>;
  /** The output with the masked effective inputs, their provenance, the connector version and the duration. */
  details(): Promise<ConnectionResult<Output>>;
}

// Module state is per workflow execution in Temporal's sandbox, and calls happen in a deterministic
// order, so this counter yields the same child IDs on replay.
let connectionSequence = 0;

// Marks runs whose connection IDs name the run; runs recorded before it replay with the IDs they recorded.
const CONNECTION_IDS_NAME_THE_RUN_PATCH = 'temporal-connectors/connection-ids-name-the-run';

// Marks runs whose `connection` children resolve their connector themselves; runs recorded before it
// replay the `connectors.describe` activity they scheduled before each start.
const CONNECTION_RESOLVES_ITS_CONNECTOR_PATCH = 'temporal-connectors/connection-resolves-its-connector';

/**
 * `<workflow ID>/connection/<n>` in the first run of a workflow ID; in every later run of its chain
 * (continue-as-new, a retry, cron) `<workflow ID>/<run ID>/connection/<n>`. The counter starts again
 * in each run while a connection of an earlier run may still hold `<workflow ID>/connection/1`: one
 * it abandoned, or one the server has not yet terminated. The run ID is the one recorded when the run
 * started, which a reset keeps, so the IDs replay.
 */
function nextConnectionId(): string {
  const { workflowId, continuedFromExecutionRunId, originalExecutionRunId } = workflowInfo();
  const n = ++connectionSequence;
  if (continuedFromExecutionRunId && patched(CONNECTION_IDS_NAME_THE_RUN_PATCH)) return `${workflowId}/${originalExecutionRunId}/connection/${n}`;
  return `${workflowId}/connection/${n}`;
}

/**
 * Starts one connection and returns once the `connection` child has started; await `result()` later,
 * or run several in parallel with `Promise.all`.
 *
 * `startConnection('billing_api', { path: '/invoices' })` goes through a stored connector;
 * `startConnection({ type: 'REST', url, method: 'post', data })` through an inline one.
 */
export async function startConnection<Output = unknown>(
  connector: string,
  overrides?: ConnectorInputs,
  options?: ConnectionOptions,
): Promise<ConnectionHandle<Output>>;
export async function startConnection<Output = unknown>(connector: InlineConnector, options?: ConnectionOptions): Promise<ConnectionHandle<Output>>;
export async function startConnection<Output = unknown>(
  connector: string | InlineConnector,
  overridesOrOptions?: ConnectorInputs | ConnectionOptions,
  maybeOptions?: ConnectionOptions,
): Promise<ConnectionHandle<Output>> {
  return startAction<Output>('invoke', connector, overridesOrOptions, maybeOptions);
}

async function startAction<Output>(
  action: ConnectionAction,
  connector: string | InlineConnector,
  overridesOrOptions?: ConnectorInputs | ConnectionOptions,
  maybeOptions?: ConnectionOptions,
): Promise<ConnectionHandle<Output>> {
  const request: ConnectionRequest = { ...toRequest(connector, overridesOrOptions), ...(action === 'invoke' ? {} : { action }) };
  const options = ((typeof connector === 'string' ? maybeOptions : overridesOrOptions) ?? {}) as ConnectionOptions;
  const taskQueue = options.taskQueue ?? DEFAULT_CONNECTORS_TASK_QUEUE;
  // The child resolves its connector in its own first workflow task, so starting a call costs one
  // round trip to the server. Runs that began before this version described it from here first.
  const descriptor = patched(CONNECTION_RESOLVES_ITS_CONNECTOR_PATCH) ? undefined : await describeFromParent(request, taskQueue);
  const named = typeof request.connector === 'string' ? request.connector : null;
  const type = descriptor?.type ?? (typeof request.connector === 'string' ? null : request.connector.type);
  const searchAttributes: SearchAttributePair[] = [];
  // Only what can be a name or a type: a value the server refuses would fail this workflow task
  // forever, where the child says what is wrong with it.
  if (type && type.length <= 100) searchAttributes.push({ key: ConnectorTypeKey, value: type });
  if (named && named.length <= 100) searchAttributes.push({ key: ConnectorNameKey, value: named });
  // Before resolution only the call's own words are known: a name, or an inline type (never an
  // inline connector's values, which may hold secrets). The child's details and its activity's
  // summary show the resolved summary, e.g. `REST billing_api POST /invoices`.
  // Cut: the server refuses a summary over 400 bytes, which would fail this workflow task forever
  // before the child could say that no such connector exists.
  const summary = descriptor?.summary ?? [named ?? `${type} (inline)`, action === 'invoke' ? undefined : action].filter(Boolean).join(' ').slice(0, 100);
  const workflowId = options.workflowId ?? nextConnectionId();
  // Every per-call option the `connection` reads (ConnectionInput['options']); the rest (taskQueue,
  // workflowId, parentClosePolicy) shape the start itself, above and below.
  const { timeout, retry, localActivity, maxWait } = options;
  let child;
  try {
    child = await startChild(connection, {
      taskQueue,
      workflowId,
      args: [
        {
          ...request,
          ...(descriptor ? { descriptor } : {}),
          options: { timeout, retry, ...(localActivity === undefined ? {} : { localActivity }), ...(maxWait === undefined ? {} : { maxWait }) },
        },
      ],
      typedSearchAttributes: searchAttributes,
      staticSummary: summary,
      parentClosePolicy: options.parentClosePolicy,
    });
  } catch (err) {
    throw unwrapFailure(err);
  }
  const details = async (): Promise<ConnectionResult<Output>> => {
    try {
      return (await child.result()) as ConnectionResult<Output>;
    } catch (err) {
      throw unwrapFailure(err);
    }
  };
  return { workflowId, connector: { name: named, type }, details, result: async () => (await details()).output };
}

/** What runs started before {@link CONNECTION_RESOLVES_ITS_CONNECTOR_PATCH} did before each start, kept for their replay. */
async function describeFromParent(request: ConnectionRequest, taskQueue: string): Promise<ConnectorDescriptor> {
  const { 'connectors.describe': describe } = proxyActivities<ConnectorActivities>({
    taskQueue,
    startToCloseTimeout: '30s',
    retry: { maximumAttempts: 3, initialInterval: '200ms' },
  });
  try {
    return await describe(request);
  } catch (err) {
    throw unwrapFailure(err);
  }
}

/**
 * Runs one connection and returns its output: `await connect('my_openai_connector')`,
 * `await connect('my_api', { path: '/x' }, { timeout: '5s' })`, `await connect({ type: 'REST', url })`.
 */
export async function connect<Output = unknown>(connector: string, overrides?: ConnectorInputs, options?: ConnectionOptions): Promise<Output>;
export async function connect<Output = unknown>(connector: InlineConnector, options?: ConnectionOptions): Promise<Output>;
export async function connect<Output = unknown>(
  connector: string | InlineConnector,
  overridesOrOptions?: ConnectorInputs | ConnectionOptions,
  maybeOptions?: ConnectionOptions,
): Promise<Output> {
  const handle = await (startConnection as (c: unknown, a?: unknown, b?: unknown) => Promise<ConnectionHandle<Output>>)(
    connector,
    overridesOrOptions,
    maybeOptions,
  );
  return handle.result();
}

/**
 * Tests a connector with a cheap call (REST: its health path; OPENAI: list models; SQL: `SELECT 1`),
 * as a `connection` execution. Never fails for an unreachable system: `ok` and `message` say so.
 */
export async function testConnection(connector: string | InlineConnector, options?: ConnectionOptions): Promise<ConnectionTestResult> {
  return (await startAction<ConnectionTestResult>('test', connector, typeof connector === 'string' ? undefined : options, typeof connector === 'string' ? options : undefined)).result();
}

/** Describes the system behind a connector (SQL: schemas, tables, columns; REST: its OpenAPI document), as a `connection` execution. */
export async function introspectConnector<Output = unknown>(connector: string | InlineConnector, options?: ConnectionOptions): Promise<Output> {
  return (await startAction<Output>('introspect', connector, typeof connector === 'string' ? undefined : options, typeof connector === 'string' ? options : undefined)).result();
}

/** A chat message in the OpenAI format. */
export interface AgentMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | string;
  content: unknown;
  [field: string]: unknown;
}

/**
 * Runs the conversation `messages` through the stored agent profile `agent` (type AGENT): its model,
 * system prompt, temperature and tools, called through the OPENAI connector it names. Returns the
 * chat completion.
 */
export async function runAgent<Output = unknown>(agent: string, messages: AgentMessage[], options?: ConnectionOptions): Promise<Output> {
  return connect<Output>(agent, { messages }, options);
}

function toRequest(connector: unknown, overridesOrOptions: unknown): ConnectionRequest {
  if (typeof connector === 'string') {
    if (overridesOrOptions !== undefined && (typeof overridesOrOptions !== 'object' || overridesOrOptions === null || Array.isArray(overridesOrOptions))) {
      throw invalid('overrides must be an object of input names to values');
    }
    return { connector, overrides: overridesOrOptions as ConnectorInputs | undefined };
  }
  if (typeof connector !== 'object' || connector === null || Array.isArray(connector)) {
    throw invalid('connector must be a stored connector name or an inline definition { type, ...inputs }');
  }
  if (typeof (connector as InlineConnector).type !== 'string') throw invalid('inline connector: type is required (e.g. "REST")');
  return { connector: connector as InlineConnector };
}

// A plain Error in workflow code would fail the workflow task forever; an ApplicationFailure fails the call.
function invalid(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureType.InvalidInput, message, nonRetryable: true });
}

/** The connector's own failure, out of the activity or child wrapper, so callers can switch on `type`. */
function unwrapFailure(err: unknown): unknown {
  if ((err instanceof ChildWorkflowFailure || err instanceof ActivityFailure) && err.cause instanceof ApplicationFailure) {
    const cause = err.cause;
    return ApplicationFailure.create({
      type: cause.type ?? undefined,
      message: cause.message,
      nonRetryable: cause.nonRetryable ?? undefined,
      details: cause.details ?? undefined,
      cause: err,
    });
  }
  return err;
}
