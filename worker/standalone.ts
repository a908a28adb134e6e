import { NativeConnection, Runtime } from '@temporalio/worker';
import { connectorServicesFromEnv } from '../core/config';
import { createConnectorWorker, runConnectorWorker } from './connector-worker';
import { Keyring } from '../core/keyring';
import { installJsonLogging, parseLogLevel } from './logging';
import { encryptedDataConverter } from './plugin';

/**
 * A connector worker on its own, configured by the environment (README, Configuration): what
 * `npm run worker` and `connectors worker` run. Stops on SIGINT/SIGTERM (the SDK's default).
 * Logs JSON lines on stderr at `TC_LOG_LEVEL` (default `INFO`), redacted of every resolved secret.
 */
export async function runStandaloneConnectorWorker(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  // First of all: the Runtime takes its logger when it is created, which the first connection does.
  installJsonLogging({ level: parseLogLevel(env.TC_LOG_LEVEL) });
  const address = env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
  const connection = await NativeConnection.connect({ address });
  const { service, vault, store } = await connectorServicesFromEnv(env);
  const taskQueue = env.TC_TASK_QUEUE ?? 'connectors';
  try {
    // With TC_PAYLOAD_KEYRING, payloads are encrypted as ConnectorsPlugin({ encryption }) does for the user's workers.
    const payloadKeyring = env.TC_PAYLOAD_KEYRING ? Keyring.parse(env.TC_PAYLOAD_KEYRING, 'TC_PAYLOAD_KEYRING') : undefined;
    const worker = await createConnectorWorker({
      connection,
      namespace: env.TEMPORAL_NAMESPACE,
      taskQueue,
      service,
      vault,
      workerOptions: payloadKeyring ? { dataConverter: encryptedDataConverter(payloadKeyring) } : undefined,
    });
    Runtime.instance().logger.info('connector worker started', {
      address,
      namespace: env.TEMPORAL_NAMESPACE ?? 'default',
      task_queue: taskQueue,
      store: store.db.description,
      payload_encryption: payloadKeyring ? `key ${payloadKeyring.primaryId}` : 'off',
    });
    await runConnectorWorker(worker, service);
  } finally {
    await store.close();
    await connection.close();
  }
}
