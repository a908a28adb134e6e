// What the connector console's browser tests share: the management API with the console on a
// scratch PostgreSQL store, a REST target for Test and Introspect, headless Chromium, and the few
// ways a test reads and drives the page.
import { randomBytes } from 'node:crypto';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startManagementApi, type ApiTokens, type RunningManagementApi } from '../../api/server';
import { ConnectorRegistry } from '../../connectors/registry';
import { Keyring } from '../../core/keyring';
import { createConnectionRunner } from '../../core/runner';
import { ConnectorService } from '../../core/service';
import { ConnectorStore } from '../../core/store/connector-store';
import { PgDatabase } from '../../core/store/database';
import { CHROMIUM_ARGS } from '../../scripts/devstack/chromium';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import { startTestHttpServer, type TestHttpHandler, type TestHttpServer } from '../fixtures/http-server';
import { soon } from './browser';
import { testStack } from './stack';

export interface ConsoleStack {
  scratch: ScratchDatabase;
  store: ConnectorStore;
  service: ConnectorService;
  target: TestHttpServer;
  api: RunningManagementApi;
  browser: Browser;
  close(): Promise<void>;
}

/** The API (with the console and a runner) on a store of its own, a REST target answering with `handler` (default: an echo), and Chromium. */
export async function startConsoleStack(options: { database: string; tokens: ApiTokens; temporalUi?: { url: string; namespace: string }; handler?: TestHttpHandler }): Promise<ConsoleStack> {
  const scratch = await createScratchDatabase(options.database);
  const store = new ConnectorStore(new PgDatabase({ connectionString: scratch.url }));
  await store.migrate();
  const service = new ConnectorService({ store, registry: new ConnectorRegistry(), keyring: new Keyring([{ id: 'k1', key: randomBytes(32) }]) });
  const target = await startTestHttpServer(options.handler);
  const api = await startManagementApi({ service, runner: createConnectionRunner({ service }), tokens: options.tokens, temporalUi: options.temporalUi, port: 0 });
  const browser = await chromium.launch({ executablePath: testStack().chromiumPath, headless: true, args: CHROMIUM_ARGS });
  return {
    scratch,
    store,
    service,
    target,
    api,
    browser,
    async close() {
      await browser.close();
      await api.close();
      await service.close();
      await store.close();
      await scratch.drop();
      await target.close();
    },
  };
}

/**
 * Opens a connector's page and waits until it shows that connector: a change of the URL's fragment
 * returns at once, and a click right after it could land on the page being replaced.
 */
export async function openConnector(p: Page, apiUrl: string, connector: string): Promise<void> {
  await p.goto(`${apiUrl}/#/c/${connector}`);
  await soon(async () => expect((await p.locator('#connector-name').textContent())?.trim()).toBe(connector));
  await p.locator('#panel-edit').waitFor();
}

/** The code view's text, line by line as CodeMirror shows it (short documents are rendered whole). */
export async function codeText(p: Page): Promise<string> {
  return (await p.locator('#code .cm-line').allTextContents()).join('\n');
}

/** Replaces the code view's whole text, as a person selecting all and typing would. */
export async function replaceCode(p: Page, text: string): Promise<void> {
  await p.locator('#code .cm-content').click();
  await p.keyboard.press('Control+A');
  await p.keyboard.insertText(text);
}
