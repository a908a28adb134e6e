import { NativeConnection } from '@temporalio/worker';
import { connectorServicesFromEnv } from './config';
import { createConnectorWorker, runConnectorWorker } from './connector-worker';

/**
 * A connector worker on its own, configured by the environment (README, Configuration): what
 * `npm run worker` and `connectors worker` run. Stops on SIGINT/SIGTERM (the SDK's default).
 */
export async function runStandaloneConnectorWorker(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const address = env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
  const connection = await NativeConnection.connect({ address });
  const { service, vault, store } = await connectorServicesFromEnv(env);
  const taskQueue = env.TC_TASK_QUEUE ?? 'connectors';
  try {
    const worker = await createConnectorWorker({ connection, namespace: env.TEMPORAL_NAMESPACE, taskQueue, service, vault });
    console.log(`connector worker: ${address}, namespace ${env.TEMPORAL_NAMESPACE ?? 'default'}, task queue ${taskQueue}, store ${store.db.description}`);
    await runConnectorWorker(worker, service);
  } finally {
    await store.close();
    await connection.close();
  }
}
