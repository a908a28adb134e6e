// `npm run worker`: a connector worker on its own, configured by the environment (see README, Configuration).
import { NativeConnection } from '@temporalio/worker';
import { connectorServicesFromEnv } from './config';
import { createConnectorWorker, runConnectorWorker } from './connector-worker';

async function main(): Promise<void> {
  const address = process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
  const connection = await NativeConnection.connect({ address });
  const { service, vault, store } = await connectorServicesFromEnv();
  const worker = await createConnectorWorker({
    connection,
    namespace: process.env.TEMPORAL_NAMESPACE,
    taskQueue: process.env.TC_TASK_QUEUE,
    service,
    vault,
  });
  console.log(`connector worker: ${address}, task queue ${process.env.TC_TASK_QUEUE ?? 'connectors'}, store ${store.db.description}`);
  try {
    await runConnectorWorker(worker, service);
  } finally {
    await store.close();
    await connection.close();
  }
}

main().catch((err: Error) => {
  console.error(`connector worker failed: ${err.message}`);
  process.exit(1);
});
