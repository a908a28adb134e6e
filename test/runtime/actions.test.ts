import { startTestHttpServer, unusedLocalUrl, type TestHttpServer } from '../fixtures/http-server';
import { callSummary, startHarness, type Harness } from '../support/harness';
import { uniqueName } from '../support/stack';

// Connection tests and introspection are `connection` executions too, so they show in the Web UI.
describe('testing and introspecting connectors from workflow code', () => {
  let h: Harness;
  let api: TestHttpServer;

  beforeAll(async () => {
    [h, api] = await Promise.all([
      startHarness(),
      startTestHttpServer((req, res) => {
        if (req.path === '/openapi.json') {
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ openapi: '3.1.0', info: { title: 'Billing', version: '1' }, paths: { '/invoices': {} } }));
        } else if (req.path === '/health') res.end('ok');
        else {
          res.statusCode = 404;
          res.end();
        }
      }),
    ]);
  });
  afterAll(async () => {
    await h?.shutdown();
    await api?.close();
  });

  const options = () => ({ taskQueue: h.connectorQueue, retry: { maximumAttempts: 1 } });

  test('testConnection reports ok with latency, as a connection execution with a test summary', async () => {
    const name = uniqueName('tested').toLowerCase();
    await h.service.apply({ name, type: 'REST', value: { base_url: api.url, health_path: '/health' } });
    const { result, workflowId } = await h.run<{ ok: boolean; message: string; latency_ms: number }>('testConnector', { connector: name, options: options() });
    expect(result).toMatchObject({ ok: true, message: expect.stringContaining('HTTP 200') });
    expect(result.latency_ms).toBeGreaterThanOrEqual(0);
    const child = await h.client.workflow.getHandle(`${workflowId}/connection/1`).describe();
    expect(await child.staticSummary()).toBe(`${name} test`);
    expect(await callSummary(h.client, `${workflowId}/connection/1`)).toBe(`REST ${name} test`);
  });

  test('testConnection on an unreachable system says so in a sentence instead of failing', async () => {
    const { result } = await h.run<{ ok: boolean; message: string }>('testConnector', {
      connector: { type: 'REST', url: await unusedLocalUrl() },
      options: options(),
    });
    expect(result.ok).toBe(false);
    expect(result.message).toMatch(/refused.*ECONNREFUSED/);
  });

  test('introspecting a REST connector returns its OpenAPI document', async () => {
    const name = uniqueName('openapi').toLowerCase();
    await h.service.apply({ name, type: 'REST', value: { base_url: api.url, openapi_path: '/openapi.json' } });
    const { result } = await h.run<{ openapi_url: string; document: { info: { title: string } } }>('introspect', { connector: name, options: options() });
    expect(result).toMatchObject({ openapi_url: `${api.url}/openapi.json`, document: { openapi: '3.1.0', info: { title: 'Billing' } } });
  });

  test('introspecting a REST connector without openapi_path is refused, naming the field', async () => {
    const name = uniqueName('noopenapi').toLowerCase();
    await h.service.apply({ name, type: 'REST', value: { base_url: api.url } });
    await expect(h.run('introspect', { connector: name, options: options() })).rejects.toMatchObject({
      // The workflow fails with the connector's own failure type, not a child-workflow wrapper.
      cause: { type: 'Connector.InvalidInput', message: expect.stringContaining('openapi_path') },
    });
  });
});
