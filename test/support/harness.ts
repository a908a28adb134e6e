import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { randomBytes } from 'node:crypto';
import { ConnectorRegistry } from '../../connectors/registry';
import { createConnectorWorker, runConnectorWorker } from '../../worker/connector-worker';
import { Keyring } from '../../core/keyring';
import { isPlainObject, sensitiveValues } from '../../core/inputs';
import { ConnectorService } from '../../core/service';
import { ConnectorStore } from '../../core/store/connector-store';
import { PgDatabase } from '../../core/store/database';
import { VaultSecretSource } from '../../core/vault';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import type { CallArgs, CallOutcome } from '../fixtures/connector-workflows';
import { decodedHistoryText, recordSecrets } from './leak-sweep';
import { testStack, uniqueName } from './stack';
import { prebuiltBundle } from './workflow-bundles';

/** A ConnectorService that records every secret stored through it, for the suite-wide leak sweep. */
class SweptConnectorService extends ConnectorService {
  override async applyMany(definitions: unknown[], options: { actor?: string } = {}) {
    for (const definition of definitions) this.record(definition);
    return super.applyMany(definitions, options);
  }

  override async apply(definition: unknown, options: { expectedVersion?: number; actor?: string } = {}) {
    this.record(definition);
    return super.apply(definition, options);
  }

  private record(definition: unknown): void {
    const { type, value } = (definition ?? {}) as { type?: unknown; value?: unknown };
    const sensitive = typeof type === 'string' ? this.registry.get(type)?.sensitive : undefined;
    if (sensitive && isPlainObject(value)) recordSecrets('stored by a harness test', sensitiveValues(value, sensitive));
  }
}

/** Options of {@link startHarness}. */
export interface HarnessOptions {
  /** Vault cache TTL of the connector worker, in milliseconds. Default: 0 (every call reads Vault). */
  vaultCacheTtlMs?: number;
  /** Vault address the worker uses. Default: the run's Vault dev server. */
  vaultAddress?: string;
  /** Store the worker uses, not migrated (e.g. an unreachable one, or one the CLI filled). Default: a fresh, migrated scratch database. */
  databaseUrl?: string;
  /** The worker's keyring. Default: one random key. */
  keyring?: Keyring;
  /** Temporal frontend of the workers and the client, namespace `default` (e.g. a dev server of the test's own). Default: the run's dev server. */
  temporalAddress?: string;
}

/**
 * Everything a workflow-level test needs, all real: a database of its own on the PostgreSQL server,
 * a keyring, a Vault source, a connector worker and a user worker on task queues of their own.
 */
export async function startHarness(options: HarnessOptions = {}) {
  const stack = testStack();
  const database: ScratchDatabase | undefined = options.databaseUrl ? undefined : await createScratchDatabase('tc_file');
  const store = new ConnectorStore(new PgDatabase({ connectionString: options.databaseUrl ?? database!.url }));
  if (database) await store.migrate();
  const keyring = options.keyring ?? new Keyring([{ id: 'test-key', key: randomBytes(32) }]);
  const service = new SweptConnectorService({ store, registry: new ConnectorRegistry(), keyring });
  const vault = new VaultSecretSource({
    address: options.vaultAddress ?? stack.vault.address,
    token: stack.vault.token,
    cacheTtlMs: options.vaultCacheTtlMs ?? 0,
    requestTimeoutMs: 3_000,
  });
  const connectorQueue = uniqueName('connectors');
  const userQueue = uniqueName('user');
  const temporalAddress = options.temporalAddress ?? stack.temporal.address;
  const nativeConnection = await NativeConnection.connect({ address: temporalAddress });
  const connection = await Connection.connect({ address: temporalAddress });
  const client = new Client({ connection, namespace: stack.temporal.namespace });

  // Both workers run the bundles global setup made of the same modules, rather than bundling them again.
  const connectorWorker = await createConnectorWorker({
    connection: nativeConnection,
    taskQueue: connectorQueue,
    service,
    vault,
    workerOptions: { workflowBundle: prebuiltBundle('connection') },
  });
  const userWorker = await Worker.create({
    connection: nativeConnection,
    taskQueue: userQueue,
    workflowBundle: prebuiltBundle('connectorWorkflows'),
  });
  const running = Promise.all([runConnectorWorker(connectorWorker, service), userWorker.run()]);

  /** Runs a fixture workflow on the user worker; the connector calls go to this harness's connector worker. */
  async function run<T>(workflow: string, arg: unknown, workflowId = uniqueName(workflow)): Promise<{ result: T; workflowId: string }> {
    const result = await client.workflow.execute<(a: unknown) => Promise<T>>(workflow, { taskQueue: userQueue, workflowId, args: [arg] });
    return { result, workflowId };
  }

  return {
    client,
    service,
    store,
    vault,
    keyring,
    connectorQueue,
    userQueue,
    run,
    /** One call through `callConnector`, with this harness's task queue and fast retries. */
    call(connector: CallArgs['connector'], overrides?: Record<string, unknown>, options: CallArgs['options'] = {}) {
      return run<CallOutcome>('callConnector', {
        connector,
        overrides,
        options: { taskQueue: connectorQueue, retry: { initialInterval: '50ms', maximumInterval: '200ms', maximumAttempts: 3 }, ...options },
      });
    },
    async shutdown() {
      connectorWorker.shutdown();
      userWorker.shutdown();
      await running;
      await store.close();
      await connection.close();
      await nativeConnection.close();
      await database?.drop();
    },
  };
}

export type Harness = Awaited<ReturnType<typeof startHarness>>;

/** Every string of a workflow's history, payloads decoded, for "contains no secret" checks (see {@link decodedHistoryText}). */
export async function historyText(client: Client, workflowId: string): Promise<string> {
  return decodedHistoryText(await client.workflow.getHandle(workflowId).fetchHistory());
}

export { WorkflowFailedError };

/**
 * The summary a `connection` gave its call once it had resolved the connector (e.g. `REST billing_api
 * POST /invoices`): on the local activity's marker or on the activity task, shown beside it in the
 * Web UI. The static summary holds only what the parent knew: the connector's name.
 */
export async function callSummary(client: Client, connectionId: string): Promise<string> {
  const { events } = await client.workflow.getHandle(connectionId).fetchHistory();
  const call = events!.find((e) => (e.activityTaskScheduledEventAttributes || e.markerRecordedEventAttributes) && e.userMetadata?.summary);
  if (!call) throw new Error(`${connectionId} has no call with a summary in its history`);
  return JSON.parse(Buffer.from(call.userMetadata!.summary!.data!).toString()) as string;
}
