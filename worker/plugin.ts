import { SimplePlugin } from '@temporalio/plugin';
import type { NativeConnection, Worker } from '@temporalio/worker';
import { createConnectorWorker, runConnectorWorker } from './connector-worker';
import type { ConnectorService } from './service';
import type { VaultSecretSource } from './vault';

/** Options of {@link ConnectorsPlugin}. */
export interface ConnectorsPluginOptions {
  /**
   * Runs a connector worker in the same process as each worker this plugin is given to, on the same
   * connection and namespace. Default: none (the connector worker runs on its own: `npm run worker`).
   */
  connectorWorker?: {
    service: ConnectorService;
    /** Default: none. */
    vault?: VaultSecretSource;
    /** Default: `connectors`. */
    taskQueue?: string;
  };
}

/**
 * Temporal plugin for workers and clients. A TypeScript plugin cannot add workflows to a user's
 * bundle, so the `connection` workflow runs on its own task queue; with `connectorWorker` set the plugin
 * starts that worker beside yours and stops it with yours.
 */
export class ConnectorsPlugin extends SimplePlugin {
  private readonly connectorWorker?: ConnectorsPluginOptions['connectorWorker'];

  constructor(options: ConnectorsPluginOptions = {}) {
    super({ name: 'temporal-connectors' });
    this.connectorWorker = options.connectorWorker;
  }

  override async runWorker(worker: Worker, next: (w: Worker) => Promise<void>): Promise<void> {
    if (!this.connectorWorker) return super.runWorker(worker, next);
    const { connection, namespace } = worker.options as unknown as { connection: NativeConnection; namespace: string };
    const connectorWorker = await createConnectorWorker({ connection, namespace, ...this.connectorWorker });
    const running = runConnectorWorker(connectorWorker, this.connectorWorker.service);
    try {
      await super.runWorker(worker, next);
    } finally {
      if (connectorWorker.getState() === 'RUNNING') connectorWorker.shutdown();
      await running;
    }
  }
}
