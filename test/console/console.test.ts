import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { RunningManagementApi } from '../../api/server';
import { ConnectorLimiter } from '../../core/limits';
import type { ConnectorService } from '../../core/service';
import type { ConnectorStore } from '../../core/store/connector-store';
import type { ScratchDatabase } from '../../scripts/devstack/postgres';
import { freePort } from '../../scripts/devstack/process';
import type { TestHttpServer } from '../fixtures/http-server';
import { soon } from '../support/browser';
import { codeText, openConnector, replaceCode, startConsoleStack } from '../support/console-stack';
import { recordSecrets } from '../support/leak-sweep';

const SCREENSHOTS = path.resolve(__dirname, '..', '..', 'test-artifacts', 'screenshots', 'console');
const hex = () => randomBytes(6).toString('hex');
const RW_TOKEN = `console-rw-${hex()}`;
const RO_TOKEN = `console-ro-${hex()}`;
/** The bearer token of the connector made through the form: it must reach the REST target and nothing else. */
const SECRET = `console-bearer-${hex()}`;
/** Not a secret: text that must show up wherever the page's data goes, so the leak checks are known to see. */
const MARKER = `marker-${hex()}`;
recordSecrets('the tokens and secrets of console.test.ts', [RW_TOKEN, RO_TOKEN, SECRET]);

// The connector console in headless Chromium, against `connectors serve`'s API on the real
// PostgreSQL store, with a real REST target for Test and Introspect.
describe('the connector console', () => {
  let scratch: ScratchDatabase;
  let store: ConnectorStore;
  let service: ConnectorService;
  let target: TestHttpServer;
  let api: RunningManagementApi;
  let browser: Browser;
  let close: () => Promise<void>;
  let context: BrowserContext;
  let page: Page;
  const name = `billing_${hex()}`;
  /** Every response body and request body the pages exchanged with the API, and every URL they opened. */
  const responses: string[] = [];
  const requests: string[] = [];
  const urls: string[] = [];
  let shot = 0;

  async function capture(p: Page, label: string): Promise<void> {
    shot += 1;
    await p.screenshot({ path: path.join(SCREENSHOTS, `${String(shot).padStart(2, '0')}-${label}.png`), fullPage: true });
  }

  /** A page of a fresh browser context (its own cookies) whose requests and responses are recorded. */
  async function openPage(): Promise<{ context: BrowserContext; page: Page }> {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const p = await ctx.newPage();
    p.on('response', (response) => {
      void response.text().then(
        (text) => responses.push(text),
        () => undefined,
      );
    });
    p.on('request', (request) => {
      urls.push(request.url());
      const body = request.postData();
      if (body) requests.push(body);
    });
    await p.goto(`${api.url}/`);
    return { context: ctx, page: p };
  }

  async function signIn(p: Page, token: string): Promise<void> {
    await p.locator('#token').fill(token);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.locator('#connectors').waitFor();
  }

  async function newSignedInPage(token: string): Promise<{ context: BrowserContext; page: Page }> {
    const opened = await openPage();
    await signIn(opened.page, token);
    return opened;
  }

  /** The page's whole DOM, input values included (a value typed into an input is a property, not markup). */
  async function domText(p: Page): Promise<string> {
    // Expressions run in the browser; as strings they need no DOM typings in this Node project.
    const values = await p.evaluate<string>("[...document.querySelectorAll('input, textarea, select')].map((e) => e.value).join('\\n')");
    return `${await p.content()}\n${values}`;
  }

  async function storageText(p: Page): Promise<string> {
    return p.evaluate<string>('JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage } })');
  }

  beforeAll(async () => {
    // Numbered afresh each run: no screenshot of an earlier run stays beside this run's.
    rmSync(SCREENSHOTS, { recursive: true, force: true });
    mkdirSync(SCREENSHOTS, { recursive: true });
    ({ scratch, store, service, target, api, browser, close } = await startConsoleStack({
      database: 'tc_console',
      tokens: { readWrite: [RW_TOKEN], readOnly: [RO_TOKEN] },
      temporalUi: { url: 'http://127.0.0.1:8233', namespace: 'default' },
      handler: (request, res) => {
        res.setHeader('content-type', 'application/json');
        if (request.path === '/openapi.json') {
          res.end(JSON.stringify({ openapi: '3.1.0', info: { title: 'Billing', version: '2' }, paths: { '/invoices': { get: { summary: 'List invoices' }, post: { summary: 'Create an invoice' } } } }));
        } else {
          res.end(JSON.stringify({ ok: true }));
        }
      },
    }));
  });

  afterAll(async () => {
    await close?.();
  });

  test('signs in with a token, which ends up in an HttpOnly SameSite cookie and nowhere in the page, and lists connectors with filters', async () => {
    await service.apply({ name: 'orders_db', type: 'POSTGRES', description: 'Orders database', value: { host: '127.0.0.1', port: 5432, database: scratch.name, user: 'postgres' } });
    await service.apply({ name: 'billing_mirror', type: 'REST', description: 'Mirror', value: { base_url: target.url } });

    const { context: ctx, page: p } = await openPage();
    await p.locator('#token').fill(RW_TOKEN);
    await capture(p, 'sign-in');
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.locator('#connectors').waitFor();
    // The sign-in request carried the token (so the checks below can see it where it is).
    expect(urls.some((u) => u.endsWith('/v1/session'))).toBe(true);
    await soon(async () => expect((await p.locator('#access').textContent())?.trim()).toBe('read-write'));
    context = ctx;
    page = p;

    const cookies = await ctx.cookies();
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/', expires: -1 });
    expect(cookies[0].value).not.toContain(RW_TOKEN);
    expect(await p.locator('#token').count()).toBe(0);
    expect(await storageText(p)).not.toContain(RW_TOKEN);
    expect(await domText(p)).not.toContain(RW_TOKEN);
    expect(urls.join('\n')).not.toContain(RW_TOKEN);

    const rows = p.locator('#connectors tbody tr');
    await soon(async () => expect(await rows.count()).toBe(2));
    await soon(async () => expect(await p.locator('#connectors tbody tr[data-name="orders_db"]').textContent()).toContain('POSTGRES'));
    await soon(async () => expect(await p.locator('#connectors tbody tr[data-name="orders_db"]').textContent()).toContain('Orders database'));
    await p.locator('#filter-type').selectOption('REST');
    await soon(async () => expect(await rows.count()).toBe(1));
    await soon(async () => expect(await rows.first().getAttribute('data-name')).toBe('billing_mirror'));
    await p.locator('#filter-type').selectOption('');
    await p.locator('#filter-name').fill('orders');
    await soon(async () => expect(await rows.count()).toBe(1));
    await soon(async () => expect(await rows.first().getAttribute('data-name')).toBe('orders_db'));
    await capture(p, 'list-filtered');
    await p.locator('#filter-name').fill('');
  });

  test('creates a REST connector in the form, edits it as YAML, sees the edit in the form, and saves it', async () => {
    await page.locator('#new-connector').click();
    await page.locator('[data-path="name"] input').fill(name);
    await soon(async () => expect(await page.locator('#field-type').inputValue()).toBe('REST'));
    await page.locator('[data-path="description"] textarea').fill(`Billing API ${MARKER}`);
    await page.locator('[data-path="value.base_url"] input').fill(target.url);
    await page.locator('[data-path="value.auth"] select').first().selectOption('bearer');
    const token = page.locator('[data-path="value.auth.token"] input');
    await soon(async () => expect(await token.getAttribute('type')).toBe('password'));
    await token.fill(SECRET);
    await page.locator('[data-path="locked"] button', { hasText: '+ Add' }).click();
    await page.locator('[data-path="locked.0"] input').fill('base_url');
    await capture(page, 'create-form');

    await page.locator('#mode-code').click();
    const yaml = await codeText(page);
    expect(yaml).toContain(`name: ${name}`);
    expect(yaml).toContain(`base_url: ${target.url}`);
    expect(yaml).toMatch(/auth:\n\s+type: bearer/);
    expect(yaml).toContain('- base_url');
    // An edit in YAML: a field the form has not touched, and a changed description.
    const edited = yaml.replace(`Billing API ${MARKER}`, `Billing API, edited as YAML ${MARKER}`).replace(`base_url: ${target.url}`, `base_url: ${target.url}\n  health_path: /health\n  openapi_path: /openapi.json`);
    await replaceCode(page, edited);
    await capture(page, 'create-code');

    await page.locator('#mode-form').click();
    await soon(async () => expect(await page.locator('[data-path="value.health_path"] input').inputValue()).toBe('/health'));
    await soon(async () => expect(await page.locator('[data-path="value.openapi_path"] input').inputValue()).toBe('/openapi.json'));
    await soon(async () => expect(await page.locator('[data-path="description"] textarea').inputValue()).toBe(`Billing API, edited as YAML ${MARKER}`));
    await soon(async () => expect(await page.locator('[data-path="value.auth.token"] input').inputValue()).toBe(SECRET));
    await capture(page, 'form-after-code');

    await page.locator('#save').click();
    await soon(async () => expect(await page.locator('#banner').textContent()).toContain(`Saved: ${name} is at version 1`));
    const stored = await service.get(name);
    expect(stored).toMatchObject({ version: 1, description: `Billing API, edited as YAML ${MARKER}`, locked: ['base_url'], value: { health_path: '/health', auth: { type: 'bearer', token: '********' } } });
    // The form sent the token (the request recorder sees it), and the store keeps it encrypted.
    expect(requests.join('\n')).toContain(SECRET);
    expect(JSON.stringify(await store.get(name))).not.toContain(SECRET);
  });

  test('JSON pasted into the code view of a new connector becomes the form, and is created', async () => {
    await page.goto(`${api.url}/#/new`);
    await page.locator('#mode-code').click();
    const pasted = JSON.stringify({ name: 'pasted_llm', type: 'OPENAI', description: 'Pasted as JSON', value: { base_url: `${target.url}/v1`, default_model: 'small-model', timeout: 5000 } }, null, 2);
    await replaceCode(page, pasted);
    await page.locator('#mode-form').click();
    await soon(async () => expect(await page.locator('#field-type').inputValue()).toBe('OPENAI'));
    expect(await page.locator('[data-path="value.default_model"] input').inputValue()).toBe('small-model');
    expect(await page.locator('[data-path="value.timeout"] input').inputValue()).toBe('5000');
    expect(await page.locator('[data-path="value.api_key"] input').getAttribute('type')).toBe('password');
    await page.locator('#save').click();
    await soon(async () => expect(await page.locator('#banner').textContent()).toContain('Saved: pasted_llm is at version 1'));
    expect(await service.get('pasted_llm')).toMatchObject({ type: 'OPENAI', value: { default_model: 'small-model', timeout: 5000 } });
    await openConnector(page, api.url, `${name}`);
    await page.locator('[data-path="value.auth.token"] input').waitFor();
  });

  test('after a reload the stored token shows as ******** and no secret is in the DOM, the storage or any response', async () => {
    await page.reload();
    await page.locator('[data-path="value.auth.token"] input').waitFor();
    const token = page.locator('[data-path="value.auth.token"] input');
    await soon(async () => expect(await token.inputValue()).toBe('********'));
    await soon(async () => expect(await token.getAttribute('type')).toBe('password'));
    await soon(async () => expect((await page.locator('#connector-version').textContent())?.trim()).toBe('version 1'));
    await capture(page, 'reloaded-masked');

    // The checks can see: the marker is in the DOM and in the responses, and a value planted in storage is read back.
    const dom = await domText(page);
    expect(dom).toContain(MARKER);
    expect(responses.join('\n')).toContain(MARKER);
    await page.evaluate(`sessionStorage.setItem('probe', ${JSON.stringify(MARKER)})`);
    expect(await storageText(page)).toContain(MARKER);
    await page.evaluate("sessionStorage.removeItem('probe')");

    expect(dom).not.toContain(SECRET);
    expect(await storageText(page)).not.toContain(SECRET);
    expect(responses.join('\n')).not.toContain(SECRET);
    await page.locator('#mode-code').click();
    await soon(async () => expect(await codeText(page)).toMatch(/token: ["']?\*{8}["']?/));
    expect(await domText(page)).not.toContain(SECRET);
    await page.locator('#mode-form').click();
  });

  test('shows a validation problem next to its field, and a YAML error at its line', async () => {
    await page.locator('[data-path="value.method"] input').fill('not a method!');
    await page.locator('[data-path="timeout"] input').fill('soon');
    await page.locator('#save').click();
    await soon(async () => expect(await page.locator('#banner').textContent()).toContain('Not saved'));
    await soon(async () => expect(await page.locator('[data-path="timeout"]').getAttribute('class')).toMatch(/has-error/));
    await soon(async () => expect(await page.locator('[data-path="timeout"] .field-error').textContent()).not.toBe(''));
    await capture(page, 'form-field-error');

    await page.locator('#mode-code').click();
    const lines = (await codeText(page)).split('\n');
    const at = lines.findIndex((l) => l.startsWith('description:'));
    lines.splice(at + 1, 0, 'description: written twice');
    await replaceCode(page, lines.join('\n'));
    // Switching to the form refuses, naming the line.
    await page.locator('#mode-form').click();
    await soon(async () => expect(await page.locator('#banner').textContent()).toContain(`line ${at + 2}`));
    // Saving sends the YAML as it is: the API's reader names the line, and the editor marks it.
    await page.locator('#save').click();
    await soon(async () => expect(await page.locator('#banner').textContent()).toContain(`Not saved: line ${at + 2}`));
    await page.locator('#code .cm-lintRange-error').first().waitFor({ state: 'visible' });
    await capture(page, 'yaml-error-at-line');
    expect((await service.get(name)).version).toBe(1);
    // Leaving with unsaved changes asks first; accepting drops the broken edit.
    const asked = new Promise<string>((resolve) => page.once('dialog', (dialog) => void dialog.accept().then(() => resolve(dialog.type()))));
    await page.reload();
    expect(await asked).toBe('beforeunload');
    await page.locator('[data-path="description"] textarea').waitFor();
  });

  test('a stale save from a second page is refused with a way to reload, and nothing is overwritten', async () => {
    const second = await newSignedInPage(RW_TOKEN);
    await openConnector(second.page, api.url, `${name}`);
    await openConnector(page, api.url, `${name}`);
    for (const p of [page, second.page]) await p.locator('[data-path="description"] textarea').waitFor();

    await page.locator('[data-path="description"] textarea').fill(`Saved first ${MARKER}`);
    await page.locator('#save').click();
    await soon(async () => expect(await page.locator('#banner').textContent()).toContain('version 2'));

    await second.page.locator('[data-path="description"] textarea').fill('Saved second, from a stale page');
    await second.page.locator('#save').click();
    await soon(async () => expect(await second.page.locator('#banner').textContent()).toContain('changed by someone else'));
    await soon(async () => expect(await second.page.locator('#banner').textContent()).toContain('version 2'));
    await capture(second.page, 'stale-save-refused');
    expect(await service.get(name)).toMatchObject({ version: 2, description: `Saved first ${MARKER}` });

    await second.page.locator('#reload').click();
    await soon(async () => expect(await second.page.locator('[data-path="description"] textarea').inputValue()).toBe(`Saved first ${MARKER}`));
    await soon(async () => expect((await second.page.locator('#connector-version').textContent())?.trim()).toBe('version 2'));
    await second.context.close();
  });

  test('Test says ok for a reachable target and a sentence for an unreachable one', async () => {
    await page.locator('#tab-test').click();
    await page.locator('#run-test').click();
    await soon(async () => expect(await page.locator('#test-result .outcome').getAttribute('data-ok')).toBe('true'));
    await soon(async () => expect(await page.locator('#test-result').textContent()).toContain('ok: HTTP 200'));
    await capture(page, 'test-ok');
    // The stored token did go where the connector goes.
    expect(target.requests.at(-1)).toMatchObject({ path: '/health', headers: { authorization: `Bearer ${SECRET}` } });

    await service.apply({ name: 'unreachable_api', type: 'REST', value: { base_url: `http://127.0.0.1:${await freePort()}`, timeout: '3s' }, retry: { maximum_attempts: 1 } });
    await openConnector(page, api.url, `unreachable_api`);
    await page.locator('#tab-test').click();
    await page.locator('#run-test').click();
    await soon(async () => expect(await page.locator('#test-result .outcome').getAttribute('data-ok')).toBe('false'));
    const sentence = (await page.locator('#test-result').innerText()).trim();
    expect(sentence).toMatch(/^failed: .*(refused|not reachable|connect)/i);
    expect(sentence).not.toMatch(/\n\s+at |Error:/);
    await capture(page, 'test-unreachable');
  });

  test('Introspect shows a REST API’s paths and a database’s schemas and tables as a tree', async () => {
    await openConnector(page, api.url, `${name}`);
    await page.locator('#tab-introspect').click();
    await page.locator('#run-introspect').click();
    await soon(async () => expect(await page.locator('#openapi-paths').textContent()).toContain('/invoices'));
    await soon(async () => expect(await page.locator('#openapi-paths').textContent()).toContain('Create an invoice'));
    await capture(page, 'introspect-openapi');

    await openConnector(page, api.url, `orders_db`);
    await page.locator('#tab-introspect').click();
    await page.locator('#run-introspect').click();
    const table = page.locator('#introspection-tree [data-table="public.tc_connector_versions"]');
    await table.waitFor({ state: 'visible' });
    await table.locator('summary').click();
    await soon(async () => expect(await table.textContent()).toContain('created_by'));
    await capture(page, 'introspect-sql');
  });

  test('History lists the changed fields of each version, and Rollback writes an old version as the newest', async () => {
    await openConnector(page, api.url, `${name}`);
    await page.locator('#tab-history').click();
    const rows = page.locator('#history tbody tr');
    await soon(async () => expect(await rows.count()).toBe(2));
    await soon(async () => expect((await page.locator('#history tr[data-version="2"] .changed').textContent())?.trim()).toBe('description'));
    await soon(async () => expect((await page.locator('#history tr[data-version="1"] .changed').textContent())?.trim()).toBe('created'));
    await capture(page, 'history');

    await page.locator('[data-rollback="1"]').click();
    await soon(async () => expect(await rows.count()).toBe(3));
    await soon(async () => expect((await page.locator('#connector-version').textContent())?.trim()).toBe('version 3'));
    await capture(page, 'history-after-rollback');
    expect(await service.get(name)).toMatchObject({ version: 3, description: `Billing API, edited as YAML ${MARKER}`, value: { auth: { token: '********' } } });
  });

  test('links the connector to its connections in the Temporal Web UI', async () => {
    const href = await page.locator('#temporal-link').getAttribute('href');
    expect(href).toBe(`http://127.0.0.1:8233/namespaces/default/workflows?query=${encodeURIComponent(`ConnectorName="${name}"`)}`);
  });

  test('a read-only token gets a read-only page that cannot save, even by calling the API itself', async () => {
    const reader = await newSignedInPage(RO_TOKEN);
    await soon(async () => expect((await reader.page.locator('#access').textContent())?.trim()).toBe('read-only'));
    await soon(async () => expect(await reader.page.locator('#new-connector').count()).toBe(0));
    await openConnector(reader.page, api.url, `${name}`);
    await reader.page.locator('[data-path="description"] textarea').waitFor();
    expect(await reader.page.locator('#save').isDisabled()).toBe(true);
    expect(await reader.page.locator('#delete').isDisabled()).toBe(true);
    expect(await reader.page.locator('[data-path="description"] textarea').isDisabled()).toBe(true);
    await capture(reader.page, 'read-only');
    // The page's own session, used directly, is refused too.
    const status = await reader.page.evaluate(async (connector) => {
      const response = await fetch(`/v1/connectors/${connector}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', 'if-match': '"3"', 'x-tc-console': '1' },
        body: JSON.stringify({ type: 'REST', description: 'overwritten by a reader' }),
      });
      return response.status;
    }, name);
    expect(status).toBe(403);
    // Test is allowed: it changes nothing.
    await reader.page.locator('#tab-test').click();
    await reader.page.locator('#run-test').click();
    await soon(async () => expect(await reader.page.locator('#test-result .outcome').getAttribute('data-ok')).toBe('true'));
    expect((await service.get(name)).version).toBe(3);
    await reader.context.close();
  });

  test('Reset limits ends the back-off a 429 set on a connector with limits; a read-only token cannot press it', async () => {
    const limited = `limited_${hex()}`;
    await service.apply({ name: limited, type: 'REST', value: { base_url: target.url }, limits: { max_concurrent: 2 } });
    // The back-off a 429 leaves, as a connector worker sets it.
    await new ConnectorLimiter(store.db).backOff(limited, 300_000);
    await openConnector(page, api.url, limited);
    await page.getByRole('button', { name: 'Reset limits' }).click();
    await soon(async () => expect(await page.locator('#banner').textContent()).toContain(`the back-off of ${limited} was cleared`));
    await capture(page, 'reset-limits');
    expect((await service.limitsUsage(await service.get(limited)))?.backoff_until).toBeUndefined();

    const reader = await newSignedInPage(RO_TOKEN);
    await openConnector(reader.page, api.url, limited);
    expect(await reader.page.getByRole('button', { name: 'Reset limits' }).isDisabled()).toBe(true);
    await reader.context.close();
    await openConnector(page, api.url, name);
  });

  test('Delete asks first, then removes the connector', async () => {
    await page.locator('#tab-edit').click();
    await page.locator('#delete').click();
    await page.locator('#confirm-delete').waitFor({ state: 'visible' });
    await capture(page, 'delete-confirm');
    await page.locator('#cancel-delete').click();
    expect((await service.get(name)).version).toBe(3);

    await page.locator('#delete').click();
    await page.locator('#confirm-delete-button').click();
    await page.locator('#connectors').waitFor();
    await soon(async () => expect(await page.locator(`#connectors tr[data-name="${name}"]`).count()).toBe(0));
    await capture(page, 'after-delete');
    await expect(service.get(name)).rejects.toThrow(/does not exist/);
  });

  test('no page ever received a secret or held one in its DOM or storage', async () => {
    expect(responses.length).toBeGreaterThan(20);
    const everything = responses.join('\n');
    expect(everything).toContain(MARKER);
    for (const secret of [SECRET, RW_TOKEN, RO_TOKEN]) expect(everything).not.toContain(secret);
    expect(urls.join('\n')).not.toMatch(new RegExp(`${RW_TOKEN}|${RO_TOKEN}|${SECRET}`));
    expect(await domText(page)).not.toContain(SECRET);
    expect(await storageText(page)).not.toMatch(new RegExp(`${RW_TOKEN}|${SECRET}`));
    await context.close();
  });
});
