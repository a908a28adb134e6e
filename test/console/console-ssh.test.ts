import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { generateKeyPair, startSshd, type SshKeyPair, type TestSshd } from '../../scripts/devstack/sshd';
import { soon } from '../support/browser';
import { startConsoleStack, type ConsoleStack } from '../support/console-stack';
import { recordSecrets } from '../support/leak-sweep';
import { keyMaterialLine } from '../support/ssh-stack';

const SCREENSHOTS = path.resolve(__dirname, '..', '..', 'test-artifacts', 'screenshots', 'console-ssh');
const hex = () => randomBytes(6).toString('hex');
const RW_TOKEN = `console-ssh-rw-${hex()}`;
const PASSPHRASE = `console-ssh-pp-${hex()}`;
const USER = 'tc_ssh_console';

// An SSH connector made in the connector console's form, in headless Chromium, against the API on
// the real PostgreSQL store and a real sshd: the form is generated from the SSH type's JSON Schema,
// with nothing SSH-specific in the console (the private key is a masked text area because its field
// is marked multiline and sensitive).
describe('an SSH connector in the connector console', () => {
  let stack: ConsoleStack;
  let sshd: TestSshd;
  let key: SshKeyPair;
  let context: BrowserContext;
  let page: Page;
  const responses: string[] = [];
  const requests: string[] = [];

  beforeAll(async () => {
    rmSync(SCREENSHOTS, { recursive: true, force: true });
    mkdirSync(SCREENSHOTS, { recursive: true });
    key = await generateKeyPair({ passphrase: PASSPHRASE, comment: 'console test key' });
    recordSecrets('the secrets of console-ssh.test.ts', [RW_TOKEN, PASSPHRASE, key.privateKey, keyMaterialLine(key.privateKey)]);
    sshd = await startSshd({ user: USER, authorizedKeys: [key.publicKey] });
    stack = await startConsoleStack({ database: 'tc_console_ssh', tokens: { readWrite: [RW_TOKEN], readOnly: [] } });
    context = await stack.browser.newContext({ viewport: { width: 1280, height: 1100 } });
    page = await context.newPage();
    page.on('response', (response) => void response.text().then((text) => responses.push(text), () => undefined));
    page.on('request', (request) => {
      const body = request.postData();
      if (body) requests.push(body);
    });
    await page.goto(`${stack.api.url}/`);
    await page.locator('#token').fill(RW_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#connectors').waitFor();
  });

  afterAll(async () => {
    await context?.close().catch(() => undefined);
    await stack?.service.registry.close();
    await stack?.close();
    await sshd?.stop();
  });

  test('creates an SSH connector with a private key in the form, saves it, and tests it: logged in with the key, which the page no longer holds', async () => {
    const name = `deploy_box_${hex()}`;
    await page.locator('#new-connector').click();
    await page.locator('[data-path="name"] input').fill(name);
    await page.locator('#field-type').selectOption('SSH');
    await page.locator('[data-path="value.host"] input').waitFor();
    await page.locator('[data-path="description"] textarea').fill('Deploy box, made in the console');
    await page.locator('[data-path="value.host"] input').fill(sshd.host);
    await page.locator('[data-path="value.port"] input').fill(String(sshd.port));
    await page.locator('[data-path="value.user"] input').fill(USER);
    await page.locator('[data-path="value.host_key"] textarea').fill(sshd.hostKeyFingerprint);
    const privateKey = page.locator('[data-path="value.private_key"] textarea');
    await privateKey.fill(key.privateKey);
    // A multi-line secret: a text area, marked sensitive, whose characters are drawn as discs.
    expect(await privateKey.getAttribute('data-sensitive')).toBe('true');
    // Run in the browser; as a string it needs no DOM typings in this Node project.
    const drawnAs = await page.evaluate<string>(`getComputedStyle(document.querySelector('[data-path="value.private_key"] textarea')).getPropertyValue('-webkit-text-security')`);
    expect(drawnAs).toBe('disc');
    expect(await privateKey.inputValue()).toBe(key.privateKey);
    const passphrase = page.locator('[data-path="value.passphrase"] input');
    expect(await passphrase.getAttribute('type')).toBe('password');
    await passphrase.fill(PASSPHRASE);
    await page.screenshot({ path: path.join(SCREENSHOTS, '01-ssh-form.png'), fullPage: true });

    await page.locator('#save').click();
    await soon(async () => expect(await page.locator('#banner').textContent()).toContain(`Saved: ${name} is at version 1`));
    const stored = await stack.service.get(name);
    expect(stored).toMatchObject({ type: 'SSH', value: { host: sshd.host, port: sshd.port, user: USER, host_key: sshd.hostKeyFingerprint, private_key: '********', passphrase: '********' } });
    // The form sent the key (the recorder sees it), and the store keeps it encrypted.
    expect(requests.join('\n')).toContain(keyMaterialLine(key.privateKey));
    expect(JSON.stringify(await stack.store.get(name))).not.toContain(PASSPHRASE);
    await soon(async () => expect(await page.locator('[data-path="value.private_key"] textarea').inputValue()).toBe('********'));

    const before = sshd.logLines().length;
    await page.locator('#tab-test').click();
    await page.locator('#run-test').click();
    await soon(async () => expect(await page.locator('#test-result .outcome').getAttribute('data-ok')).toBe('true'), 30_000);
    expect(await page.locator('#test-result').textContent()).toContain(`as ${USER} (host key pinned)`);
    expect(sshd.logLines().slice(before).some((line) => line.includes(`Accepted publickey for ${USER}`) && line.includes(key.fingerprint))).toBe(true);
    await page.screenshot({ path: path.join(SCREENSHOTS, '02-ssh-test-ok.png'), fullPage: true });

    const values = await page.evaluate<string>("[...document.querySelectorAll('input, textarea, select')].map((e) => e.value).join('\\n')");
    const dom = `${await page.content()}\n${values}`;
    expect(dom).toContain(name);
    for (const secret of [PASSPHRASE, keyMaterialLine(key.privateKey)]) {
      expect(dom).not.toContain(secret);
      expect(responses.join('\n')).not.toContain(secret);
    }
  });

  test("the Test of a connector without host_key shows the key the server offers, to pin", async () => {
    const name = `unpinned_${hex()}`;
    await stack.service.apply({ name, type: 'SSH', value: { host: sshd.host, port: sshd.port, user: USER } });
    await page.goto(`${stack.api.url}/#/c/${name}`);
    await page.locator('#tab-test').click();
    await page.locator('#run-test').click();
    await soon(async () => expect(await page.locator('#test-result .outcome').getAttribute('data-ok')).toBe('false'), 30_000);
    expect(await page.locator('#test-result').textContent()).toContain(`offered host key ${sshd.hostKeyFingerprint} (ssh-ed25519)`);
    await page.screenshot({ path: path.join(SCREENSHOTS, '03-ssh-test-unpinned.png'), fullPage: true });
  });
});
