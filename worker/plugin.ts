import type { DataConverter, LoadedDataConverter } from '@temporalio/common';
import { DefaultFailureConverter, defaultFailureConverter } from '@temporalio/common';
import { SimplePlugin } from '@temporalio/plugin';
import type { NativeConnection, Worker } from '@temporalio/worker';
import { createEncryptionCodec } from '../core/codec';
import { createConnectorWorker, runConnectorWorker } from './connector-worker';
import type { Keyring } from '../core/keyring';
import type { ConnectorService } from '../core/service';
import type { VaultSecretSource } from '../core/vault';

/** Options of {@link ConnectorsPlugin}. */
export interface ConnectorsPluginOptions {
  /**
   * Runs a connector worker in the same process as each worker this plugin is given to, on the same
   * connection and namespace, with the same data converter. Default: none (the connector worker runs
   * on its own: `npm run worker`).
   */
  connectorWorker?: {
    service: ConnectorService;
    /** Default: none. */
    vault?: VaultSecretSource;
    /** Default: `connectors`. */
    taskQueue?: string;
  };
  /**
   * Encrypts every payload (AES-256-GCM, see `createEncryptionCodec`) and, unless you set a failure
   * converter, failure messages and stack traces too. Give the plugin with the same keyring to every
   * client and worker that reads or writes these workflows, the connector worker included; the codec
   * server lets the Web UI show them decoded. Default: none (payloads are stored as plain JSON).
   */
  encryption?: {
    /** Keys of payload encryption: the first encrypts, every one decrypts (rotation). Required. */
    keyring: Keyring;
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
    const encryption = options.encryption;
    super({
      name: 'temporal-connectors',
      // SimplePlugin applies this in configureClient, configureWorker and configureReplayWorker alike.
      dataConverter: encryption ? withEncryption(createEncryptionCodec(encryption.keyring)) : undefined,
    });
    this.connectorWorker = options.connectorWorker;
  }

  override async runWorker(worker: Worker, next: (w: Worker) => Promise<void>): Promise<void> {
    if (!this.connectorWorker) return super.runWorker(worker, next);
    const { connection, namespace, dataConverter } = worker.options as unknown as {
      connection: NativeConnection;
      namespace: string;
      dataConverter?: DataConverter;
    };
    // The user's workflows encode the `connection` child's input with their data converter (codecs,
    // this plugin's encryption included), so the connector worker must decode with the same one.
    const connectorWorker = await createConnectorWorker({ connection, namespace, ...this.connectorWorker, workerOptions: { dataConverter } });
    const running = runConnectorWorker(connectorWorker, this.connectorWorker.service);
    try {
      await super.runWorker(worker, next);
    } finally {
      if (connectorWorker.getState() === 'RUNNING') connectorWorker.shutdown();
      await running;
    }
  }
}

/**
 * Adds `codec` to a data converter without dropping what the user configured. The codec goes LAST:
 * payloads are encoded in array order and decoded in reverse, so the user's own codecs (compression,
 * say) see plaintext, which they can act on and which compresses, and encryption is the outermost
 * layer, the only thing history holds. On the way back it is undone first.
 */
function withEncryption(codec: ReturnType<typeof createEncryptionCodec>) {
  return (existing: DataConverter | undefined): DataConverter => {
    if (existing && isLoaded(existing)) {
      // A client may be given an already loaded converter, whose failure converter is an instance.
      const failureConverter =
        existing.failureConverter === defaultFailureConverter ? new DefaultFailureConverter({ encodeCommonAttributes: true }) : existing.failureConverter;
      return { ...existing, failureConverter, payloadCodecs: [...existing.payloadCodecs, codec] } as unknown as DataConverter;
    }
    return {
      ...existing,
      payloadCodecs: [...(existing?.payloadCodecs ?? []), codec],
      // The SDK takes a failure converter only as a module path: workflow code loads it in the sandbox.
      // A converter the user chose stays theirs.
      failureConverterPath: existing?.failureConverterPath ?? require.resolve('./encoded-failure-converter'),
    };
  };
}

/** A data converter that encrypts payloads under `keyring`, on top of `existing` (default: the SDK's). */
export function encryptedDataConverter(keyring: Keyring, existing?: DataConverter): DataConverter {
  return withEncryption(createEncryptionCodec(keyring))(existing);
}

function isLoaded(converter: DataConverter | LoadedDataConverter): converter is LoadedDataConverter {
  return 'payloadConverter' in converter && 'failureConverter' in converter;
}
