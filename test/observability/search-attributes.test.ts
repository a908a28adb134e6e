import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { randomBytes } from 'node:crypto';
import { ConnectorRegistry } from '../../connectors/registry';
import { startTemporalDevServer, type TemporalDevServer } from '../../scripts/devstack/temporal';
import { createConnectorWorker, runConnectorWorker } from '../../worker/connector-worker';
import { Keyring } from '../../core/keyring';
import { ConnectorService } from '../../core/service';
import { ConnectorStore } from '../../core/store/connector-store';
import { PgliteDatabase } from '../../core/store/database';
import { startTestHttpServer, type TestHttpServer } from '../fixtures/http-server';
import { uniqueName } from '../support/stack';
import { prebuiltBundle } from '../support/workflow-bundles';

// A dev server of its own, started WITHOUT the connector search attributes, as a fresh production namespace is.
describe('the connector worker on a fresh namespace', () => {
  let temporal: TemporalDevServer;
  let api: TestHttpServer;

  beforeAll(async () => {
    [temporal, api] = await Promise.all([startTemporalDevServer({ uiPort: false, searchAttributes: {} }), startTestHttpServer()]);
  });
  afterAll(async () => {
    await temporal?.stop();
    await api?.close();
  });

  test('registers ConnectorName and ConnectorType when missing, so list queries by connector work', async () => {
    const connection = await Connection.connect({ address: temporal.address });
    const client = new Client({ connection });
    const before = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
    expect(Object.keys(before.customAttributes ?? {})).not.toContain('ConnectorName');

    const store = new ConnectorStore(await PgliteDatabase.open());
    await store.migrate();
    const service = new ConnectorService({ store, registry: new ConnectorRegistry(), keyring: new Keyring([{ id: 'k', key: randomBytes(32) }]) });
    const nativeConnection = await NativeConnection.connect({ address: temporal.address });
    const taskQueue = uniqueName('connectors');
    // The `connection` bundle global setup made: what this test checks happens before any bundling.
    const workerOptions = { workflowBundle: prebuiltBundle('connection') };
    const worker = await createConnectorWorker({ connection: nativeConnection, taskQueue, service, workerOptions });
    const running = runConnectorWorker(worker, service);
    try {
      const after = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
      expect(after.customAttributes).toMatchObject({ ConnectorName: 2, ConnectorType: 2 }); // 2 = KEYWORD

      // A second worker on the same namespace finds them there and does not fail.
      const second = await createConnectorWorker({ connection: nativeConnection, taskQueue: uniqueName('second'), service, workerOptions });
      await second.runUntil(Promise.resolve());

      // A connection started directly (as connect() would) is found by a list query on ConnectorName.
      await service.apply({ name: 'billing_api', type: 'REST', value: { url: `${api.url}/ping` } });
      const workflowId = uniqueName('direct');
      await client.workflow.execute('connection', {
        taskQueue,
        workflowId,
        args: [{ connector: 'billing_api', descriptor: { name: 'billing_api', type: 'REST', version: 1, summary: 'REST billing_api GET /ping' } }],
        searchAttributes: { ConnectorName: ['billing_api'], ConnectorType: ['REST'] },
      });
      let found: string[] = [];
      for (let i = 0; i < 50 && !found.includes(workflowId); i++) {
        found = [];
        for await (const wf of client.workflow.list({ query: 'ConnectorName = "billing_api"' })) found.push(wf.workflowId);
        if (!found.includes(workflowId)) await new Promise((r) => setTimeout(r, 200));
      }
      expect(found).toContain(workflowId);
    } finally {
      worker.shutdown();
      await running;
      await store.close();
      await nativeConnection.close();
      await connection.close();
    }
  });
});
