import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createConnectorActivities } from '../activities/connector-activities';
import { DEFAULT_CONNECTORS_TASK_QUEUE } from '../workflows/types';
import { ConnectorLimiter } from '../core/limits';
import type { ConnectorService } from '../core/service';
import type { VaultSecretSource } from '../core/vault';

/** Search attributes that `connection` executions carry; registered when a namespace lacks them. */
export const CONNECTOR_SEARCH_ATTRIBUTES = ['ConnectorName', 'ConnectorType'] as const;

/**
 * Longest time the connector worker holds back a call's heartbeats, 3 s: the SDK's default (80 % of
 * the heartbeat timeout, 8 s of the `connection` workflow's 10 s) would leave a live call 2 s from
 * being given up as lost.
 */
export const CONNECTOR_HEARTBEAT_THROTTLE = '3s';

/** Options of {@link createConnectorWorker}. */
export interface ConnectorWorkerOptions {
  connection: NativeConnection;
  /** Temporal namespace. Default: `default`. */
  namespace?: string;
  /** Task queue the `connection` workflow and its activities run on. Default: `connectors`. */
  taskQueue?: string;
  service: ConnectorService;
  /** Source of Vault secrets. Default: none. */
  vault?: VaultSecretSource;
  /**
   * How long a slot of a connector with `limits` stays taken when the worker running its call dies, in
   * milliseconds: a running call renews its lease every third of it. Default: 15000 (15 s).
   */
  limitLeaseMs?: number;
  /**
   * Further Worker options (concurrency, tuning). Default: the SDK's, but `maxHeartbeatThrottleInterval` 3 s.
   * A `workflowBundle` must be a bundle of this package's `workflows/connection` (made with
   * `bundleWorkflowCode`), which saves bundling it at every start; without one, the worker bundles it.
   */
  workerOptions?: Partial<Omit<WorkerOptions, 'connection' | 'namespace' | 'taskQueue' | 'activities' | 'workflowsPath'>>;
}

/**
 * A worker serving the `connectors` task queue: the `connection` workflow and its activities. Only this
 * worker needs the store, the keyring and Vault. It starts the profile cache and closes pools when it stops.
 */
export async function createConnectorWorker(options: ConnectorWorkerOptions): Promise<Worker> {
  const namespace = options.namespace ?? 'default';
  await ensureSearchAttributes(options.connection, namespace);
  await options.service.watch();
  return Worker.create({
    maxHeartbeatThrottleInterval: CONNECTOR_HEARTBEAT_THROTTLE,
    ...options.workerOptions,
    connection: options.connection,
    namespace,
    taskQueue: options.taskQueue ?? DEFAULT_CONNECTORS_TASK_QUEUE,
    // The SDK would take a bundle over the path anyway, but warn about the path it ignores.
    ...(options.workerOptions?.workflowBundle ? {} : { workflowsPath: require.resolve('../workflows/connection') }),
    activities: createConnectorActivities({
      service: options.service,
      vault: options.vault,
      limiter: new ConnectorLimiter(options.service.store.db, { leaseMs: options.limitLeaseMs }),
    }),
  });
}

/** Runs `worker` until it stops, then closes the pools connector types keep. */
export async function runConnectorWorker(worker: Worker, service: ConnectorService): Promise<void> {
  try {
    await worker.run();
  } finally {
    await service.registry.close();
    await service.close();
  }
}

/** Adds ConnectorName and ConnectorType (Keyword) to `namespace` when they are missing. */
export async function ensureSearchAttributes(connection: NativeConnection, namespace: string): Promise<void> {
  const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
  const missing = CONNECTOR_SEARCH_ATTRIBUTES.filter((name) => !customAttributes || !(name in customAttributes));
  if (missing.length === 0) return;
  try {
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map((name) => [name, 2 /* KEYWORD */])),
    });
  } catch (err) {
    // Another worker may have added them a moment ago; anything else is a real problem.
    const again = await connection.operatorService.listSearchAttributes({ namespace });
    if (missing.some((name) => !again.customAttributes || !(name in again.customAttributes))) {
      throw new Error(`cannot register search attributes ${missing.join(', ')} on namespace ${namespace}: ${(err as Error).message}`);
    }
  }
}
