import {
  ActivityFailure,
  ApplicationFailure,
  ChildWorkflowFailure,
  patched,
  proxyActivities,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType, type SearchAttributePair } from '@temporalio/common';
import { connection, DEFAULT_RETRY } from './connection';
import { FailureType } from './failures';
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

export const ConnectorNameKey = defineSearchAttributeKey('ConnectorName', SearchAttributeType.KEYWORD);
export const ConnectorTypeKey = defineSearchAttributeKey('ConnectorType', SearchAttributeType.KEYWORD);

/** A started `connection` execution. */
export interface ConnectionHandle<Output = unknown> {
  /**
   * Workflow ID of the `connection` execution: `order-42/connection/3` in the first run of a workflow,
   * `order-42/<run ID>/connection/3` in a run that continued as new, a retry or a cron run.
   */
  workflowId: string;
  /** What the connection goes through (no secrets). */
  connector: ConnectorDescriptor;
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
  const { 'connectors.describe': describe } = proxyActivities<ConnectorActivities>({
    taskQueue,
    startToCloseTimeout: '30s',
    // The look-up reads the store, so a store outage fails it too: it is retried like the call (the
    // call's `retry`, else the default; the connector's own is stored where the look-up reads), or a
    // blip of a second would fail a call whose retry policy rides it out.
    retry: { ...DEFAULT_RETRY, ...options.retry },
  });

  let descriptor: ConnectorDescriptor;
  try {
    descriptor = await describe(request);
  } catch (err) {
    throw unwrapFailure(err);
  }

  const searchAttributes: SearchAttributePair[] = [{ key: ConnectorTypeKey, value: descriptor.type }];
  if (descriptor.name) searchAttributes.push({ key: ConnectorNameKey, value: descriptor.name });
  const workflowId = options.workflowId ?? nextConnectionId();
  const { timeout, retry } = options;
  let child;
  try {
    child = await startChild(connection, {
      taskQueue,
      workflowId,
      args: [{ ...request, descriptor, options: { timeout, retry } }],
      typedSearchAttributes: searchAttributes,
      staticSummary: descriptor.summary,
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
  return { workflowId, connector: descriptor, details, result: async () => (await details()).output };
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
