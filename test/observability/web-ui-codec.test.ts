import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { startCodecServer, type RunningCodecServer } from '../../api/codec-server';
import { ConnectorRegistry } from '../../connectors/registry';
import { CHROMIUM_ARGS } from '../../scripts/devstack/chromium';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import { freePort } from '../../scripts/devstack/process';
import { startTemporalDevServer, type TemporalDevServer } from '../../scripts/devstack/temporal';
import { Keyring } from '../../core/keyring';
import { ConnectorsPlugin } from '../../worker/plugin';
import { ConnectorService } from '../../core/service';
import { ConnectorStore } from '../../core/store/connector-store';
import { PgDatabase } from '../../core/store/database';
import type { CallOutcome } from '../fixtures/connector-workflows';
import { startTestHttpServer, type TestHttpServer } from '../fixtures/http-server';
import { pageText, waitForText } from '../support/browser';
import { historyText } from '../support/harness';
import { testStack, uniqueName } from '../support/stack';

// With payload encryption on, history holds ciphertext; the Web UI (started with --ui-codec-endpoint)
// shows the payloads decoded by the codec server, with sensitive values masked.
describe('the Web UI with encrypted payloads and the codec server', () => {
  const stack = testStack();
  const keyring = new Keyring([{ id: 'ui-payload-k1', key: randomBytes(32) }]);
  const visibleNote = `visible-note-${randomBytes(5).toString('hex')}`;
  const overrideToken = `override-token-${randomBytes(5).toString('hex')}`;
  const connectorQueue = uniqueName('ui-codec-connectors');
  const userQueue = uniqueName('ui-codec-user');
  let codec: RunningCodecServer;
  let temporal: TemporalDevServer;
  let database: ScratchDatabase;
  let store: ConnectorStore;
  let service: ConnectorService;
  let nativeConnection: NativeConnection;
  let connection: Connection;
  let worker: Worker;
  let running: Promise<void>;
  let api: TestHttpServer;
  let browser: Browser;

  beforeAll(async () => {
    const uiPort = await freePort();
    codec = await startCodecServer({ keyring, insecureNoAuth: true, corsOrigins: [`http://127.0.0.1:${uiPort}`], port: 0 });
    [temporal, database, api, browser] = await Promise.all([
      startTemporalDevServer({ uiPort, extraArgs: ['--ui-codec-endpoint', codec.url] }),
      createScratchDatabase('tc_ui_codec'),
      startTestHttpServer(),
      chromium.launch({ executablePath: stack.chromiumPath, headless: true, args: CHROMIUM_ARGS }),
    ]);
    store = new ConnectorStore(new PgDatabase({ connectionString: database.url }));
    await store.migrate();
    service = new ConnectorService({ store, registry: new ConnectorRegistry(), keyring: new Keyring([{ id: 'store-k1', key: randomBytes(32) }]) });
    nativeConnection = await NativeConnection.connect({ address: temporal.address });
    connection = await Connection.connect({ address: temporal.address });
    worker = await Worker.create({
      connection: nativeConnection,
      taskQueue: userQueue,
      workflowsPath: require.resolve('../fixtures/connector-workflows'),
      plugins: [new ConnectorsPlugin({ encryption: { keyring }, connectorWorker: { service, taskQueue: connectorQueue } })],
    });
    running = worker.run();
  });
  afterAll(async () => {
    worker?.shutdown();
    await running;
    await browser?.close();
    await connection?.close();
    await nativeConnection?.close();
    await store?.close();
    await database?.drop();
    await temporal?.stop();
    await codec?.close();
    await api?.close();
  });

  test('the connection child shows decoded input and result, with the override token masked', async () => {
    const name = uniqueName('notes').toLowerCase();
    await service.apply({ name, type: 'REST', value: { base_url: api.url, path: '/notes' } });
    const client = new Client({ connection, plugins: [new ConnectorsPlugin({ encryption: { keyring } })] });
    const parentId = uniqueName('encrypted');
    const outcome = await client.workflow.execute<(a: unknown) => Promise<CallOutcome>>('callConnector', {
      taskQueue: userQueue,
      workflowId: parentId,
      args: [{ connector: name, overrides: { method: 'post', data: { note: visibleNote }, auth: { type: 'bearer', token: overrideToken } }, options: { taskQueue: connectorQueue, retry: { maximumAttempts: 1 } } }],
    });
    expect(outcome.error).toBeUndefined();
    const childId = outcome.workflowId!;

    // Without the codec, history holds neither value.
    const raw = await historyText(new Client({ connection }), childId);
    expect(raw).not.toContain(visibleNote);
    expect(raw).not.toContain(overrideToken);

    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(`${temporal.uiUrl}/namespaces/default/workflows/${encodeURIComponent(childId)}`);
    await waitForText(page, visibleNote); // decoded by the codec server, in the browser
    await page.screenshot({ path: path.resolve(__dirname, '..', '..', 'test-artifacts', 'screenshots', 'connection-decoded-by-codec-server.png'), fullPage: true });
    const text = await pageText(page);
    expect(text).toContain(`"connector": "${name}"`);
    expect(text).toContain('"token": "********"');
    expect(text).not.toContain(overrideToken);
    await page.close();
  });
});
