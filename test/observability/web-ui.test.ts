import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import vault from 'node-vault';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM_ARGS } from '../../scripts/devstack/chromium';
import { startTestHttpServer, type TestHttpServer } from '../fixtures/http-server';
import { pageText, waitForText } from '../support/browser';
import { startHarness, type Harness } from '../support/harness';
import { testStack, uniqueName } from '../support/stack';

const SCREENSHOTS = path.resolve(__dirname, '..', '..', 'test-artifacts', 'screenshots');

// A person inspecting a run in the real Temporal Web UI, in headless Chromium.
describe('the Temporal Web UI shows connections', () => {
  const stack = testStack();
  let h: Harness;
  let api: TestHttpServer;
  let browser: Browser;
  const storeSecret = `ui-store-secret-${Date.now()}`;
  const vaultSecret = `ui-vault-secret-${Date.now()}`;
  const pagesSeen: string[] = [];

  beforeAll(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    [h, api, browser] = await Promise.all([
      startHarness(),
      startTestHttpServer(),
      chromium.launch({ executablePath: stack.chromiumPath, headless: true, args: CHROMIUM_ARGS }),
    ]);
  });
  afterAll(async () => {
    await browser?.close();
    await h?.shutdown();
    await api?.close();
  });

  async function capture(page: Page, name: string): Promise<string> {
    await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
    const text = await pageText(page);
    pagesSeen.push(text);
    return text;
  }

  test('parent run → Relationships → its connection child: summary, input, masked result, no secret anywhere', async () => {
    const secretPath = `secret/data/${uniqueName('ui')}`;
    await vault({ apiVersion: 'v1', endpoint: stack.vault.address, token: stack.vault.token }).write(secretPath, { data: { token: vaultSecret } });
    const name = uniqueName('billing').toLowerCase();
    await h.service.apply({
      name,
      type: 'REST',
      value: { base_url: api.url, path: '/invoices', method: 'post', headers: { 'x-api-key': storeSecret }, auth: { type: 'bearer' } },
      vault_secrets: [{ path: secretPath, map: { token: 'auth.token' } }],
    });
    const { result, workflowId: parentId } = await h.call(name, { data: { customer: 'acme', amount: 42 } });
    expect(result.error).toBeUndefined();
    const childId = result.workflowId!;

    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(`${stack.temporal.uiUrl}/namespaces/default/workflows/${encodeURIComponent(parentId)}`);
    await page.getByText('callConnector', { exact: true }).first().waitFor();
    await capture(page, 'parent-run');

    await page.getByText('Relationships', { exact: false }).first().click();
    await page.getByRole('link', { name: childId }).click();
    await page.waitForURL((url) => url.pathname.includes(encodeURIComponent(childId)));
    await page.getByText('Parent Workflow').waitFor();
    const child = await capture(page, 'connection-child');
    expect(child).toContain('connection'); // workflow type
    expect(child).toContain(parentId); // parent link
    // Input: the connector reference and the workflow's overrides.
    expect(child).toContain(`"connector": "${name}"`);
    expect(child).toContain('"customer": "acme"');
    // Result: output, masked effective inputs, provenance, version.
    expect(child).toContain('"status": 200');
    expect(child).toContain('"token": "********"');
    expect(child).toContain(`"auth.token": "vault:${secretPath}"`);
    expect(child).toContain('"version": 1');

    await page.getByText('User Metadata', { exact: true }).first().click();
    await waitForText(page, `done: REST ${name} POST /invoices in `);
    const metadata = await capture(page, 'connection-user-metadata');
    // The static summary is what the parent knew, the connector's name; the connection's current
    // details and its call (a local activity, under "Events with Metadata") carry the resolved one.
    expect(await (await h.client.workflow.getHandle(childId).describe()).staticSummary()).toBe(name);
    expect(metadata).toMatch(new RegExp(`Local Activity\\s+REST ${name} POST /invoices`));
    await page.close();

    // The echo server returned both secrets in its response; none of them reached any page.
    expect(api.requests[api.requests.length - 1].headers).toMatchObject({ 'x-api-key': storeSecret, authorization: `Bearer ${vaultSecret}` });
    expect(pagesSeen.length).toBeGreaterThanOrEqual(3);
    for (const text of pagesSeen) {
      expect(text).not.toContain(storeSecret);
      expect(text).not.toContain(vaultSecret);
    }
  });

  test('a running connection shows its current details', async () => {
    // The call runs until the page has been read: its answer waits for the test.
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    const slow = await startTestHttpServer(async (_request, res) => {
      await answered;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true }));
    });
    try {
      const name = uniqueName('slow').toLowerCase();
      await h.service.apply({ name, type: 'REST', value: { base_url: slow.url, path: '/slow', headers: { 'x-api-key': storeSecret } } });
      const parentId = uniqueName('running');
      const handle = await h.client.workflow.start('callConnector', {
        taskQueue: h.userQueue,
        workflowId: parentId,
        args: [{ connector: name, options: { taskQueue: h.connectorQueue, retry: { maximumAttempts: 1 } } }],
      });
      const childId = `${parentId}/connection/1`;
      for (let i = 0; i < 100; i++) {
        const started = await h.client.workflow.getHandle(childId).describe().then(() => true, () => false);
        if (started) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      await page.goto(`${stack.temporal.uiUrl}/namespaces/default/workflows/${encodeURIComponent(childId)}`);
      await page.getByText('Running', { exact: true }).first().waitFor();
      await page.getByText('User Metadata', { exact: true }).first().click();
      // Current details come from a metadata query the UI sends to the running workflow; the worker answers it.
      await waitForText(page, `invoke: REST ${name} GET /slow (connector version 1)`);
      const text = await capture(page, 'connection-running-current-details');
      expect(text).not.toContain(storeSecret);
      await page.close();
      answer();
      expect(await handle.result()).toMatchObject({ details: { output: { status: 200 } } });
    } finally {
      answer();
      await slow.close();
    }
  });
});
