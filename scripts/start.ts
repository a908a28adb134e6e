// `npm start`: the main job on embedded defaults. A Temporal dev server with its Web UI, the embedded
// store, a connector worker, an example REST connector, an example workflow, and the management API
// with the connector console; prints where to look.
// `npm start -- --once` exits after the example run instead of keeping the servers up.
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, type Logger } from '@temporalio/worker';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { startManagementApi } from '../api/server';
import { startExampleApi } from '../examples/local-api';
import { ConnectorRegistry } from '../connectors/registry';
import { apiSettings, vaultPathsSetting } from '../core/config';
import { createConnectionRunner } from '../core/runner';
import { Keyring } from '../core/keyring';
import { ConnectorsPlugin } from '../worker/plugin';
import { ConnectorService } from '../core/service';
import { ConnectorStore } from '../core/store/connector-store';
import { PgliteDatabase } from '../core/store/database';
import { ensureConsoleAssets } from './build-console';
import { freePort } from './devstack/process';
import { startTemporalDevServer } from './devstack/temporal';

const EXAMPLE_QUEUE = 'examples';

async function main(): Promise<void> {
  // The SDK's INFO lines (bundling, state changes) would bury the few lines this job is for.
  Runtime.install({ logger: withoutNoActivitiesNotice(new DefaultLogger('WARN')) });
  const once = process.argv.includes('--once');
  const dataDir = path.resolve(process.env.TC_DATA_DIR ?? '.data');
  mkdirSync(dataDir, { recursive: true });
  const keyring = Keyring.fromEnv() ?? localKeyring(path.join(dataDir, 'keyring'));
  // Read before any server starts, so that a bad setting leaves nothing running. npm start has no
  // Vault, but the console may still save a connector naming one: the setting holds here too.
  const vaultPaths = vaultPathsSetting();
  // The console signs in with a read-write token: the first of TC_API_TOKENS, else one made for this run.
  const configuredTokens = apiSettings().tokens;

  step('starting the Temporal dev server (the first run builds the Temporal CLI with Go: several minutes)');
  const temporal = await startTemporalDevServer({ port: await preferredPort(7233), uiPort: await preferredPort(8233) });
  const store = new ConnectorStore(await PgliteDatabase.open(path.join(dataDir, 'store')));
  await store.migrate();
  const service = new ConnectorService({ store, registry: new ConnectorRegistry(), keyring, vaultPaths });

  const token = randomBytes(16).toString('hex');
  const api = await startExampleApi(token);
  const billing = await service.apply(
    {
      name: 'billing_api',
      type: 'REST',
      description: 'Example billing API on this machine (npm start)',
      value: { base_url: api.url, path: '/invoices', auth: { type: 'bearer', token } },
      locked: ['base_url'],
      retry: { maximum_attempts: 3 },
      timeout: '10s',
    },
    { actor: 'npm start' },
  );
  step(`connector billing_api v${billing.version} stored in ${store.db.description} (token encrypted, shown as ${JSON.stringify(billing.value.auth)})`);

  // The console's page is bundled from console/ on the first run and after a change to its sources.
  if ((await ensureConsoleAssets()) === 'built') step('built the connector console (console/assets)');
  const consoleToken = configuredTokens.readWrite[0] ?? randomBytes(24).toString('hex');
  const managementApi = await startManagementApi({
    service,
    // As `connectors serve` builds it, so the console's Test and Introspect run the worker's pipeline; npm start has no Vault.
    runner: createConnectionRunner({ service }),
    tokens: { readWrite: configuredTokens.readWrite.length > 0 ? configuredTokens.readWrite : [consoleToken], readOnly: configuredTokens.readOnly },
    temporalUi: temporal.uiUrl ? { url: temporal.uiUrl, namespace: temporal.namespace } : undefined,
    port: await preferredPort(8080),
  });
  // A configured token is the user's own: it is not echoed. The token goes to the terminal only, never into a URL.
  const signIn = configuredTokens.readWrite.length > 0 ? 'sign in with a token of TC_API_TOKENS' : `sign in with token ${consoleToken}`;

  const nativeConnection = await NativeConnection.connect({ address: temporal.address });
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({ connection });
  const worker = await Worker.create({
    connection: nativeConnection,
    taskQueue: EXAMPLE_QUEUE,
    workflowsPath: require.resolve('../examples/workflows'),
    plugins: [new ConnectorsPlugin({ connectorWorker: { service } })],
  });

  let exitCode = 0;
  await worker.runUntil(async () => {
    const workflowId = `billing-demo-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    step(`running workflow ${workflowId}`);
    try {
      const result = await client.workflow.execute('billingDemo', { taskQueue: EXAMPLE_QUEUE, workflowId, args: [api.url] });
      console.log(JSON.stringify(result, null, 2));
      step('example workflow completed');
    } catch (err) {
      exitCode = 1;
      console.error(`example workflow failed: ${(err as Error).message}`);
    }
    console.log(`\nTemporal Web UI:   ${temporal.uiUrl}`);
    console.log(`This run:          ${temporal.uiUrl}/namespaces/default/workflows/${encodeURIComponent(workflowId)}`);
    console.log(`Connections:       ${temporal.uiUrl}/namespaces/default/workflows?query=${encodeURIComponent('WorkflowType="connection"')}`);
    console.log(`Connector console: ${managementApi.url}/  (${signIn})`);
    console.log(`Temporal gRPC:     ${temporal.address}`);
    if (!once) {
      console.log('\nServers keep running so you can look around; Ctrl-C stops them.');
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
    }
  });
  await Promise.allSettled([connection.close(), nativeConnection.close(), managementApi.close()]);
  api.server.close();
  await store.close();
  await temporal.stop();
  process.exit(exitCode);
}

/**
 * The SDK warns, at WARN, about every worker registered without activities, and has no option to say that
 * is intended (1.24). The example worker is such a worker by design: its workflows' calls run as
 * `connection` children on the connector worker's queue, so it has no activity of its own. Only that
 * notice is dropped; every other warning still shows.
 */
function withoutNoActivitiesNotice(logger: Logger): Logger {
  const notice = (message: string) => message === 'No activities registered, not polling for activity tasks';
  return {
    log: (level, message, meta) => (level === 'WARN' && notice(message) ? undefined : logger.log(level, message, meta)),
    trace: (message, meta) => logger.trace(message, meta),
    debug: (message, meta) => logger.debug(message, meta),
    info: (message, meta) => logger.info(message, meta),
    warn: (message, meta) => (notice(message) ? undefined : logger.warn(message, meta)),
    error: (message, meta) => logger.error(message, meta),
  };
}

function step(message: string): void {
  console.log(`[start] ${message}`);
}

/** The conventional port when it is free, else any free one. */
async function preferredPort(port: number): Promise<number> {
  const { createServer } = await import('node:net');
  const free = await new Promise<boolean>((resolve) => {
    const s = createServer().once('error', () => resolve(false)).listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
  return free ? port : freePort();
}

/** The embedded default's keyring: one random key, made on first run, readable by this user only. */
function localKeyring(file: string): Keyring {
  if (!existsSync(file)) {
    writeFileSync(file, `# temporal-connectors key file made by npm start; the first key encrypts\n${Keyring.generateEntry('local1')}\n`, { mode: 0o600 });
  }
  chmodSync(file, 0o600);
  return Keyring.parse(readFileSync(file, 'utf8'), file);
}

main().catch((err: Error) => {
  console.error(`npm start failed: ${err.message}`);
  process.exit(1);
});
