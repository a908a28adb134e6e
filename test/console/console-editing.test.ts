import { randomBytes } from 'node:crypto';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { parse } from 'yaml';
import type { RunningManagementApi } from '../../api/server';
import type { ConnectorService } from '../../core/service';
import type { ConnectorStore } from '../../core/store/connector-store';
import type { TestHttpServer } from '../fixtures/http-server';
import { soon } from '../support/browser';
import { codeText, openConnector as openConnectorPage, replaceCode, startConsoleStack } from '../support/console-stack';
import { recordSecrets } from '../support/leak-sweep';

const hex = () => randomBytes(6).toString('hex');
const RW_TOKEN = `editing-rw-${hex()}`;
/** Secrets typed into the page: they go to the API once and must not stay in the page after a save. */
const TYPED_IN_FORM = `typed-in-form-${hex()}`;
const TYPED_IN_CODE = `typed-in-code-${hex()}`;
const TYPED_HEADER = `typed-header-${hex()}`;
const WILD_HEADER = `wild-header-${hex()}`;
recordSecrets('the tokens and secrets of console-editing.test.ts', [RW_TOKEN, TYPED_IN_FORM, TYPED_IN_CODE, TYPED_HEADER, WILD_HEADER]);

// Editing in the connector console, in headless Chromium against the API on the real PostgreSQL
// store: what the form and the code view do with what is typed into them, and a session that ends
// in the middle of an edit. Each test opens its own page on a connector of its own.
describe('editing in the connector console', () => {
  let store: ConnectorStore;
  let service: ConnectorService;
  let target: TestHttpServer;
  let api: RunningManagementApi;
  let browser: Browser;
  let close: () => Promise<void>;
  const contexts: BrowserContext[] = [];

  /** A signed-in page of a fresh browser context; every dialog it opens is answered "OK" and recorded. */
  async function signedInPage(): Promise<{ page: Page; context: BrowserContext; dialogs: string[] }> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    contexts.push(context);
    const page = await context.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => {
      dialogs.push(`${dialog.type()}: ${dialog.message()}`);
      void dialog.accept().catch(() => undefined);
    });
    await page.goto(`${api.url}/`);
    await page.locator('#token').fill(RW_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#connectors').waitFor();
    return { page, context, dialogs };
  }

  /**
   * Whether `text` is anywhere in the page's DOM, input values included (a value typed into an input
   * is a property, not markup). A yes or no, so that a failure does not print the whole page.
   */
  async function pageHolds(p: Page, text: string): Promise<boolean> {
    const values = await p.evaluate<string>("[...document.querySelectorAll('input, textarea, select')].map((e) => e.value).join('\\n')");
    return `${await p.content()}\n${values}`.includes(text);
  }

  async function openConnector(p: Page, name: string): Promise<void> {
    await openConnectorPage(p, api.url, name);
    await p.locator('[data-path="description"] textarea').waitFor();
  }

  beforeAll(async () => {
    ({ store, service, target, api, browser, close } = await startConsoleStack({ database: 'tc_console_edit', tokens: { readWrite: [RW_TOKEN], readOnly: [] } }));
  });

  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await close?.();
  });

  test('looking at a connector in the code view changes nothing: leaving it afterwards asks no question', async () => {
    await service.apply({ name: 'looked_at', type: 'REST', description: 'Only looked at', value: { base_url: target.url } });
    const { page, dialogs } = await signedInPage();
    await openConnector(page, 'looked_at');
    await page.locator('#mode-code').click();
    await soon(async () => expect(await codeText(page)).toContain('name: looked_at'));
    await page.locator('#mode-form').click();
    await page.locator('#mode-code').click();
    await page.locator('.crumbs a').click();
    await page.locator('#connectors').waitFor();
    expect(dialogs).toEqual([]);
    expect((await service.get('looked_at')).version).toBe(1);
  });

  test('every type’s form renders without a page error, and a document the form has no widget for in places survives an edit in the form unchanged', async () => {
    // Free JSON, nulls, numbers written as strings, empty objects and lists, arrays of objects, an
    // auth variant, an auth the schema does not know, masked secrets, and keys no schema names.
    const documents: Array<Record<string, unknown>> = [
      {
        name: 'every_rest', type: 'REST', description: 'before',
        value: {
          base_url: 'http://127.0.0.1:1', path: 123, method: 'post', data_format: 'JSONX',
          headers: { Authorization: '********', 'X-A': 'b' }, query: { a: '1', n: 2, z: null }, data: [{ a: 1 }, 'x'],
          auth: { type: 'api_key', name: 'X-Key', value: '********', in: 'header' }, timeout: '5s', unknown_key: { deep: [1, { b: null }] },
        },
        vault_secrets: [{ path: 'secret/data/a', map: {} }, { path: 'p', extra: 1 }], locked: [], retry: {}, timeout: 30, other_top: 'x',
      },
      { name: 'every_rest_auth', type: 'REST', description: 'before', value: { base_url: 'http://x', auth: { type: 'oauth2', client_id: 'x' }, headers: null } },
      {
        name: 'every_openai', type: 'OPENAI', description: 'before',
        value: {
          base_url: 'http://x', api_key: '********', operation: 'chat.completions', temperature: '0.5', stream: 'yes',
          messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: [{ type: 'text', text: 'x' }] }],
          tools: [{ type: 'function', function: { name: 'f', parameters: {} } }], response_format: { type: 'json_schema', json_schema: { name: 'n' } },
        },
      },
      {
        name: 'every_postgres', type: 'POSTGRES', description: 'before',
        value: { host: 'h', port: '5432', database: 'd', user: 'u', password: '********', tls: { ca: 'PEM' }, statements: [{ sql: 'select 1', params: [1, null] }], params: { a: 1 } },
      },
      { name: 'every_mysql', type: 'MYSQL', description: 'before', value: { host: 'h', port: 3306, database: 'd', user: 'u', tls: true, pool_size: null } },
      {
        name: 'every_agent', type: 'AGENT', description: 'before',
        value: { connector: 'c', model: 'm', tools: [{ name: 't', description: 'd', parameters: { type: 'object' } }], messages: [{ role: 'system', content: 's' }] },
      },
      {
        name: 'every_mcp', type: 'MCP', description: 'before',
        value: { url: 'http://127.0.0.1:1/mcp', bearer_token: '********', headers: { 'X-Api-Key': '********', 'X-Team': 'a' }, tool: 'add', arguments: { a: 1, b: [2, { c: null }] }, tool_errors: 'return', timeout: '5s' },
      },
      { name: 'every_tool_agent', type: 'AGENT', description: 'before', value: { connector: 'c', tool_connectors: ['every_mcp', 'x'], max_steps: '3' } },
      {
        name: 'every_smtp', type: 'SMTP', description: 'before',
        value: {
          host: 'h', port: '587', security: 'starttls', tls: { ca: 'PEM', reject_unauthorized: true }, auth: { user: 'u', password: '********' },
          from: 'a@example.com', to: ['b@example.com', 'c@example.com'], bcc: 'd@example.com', subject: 's', text: 't',
          attachments: [{ filename: 'a.csv', content: 'x,y', encoding: 'text' }, { filename: 'b.bin', content: 'AAE=', encoding: 'base64', content_type: null }],
          allowed_recipients: ['*@example.com'],
        },
      },
      {
        name: 'every_ssh', type: 'SSH', description: 'before',
        value: {
          host: 'h', port: '22', user: 'u', host_key: ['SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s'], private_key: '********', passphrase: '********',
          command: 'uptime', env: { A: '1', B: null }, accept_exit_codes: [0, '1'], jump_host: { host: 'j', user: 'u', host_key: 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s' },
        },
      },
      { name: 'every_sftp', type: 'SFTP', description: 'before', value: { host: 'h', user: 'u', password: '********', root: '/srv', operation: 'put', path: 'a.txt', content: 'x', mode: '0644' } },
    ];
    // Each document on a fresh page of the signed-in browser: no page left with edits asks before it goes.
    const { context } = await signedInPage();
    const errors: string[] = [];
    const sorted = (value: unknown): unknown =>
      Array.isArray(value) ? value.map(sorted) : value !== null && typeof value === 'object' ? Object.fromEntries(Object.keys(value).sort().map((k) => [k, sorted((value as Record<string, unknown>)[k])])) : value;
    for (const document of documents) {
      const page = await context.newPage();
      page.on('pageerror', (error) => errors.push(error.message));
      await page.goto(`${api.url}/#/new?type=${String(document.type)}`);
      await page.locator('[data-path="value"]').first().waitFor();
      await page.locator('#mode-code').click();
      await replaceCode(page, JSON.stringify(document, null, 2));
      await page.locator('#mode-form').click();
      expect([document.name, await page.locator('#banner').isVisible()]).toEqual([document.name, false]);
      await page.locator('[data-path="description"] textarea').fill('after');
      await page.locator('#mode-code').click();
      const shown = parse(await codeText(page)) as unknown;
      expect(sorted(shown)).toEqual(sorted({ ...document, description: 'after' }));
      await page.close({ runBeforeUnload: false });
    }
    expect(errors).toEqual([]);
  });

  test('a problem in an item of a list is shown next to that item’s field in the form, and at its line in the code view', async () => {
    await service.apply({ name: 'list_problem', type: 'REST', value: { base_url: target.url }, vault_secrets: [{ path: 'secret/data/a' }, { path: 'secret/data/b' }] });
    const { page } = await signedInPage();
    await openConnector(page, 'list_problem');
    await page.locator('[data-path="vault_secrets.1.path"] input').fill('not a vault path!');
    await page.locator('#save').click();
    await soon(async () => expect(await page.locator('#banner').textContent()).toContain('vault_secrets.1.path'));
    const field = page.locator('.field[data-path="vault_secrets.1.path"]');
    expect(await field.getAttribute('class')).toMatch(/has-error/);
    expect(await field.locator('.field-error').textContent()).toMatch(/Vault API path/);
    expect(await page.locator('.field[data-path="vault_secrets.0.path"]').getAttribute('class')).not.toMatch(/has-error/);

    await page.locator('#mode-code').click();
    await page.locator('#save').click();
    const lines = (await codeText(page)).split('\n');
    const line = lines.findIndex((l) => l.includes('not a vault path!')) + 1;
    await soon(async () => expect(await page.locator('#banner').textContent()).toContain(`line ${line}: vault_secrets.1.path`));
    expect((await service.get('list_problem')).version).toBe(1);
  });

  test('after a save, no secret typed in the form or in the code view is left in the page, not even in the code view’s undo history', async () => {
    const { page } = await signedInPage();
    await page.locator('#new-connector').click();
    await page.locator('[data-path="name"] input').fill('typed_secrets');
    await page.locator('[data-path="value.base_url"] input').fill(target.url);
    await page.locator('[data-path="value.auth"] select').first().selectOption('bearer');
    await page.locator('[data-path="value.auth.token"] input').fill(TYPED_IN_FORM);
    // Through the code view and back, as someone checking their YAML would.
    await page.locator('#mode-code').click();
    await soon(async () => expect(await codeText(page)).toContain(TYPED_IN_FORM));
    await page.locator('#mode-form').click();
    // The check can see it: before the save, the typed secret is in the page.
    expect(await pageHolds(page, TYPED_IN_FORM)).toBe(true);
    await page.locator('#save').click();
    await soon(async () => expect(await page.locator('#banner').textContent()).toContain('Saved: typed_secrets is at version 1'));
    expect(await pageHolds(page, TYPED_IN_FORM)).toBe(false);

    // Now a secret typed in the code view, saved from there.
    await page.locator('#mode-code').click();
    await soon(async () => expect(await codeText(page)).toMatch(/token: ["']?\*{8}["']?/));
    await replaceCode(page, (await codeText(page)).replace(/token: ["']?\*{8}["']?/, `token: ${TYPED_IN_CODE}`));
    expect(await pageHolds(page, TYPED_IN_CODE)).toBe(true);
    await page.locator('#save').click();
    await soon(async () => expect(await page.locator('#banner').textContent()).toContain('Saved: typed_secrets is at version 2'));
    expect(await pageHolds(page, TYPED_IN_CODE)).toBe(false);
    // Undo in the editor goes back no further than the saved connector.
    await page.locator('#code .cm-content').click();
    for (let i = 0; i < 5; i++) await page.keyboard.press('Control+z');
    expect([await pageHolds(page, TYPED_IN_CODE), await pageHolds(page, TYPED_IN_FORM)]).toEqual([false, false]);
    expect(JSON.stringify(await store.get('typed_secrets'))).not.toContain(TYPED_IN_CODE);
  });

  test('a save after the session ended keeps the edit, asks for the token again, and saves once signed in', async () => {
    await service.apply({ name: 'session_ends', type: 'REST', description: 'Before', value: { base_url: target.url } });
    const { page, context, dialogs } = await signedInPage();
    await openConnector(page, 'session_ends');
    await page.locator('[data-path="description"] textarea').fill('Edited while the session ended');
    // The session ends (expired, revoked, or signed out in another tab): the browser has no cookie any more.
    await context.clearCookies();
    await page.locator('#save').click();
    const again = page.locator('#sign-in-again');
    await again.waitFor({ state: 'visible' });
    expect(await again.textContent()).toMatch(/session has ended/i);
    // Nothing was lost: the edit is still in the form behind the dialog.
    expect(await page.locator('[data-path="description"] textarea').inputValue()).toBe('Edited while the session ended');
    await again.locator('input[type="password"]').fill(RW_TOKEN);
    // The check below can see the token where it is while typed.
    expect(await pageHolds(page, RW_TOKEN)).toBe(true);
    await again.getByRole('button', { name: /sign in and save/i }).click();
    await soon(async () => expect(await page.locator('#banner').textContent()).toContain('Saved: session_ends is at version 2'));
    expect(await service.get('session_ends')).toMatchObject({ version: 2, description: 'Edited while the session ended' });
    expect(await pageHolds(page, RW_TOKEN)).toBe(false);
    expect(dialogs).toEqual([]);
  });

  test('a header named in the form keeps the value typed right after its name, and is a password field when the name is sensitive', async () => {
    const { page } = await signedInPage();
    await page.locator('#new-connector').click();
    await page.locator('[data-path="name"] input').fill('typed_header');
    await page.locator('[data-path="value.base_url"] input').fill(target.url);
    await page.locator('[data-path="value.headers"] button', { hasText: '+ Add' }).click();
    const name = page.locator('[data-path="value.headers"] input.map-key').first();
    await name.fill('Authorization');
    // Tab from the name to its value and type at once, as people do.
    await name.press('Tab');
    await page.keyboard.type(`Bearer ${TYPED_HEADER}`);
    const value = page.locator('[data-path="value.headers.Authorization"] input:not(.map-key)');
    await soon(async () => expect(await value.inputValue()).toBe(`Bearer ${TYPED_HEADER}`));
    expect(await value.getAttribute('type')).toBe('password');
    await page.locator('#save').click();
    await soon(async () => expect(await page.locator('#banner').textContent()).toContain('Saved: typed_header is at version 1'));
    expect((await service.get('typed_header')).value).toMatchObject({ headers: { Authorization: '********' } });
    await page.locator('#tab-test').click();
    await page.locator('#run-test').click();
    await soon(async () => expect(await page.locator('#test-result .outcome').getAttribute('data-ok')).toBe('true'));
    expect(target.requests.at(-1)?.headers.authorization).toBe(`Bearer ${TYPED_HEADER}`);
  });

  test("a header named like a credential (X-Auth-Token, X-Hub-Signature) is a password field by the JSON Schema's name rule, stored encrypted and shown masked", async () => {
    const { page } = await signedInPage();
    await page.locator('#new-connector').click();
    await page.locator('[data-path="name"] input').fill('wild_headers');
    await page.locator('[data-path="value.base_url"] input').fill(target.url);
    /** Adds a header row, names it and types its value, as people do (Tab from the name to the value). */
    const addHeader = async (name: string, value: string) => {
      await page.locator('[data-path="value.headers"] button', { hasText: '+ Add' }).click();
      const key = page.locator('[data-path="value.headers"] input.map-key').last();
      await key.fill(name);
      await key.press('Tab');
      await page.keyboard.type(value);
      return page.locator(`[data-path="value.headers.${name}"] input:not(.map-key)`);
    };
    const token = await addHeader('X-Auth-Token', WILD_HEADER);
    const accept = await addHeader('Accept', 'application/json');
    const team = await addHeader('x-team', 'billing');
    await soon(async () => expect(await token.inputValue()).toBe(WILD_HEADER));
    expect(await token.getAttribute('type')).toBe('password');
    expect(await token.getAttribute('data-sensitive')).toBe('true');
    // Ordinary headers stay text: the rule is by name, not every header.
    expect(await accept.getAttribute('type')).toBe('text');
    expect(await team.getAttribute('type')).toBe('text');
    // Renamed to a name the rule covers, the same row becomes a password field, with no round trip to the server.
    const teamName = page.locator('[data-path="value.headers.x-team"] input.map-key');
    await teamName.fill('X-Hub-Signature');
    await teamName.press('Tab');
    const signature = page.locator('[data-path="value.headers.X-Hub-Signature"] input:not(.map-key)');
    await soon(async () => expect(await signature.getAttribute('type')).toBe('password'));

    await page.locator('#save').click();
    await soon(async () => expect(await page.locator('#banner').textContent()).toContain('Saved: wild_headers is at version 1'));
    expect((await service.get('wild_headers')).value).toMatchObject({ headers: { 'X-Auth-Token': '********', 'X-Hub-Signature': '********', Accept: 'application/json' } });
    // Encrypted at rest: the row holds the ordinary header as it is, and the token only as ciphertext.
    const stored = JSON.stringify(await store.get('wild_headers'));
    expect(stored).toContain('application/json');
    expect(stored).not.toContain(WILD_HEADER);

    const reopened = (await signedInPage()).page;
    await openConnector(reopened, 'wild_headers');
    const shown = reopened.locator('[data-path="value.headers.X-Auth-Token"] input:not(.map-key)');
    await soon(async () => expect(await shown.inputValue()).toBe('********'));
    expect(await shown.getAttribute('type')).toBe('password');
    expect(await pageHolds(reopened, 'application/json')).toBe(true);
    expect(await pageHolds(reopened, WILD_HEADER)).toBe(false);
    // The stored token is real: a test sends it to the connector's own server.
    await reopened.locator('#tab-test').click();
    await reopened.locator('#run-test').click();
    await soon(async () => expect(await reopened.locator('#test-result .outcome').getAttribute('data-ok')).toBe('true'));
    expect(target.requests.at(-1)?.headers['x-auth-token']).toBe(WILD_HEADER);
  });

  test('renaming a header to a name the map already has is refused, and neither value is lost', async () => {
    await service.apply({ name: 'two_headers', type: 'REST', value: { base_url: target.url, headers: { 'x-one': 'first', 'x-two': 'second' } } });
    const { page } = await signedInPage();
    await openConnector(page, 'two_headers');
    const second = page.locator('[data-path="value.headers.x-two"] input.map-key');
    await second.fill('x-one');
    await second.press('Tab');
    await soon(async () => expect(await page.locator('[data-path="value.headers"] .field-error').first().textContent()).toMatch(/x-one.*already/));
    await page.locator('#mode-code').click();
    await soon(async () => expect(await codeText(page)).toMatch(/x-one: first\n\s+x-two: second/));
  });

  test('trying another auth variant and coming back keeps the stored token, and a save keeps it stored', async () => {
    await service.apply({ name: 'variant_back', type: 'REST', value: { base_url: target.url, auth: { type: 'bearer', token: 'stored-variant-token' } } });
    const { page } = await signedInPage();
    await openConnector(page, 'variant_back');
    const variant = page.locator('[data-path="value.auth"] select').first();
    await variant.selectOption('basic');
    await page.locator('[data-path="value.auth.username"] input').waitFor();
    await variant.selectOption('bearer');
    await soon(async () => expect(await page.locator('[data-path="value.auth.token"] input').inputValue()).toBe('********'));
    await page.locator('[data-path="description"] textarea').fill('tried basic, kept bearer');
    await page.locator('#save').click();
    await soon(async () => expect(await page.locator('#banner').textContent()).toContain('version 2'));
    const stored = await store.get('variant_back');
    expect(stored?.value.auth).toMatchObject({ type: 'bearer', token: expect.stringMatching(/^tcenc:/) });
  });

  test('a value that none of a field’s choices holds is shown as it is, as YAML, not as "not set"', async () => {
    const { page } = await signedInPage();
    await page.locator('#new-connector').click();
    await page.locator('#mode-code').click();
    await replaceCode(page, 'name: odd_choice\ntype: OPENAI\nvalue:\n  operation: chat.completion\n  encoding_format: float\n');
    await page.locator('#mode-form').click();
    // A choice it knows is a choice...
    expect(await page.locator('[data-path="value.encoding_format"] select').inputValue()).toBe('float');
    // ...one it does not is shown as written, where the API's answer will name it.
    expect(await page.locator('[data-path="value.operation"] select').count()).toBe(0);
    expect(await page.locator('[data-path="value.operation"] textarea').inputValue()).toBe('chat.completion');
  });

  test('Introspect shows an external OpenAPI document’s text as text, markup included, and survives values of odd types', async () => {
    const markup = '<img src=x onerror="window.__introspected_markup_ran=1">';
    target.respondWith({
      body: {
        openapi: '3.1.0',
        info: { title: { not: 'a string' }, version: 2 },
        paths: {
          '/invoices': { get: { summary: markup }, post: { summary: true }, put: { summary: ['a', 'list'] }, delete: { summary: { an: 'object' } } },
          '/nothing': null,
        },
      },
    });
    await service.apply({ name: 'odd_openapi', type: 'REST', value: { base_url: target.url, openapi_path: '/openapi.json' } });
    const { page } = await signedInPage();
    await openConnector(page, 'odd_openapi');
    await page.locator('#tab-introspect').click();
    await page.locator('#run-introspect').click();
    const paths = page.locator('#openapi-paths');
    await paths.waitFor();
    expect(await paths.textContent()).toContain(markup);
    expect(await paths.locator('img').count()).toBe(0);
    expect(await page.evaluate('window.__introspected_markup_ran')).toBeUndefined();
    expect(await paths.locator('tbody tr').count()).toBe(4);
  });

  test('sensitive fields ask the browser not to fill in a saved password, so the console token cannot land in a connector', async () => {
    await service.apply({ name: 'autofill', type: 'REST', value: { base_url: target.url, auth: { type: 'basic', username: 'u', password: 'p' }, headers: { authorization: 'x' } } });
    const { page } = await signedInPage();
    await openConnector(page, 'autofill');
    const sensitive = page.locator('input[data-sensitive="true"]');
    expect(await sensitive.count()).toBe(2);
    expect(await sensitive.evaluateAll((inputs) => inputs.map((i) => i.getAttribute('autocomplete')))).toEqual(['new-password', 'new-password']);
  });
});
