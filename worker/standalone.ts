import { NativeConnection, Runtime } from '@temporalio/worker';
import { loadConfig, temporalConnectionOptions, type ConnectorsConfig } from '../core/config';
import { Keyring } from '../core/keyring';
import { connectorServices } from '../core/services';
import { createConnectorWorker, runConnectorWorker } from './connector-worker';
import { installJsonLogging } from './logging';
import { encryptedDataConverter } from './plugin';

/**
 * A connector worker on its own, configured by `config` (default: `loadConfig()` of this process's
 * environment; README, Configuration): what `npm run worker` and `connectors worker` run. On
 * SIGINT/SIGTERM (the SDK's signals) it stops polling, lets calls in flight finish for up to
 * `TC_WORKER_SHUTDOWN_GRACE_MS`, closes its pools and the store, and exits 0. Logs JSON lines on stderr at `TC_LOG_LEVEL` (default `INFO`),
 * redacted of every resolved secret.
 */
export async function runStandaloneConnectorWorker(config: ConnectorsConfig = loadConfig()): Promise<void> {
  // First of all: the Runtime takes its logger when it is created, which the first connection does.
  installJsonLogging({ level: config.logLevel });
  const { address, namespace, taskQueue, apiKey, tls, source } = config.temporal;
  // With TC_PAYLOAD_KEYRING, payloads are encrypted as ConnectorsPlugin({ encryption }) does for the user's workers.
  const payloadKeyring = Keyring.fromSetting(config.payloadKeyring);
  const connection = await NativeConnection.connect(temporalConnectionOptions(config.temporal));
  const { service, vault, store } = await connectorServices(config);
  try {
    const worker = await createConnectorWorker({
      connection,
      namespace,
      taskQueue,
      service,
      vault,
      limitLeaseMs: config.limitLeaseMs,
      workerOptions: {
        // The SDK's default, 0, cancels every call in flight at SIGTERM; its retry on another worker would
        // call the external system a second time. Finishing it here is what a rolling deploy wants.
        shutdownGraceTime: config.temporal.shutdownGraceMs,
        ...(payloadKeyring && { dataConverter: encryptedDataConverter(payloadKeyring) }),
      },
    });
    Runtime.instance().logger.info('connector worker started', {
      address,
      namespace,
      // How, never with what: the key and certificates stay out of the log.
      tls: !tls ? 'off' : typeof tls === 'object' && tls.clientCertPair ? 'mTLS' : 'on',
      api_key: apiKey === undefined ? 'none' : 'set',
      ...(source && { profile: source }),
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
