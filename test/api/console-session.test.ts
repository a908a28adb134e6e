import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CONSOLE_CSP, ConsoleSessions } from '../../api/console';
import { listen } from '../../api/http';
import {
  createManagementApi,
  managementApiOptionsFromConfig,
  startManagementApi,
  tokensFromEnv,
  type ManagementApiOptions,
  type RunningManagementApi,
} from '../../api/server';
import { ConnectorRegistry } from '../../connectors/registry';
import { loadConfig } from '../../core/config';
import { createConnectionRunner } from '../../core/runner';
import { ConnectorService } from '../../core/service';
import { ConnectorStore } from '../../core/store/connector-store';
import { PgDatabase } from '../../core/store/database';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import { startTestHttpServer, type TestHttpServer } from '../fixtures/http-server';
import { recordResponse, recordSecrets } from '../support/leak-sweep';
import { rawRequest } from '../support/raw-http';

// Response bodies are whatever JSON the API sends; the tests read fields loosely and check them.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const hex = () => randomBytes(6).toString('hex');
const RW_TOKEN = `console-rw-${hex()}`;
const RO_TOKEN = `console-ro-${hex()}`;
const REVOKED_TOKEN = `console-revoked-${hex()}`;
const OTHER_API_TOKEN = `console-other-${hex()}`;
recordSecrets('the tokens of console-session.test.ts', [RW_TOKEN, RO_TOKEN, REVOKED_TOKEN, OTHER_API_TOKEN]);
const SESSION_COOKIE = /^tc_console=([^;]*)/;

// The console's server side: its page and assets, and the sign-in sessions that keep the token out of
// the page. Against the real API, listening on loopback, on a real PostgreSQL store. Requests go out
// through node:http, which sends the Host and Cookie headers exactly as given (a browser's fetch cannot).
describe('the connector console: page, assets and sign-in sessions', () => {
  let scratch: ScratchDatabase;
  let store: ConnectorStore;
  let service: ConnectorService;
  let fixture: TestHttpServer;
  let workDir: string;
  let assetsDir: string;
  let app: RunningManagementApi;
  const apps: RunningManagementApi[] = [];
  const SECRET_FILE_TEXT = `outside-the-assets-${hex()}`;

  const defaults = (): ManagementApiOptions => ({
    service,
    runner: createConnectionRunner({ service }),
    tokens: { readWrite: [RW_TOKEN], readOnly: [RO_TOKEN] },
    console: { assetsDir },
  });

  /** An API on the shared store, listening on a free port and closed after the suite; `options` replace the defaults. */
  async function api(options: Partial<ManagementApiOptions> = {}): Promise<RunningManagementApi> {
    const started = await startManagementApi({ ...defaults(), ...options, port: 0 });
    apps.push(started);
    return started;
  }

  beforeAll(async () => {
    scratch = await createScratchDatabase('tc_console');
    store = new ConnectorStore(new PgDatabase({ connectionString: scratch.url }));
    await store.migrate();
    service = new ConnectorService({ store, registry: new ConnectorRegistry() });
    fixture = await startTestHttpServer();
    await service.apply({ name: 'billing', type: 'REST', value: { base_url: fixture.url, health_path: '/health' } }, { actor: 'test' });

    workDir = mkdtempSync(path.join(tmpdir(), 'tc-console-'));
    assetsDir = path.join(workDir, 'assets');
    mkdirSync(path.join(assetsDir, 'nested'), { recursive: true });
    writeFileSync(path.join(assetsDir, 'index.html'), '<!doctype html><title>Connector console</title><script src="/console/app.js"></script>');
    writeFileSync(path.join(assetsDir, 'app.js'), 'document.title = "console";');
    writeFileSync(path.join(assetsDir, 'app.css'), 'body { margin: 0 }');
    writeFileSync(path.join(assetsDir, 'logo.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    writeFileSync(path.join(assetsDir, 'inside.txt'), SECRET_FILE_TEXT);
    writeFileSync(path.join(assetsDir, 'nested', 'deep.js'), 'nested');
    // The file a path traversal would be after: beside the assets folder, not in it.
    writeFileSync(path.join(workDir, 'secret.txt'), SECRET_FILE_TEXT);
    app = await api();
  });

  afterAll(async () => {
    await Promise.allSettled(apps.map((a) => a.close()));
    await service?.close();
    await store?.close();
    await scratch?.drop();
    await fixture?.close();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  interface Answer {
    status: number;
    headers: Record<string, string | string[] | undefined>;
    text: string;
    json: Json;
    /** The Set-Cookie header, one string ('' when none). */
    setCookie: string;
  }

  /** One request to `target`, with the Host of its URL unless `headers` name another. */
  async function send(
    target: RunningManagementApi,
    method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE',
    url: string,
    options: { headers?: Record<string, string>; body?: unknown } = {},
  ): Promise<Answer> {
    const headers: Record<string, string> = { host: new URL(target.url).host, ...options.headers };
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await rawRequest(`${target.url}${url}`, { method, headers, body });
    const setCookie = [res.headers['set-cookie'] ?? []].flat().join('\n');
    recordResponse(`management API (console) ${method} ${url}`, `${res.status} ${JSON.stringify(res.headers)} ${res.text}`);
    let json: Json;
    try {
      json = JSON.parse(res.text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text: res.text, json, setCookie };
  }

  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  /** What the page sends on every /v1 call: the cookie the browser adds, and the console's header. */
  const fromConsole = (cookie: string) => ({ cookie, 'x-tc-console': '1' });

  /** Signs in with `token` and returns the `tc_console=<value>` pair the browser would send back. */
  async function signIn(target: RunningManagementApi, token: string): Promise<string> {
    const res = await send(target, 'POST', '/v1/session', { headers: bearer(token) });
    expect(res.status).toBe(200);
    const pair = SESSION_COOKIE.exec(res.setCookie);
    expect(pair).not.toBeNull();
    return pair![0];
  }

  describe('signing in', () => {
    test('signing in sets an HttpOnly, SameSite=Strict, Path=/ browser-session cookie (no Max-Age, Expires or Secure over http) and says what it allows until when', async () => {
      const before = Date.now();
      const res = await send(app, 'POST', '/v1/session', { headers: bearer(RW_TOKEN) });
      expect(res.status).toBe(200);
      const attributes = res.setCookie.split(';').map((part) => part.trim());
      expect(attributes[0]).toMatch(/^tc_console=[1-9][0-9]*\.write\.[A-Za-z0-9_-]{43}$/);
      expect(attributes.slice(1).sort()).toEqual(['HttpOnly', 'Path=/', 'SameSite=Strict']);
      expect(res.setCookie).not.toMatch(/max-age|expires|secure|domain/i);
      expect(res.json).toEqual({ access: 'write', expires_at: expect.any(String), temporal_ui: null });
      // Eight hours by default.
      const expiresAt = Date.parse(res.json.expires_at);
      expect(expiresAt - before).toBeGreaterThanOrEqual(8 * 3600_000);
      expect(expiresAt - Date.now()).toBeLessThanOrEqual(8 * 3600_000);
      expect(attributes[0]).toContain(`=${expiresAt}.`);

      const readOnly = await send(app, 'POST', '/v1/session', { headers: bearer(RO_TOKEN) });
      expect(readOnly.json.access).toBe('read');
      expect(readOnly.setCookie).toMatch(/^tc_console=[0-9]+\.read\./);
    });

    test('behind an https reverse proxy (X-Forwarded-Proto or Forwarded says https) the cookie is Secure, so the browser never sends it over plain http', async () => {
      const secure = { 'x-forwarded-proto': 'https' };
      for (const headers of [secure, { 'x-forwarded-proto': 'https, http' }, { forwarded: 'for=192.0.2.60;proto=https;by=203.0.113.43' }, { forwarded: 'proto="https"' }] as Array<Record<string, string>>) {
        const res = await send(app, 'POST', '/v1/session', { headers: { ...bearer(RW_TOKEN), ...headers } });
        expect([headers, res.status]).toEqual([headers, 200]);
        expect([headers, res.setCookie.split('; ').slice(1).sort()]).toEqual([headers, ['HttpOnly', 'Path=/', 'SameSite=Strict', 'Secure']]);
      }
      // Signing out through the proxy clears it as it was set.
      expect((await send(app, 'DELETE', '/v1/session', { headers: secure })).setCookie).toBe('tc_console=; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age=0');
      // A proxy that says http, or none, gets no Secure: a browser on plain http would not keep the cookie.
      for (const headers of [{ 'x-forwarded-proto': 'http' }, { forwarded: 'for=192.0.2.60;proto=http' }, {}] as Array<Record<string, string>>) {
        const res = await send(app, 'POST', '/v1/session', { headers: { ...bearer(RW_TOKEN), ...headers } });
        expect([headers, res.status, /secure/i.test(res.setCookie)]).toEqual([headers, 200, false]);
      }
    });

    test('the cookie and the answer hold neither the token nor its SHA-256, though the sign-in request carries the token', async () => {
      const created = createManagementApi(defaults());
      const seen: string[] = [];
      created.addHook('onRequest', async (request) => {
        seen.push(JSON.stringify(request.headers));
      });
      const target = await listen(created, { host: '127.0.0.1', port: 0 });
      apps.push(target);
      const res = await send(target, 'POST', '/v1/session', { headers: bearer(RW_TOKEN) });
      expect(res.status).toBe(200);
      // The plant: the token is there to be found, in what the server received.
      expect(seen.join('\n')).toContain(RW_TOKEN);
      const digest = createHash('sha256').update(RW_TOKEN).digest();
      for (const text of [res.setCookie, res.text, JSON.stringify(res.headers)]) {
        for (const form of [RW_TOKEN, digest.toString('hex'), digest.toString('base64'), digest.toString('base64url')]) expect(text).not.toContain(form);
      }
    });

    test('signing in needs a valid token itself: none, a wrong one, or a session cookie are refused with 401 and set no cookie', async () => {
      const cookie = await signIn(app, RW_TOKEN);
      for (const headers of [{}, bearer(`wrong-${hex()}`), fromConsole(cookie)]) {
        const res = await send(app, 'POST', '/v1/session', { headers });
        expect([Object.keys(headers), res.status]).toEqual([Object.keys(headers), 401]);
        expect(res.json.error.type).toBe('Request.Unauthorized');
        expect(res.setCookie).toBe('');
      }
      // A session cannot renew itself, or its TTL would mean nothing.
      expect((await send(app, 'POST', '/v1/session', { headers: fromConsole(cookie) })).json.error.message).toMatch(/needs the token itself/);
    });

    test('GET /v1/session answers the same for a session, and a null expiry for a bearer token; the Temporal Web UI link comes from the options', async () => {
      const linked = await api({ temporalUi: { url: 'http://127.0.0.1:8233', namespace: 'billing' } });
      const signedIn = await send(linked, 'POST', '/v1/session', { headers: bearer(RO_TOKEN) });
      const cookie = SESSION_COOKIE.exec(signedIn.setCookie)![0];
      const bySession = await send(linked, 'GET', '/v1/session', { headers: fromConsole(cookie) });
      expect(bySession.status).toBe(200);
      expect(bySession.json).toEqual(signedIn.json);
      expect(bySession.json).toEqual({ access: 'read', expires_at: expect.any(String), temporal_ui: { url: 'http://127.0.0.1:8233', namespace: 'billing' } });
      const byToken = await send(linked, 'GET', '/v1/session', { headers: bearer(RW_TOKEN) });
      expect(byToken.json).toEqual({ access: 'write', expires_at: null, temporal_ui: { url: 'http://127.0.0.1:8233', namespace: 'billing' } });
      expect((await send(linked, 'GET', '/v1/session')).status).toBe(401);
    });

    test('TC_TEMPORAL_UI_URL and TEMPORAL_NAMESPACE become the API\'s Temporal Web UI link', () => {
      const env = { TC_API_TOKENS: RW_TOKEN, TC_TEMPORAL_UI_URL: 'https://temporal.example.com/ui/', TEMPORAL_NAMESPACE: 'billing' };
      expect(managementApiOptionsFromConfig(loadConfig(env)).temporalUi).toEqual({ url: 'https://temporal.example.com/ui', namespace: 'billing' });
      expect(managementApiOptionsFromConfig(loadConfig({ TC_API_TOKENS: RW_TOKEN })).temporalUi).toBeUndefined();
    });

    test('signing out clears the cookie with 204, also when the session has already ended', async () => {
      for (const headers of [fromConsole(await signIn(app, RW_TOKEN)), fromConsole('tc_console=1.write.garbage'), {}]) {
        const res = await send(app, 'DELETE', '/v1/session', { headers });
        expect(res.status).toBe(204);
        expect(res.setCookie).toBe('tc_console=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0');
      }
    });
  });

  describe('the session cookie on the /v1 routes', () => {
    test('the cookie authenticates only together with X-TC-Console: 1', async () => {
      const cookie = await signIn(app, RW_TOKEN);
      const withHeader = await send(app, 'GET', '/v1/connectors', { headers: fromConsole(cookie) });
      expect(withHeader.status).toBe(200);
      expect(withHeader.json.connectors.map((c: Json) => c.name)).toContain('billing');
      for (const headers of [{ cookie }, { cookie, 'x-tc-console': '0' }, { cookie, 'x-tc-console': 'true' }] as Array<Record<string, string>>) {
        const res = await send(app, 'GET', '/v1/connectors', { headers });
        expect([headers, res.status]).toEqual([headers, 401]);
        expect(res.text).not.toContain('billing');
      }
      // A cross-site form posts a cookie but cannot add the header: nothing is written.
      const forged = await send(app, 'POST', '/v1/connectors', { headers: { cookie }, body: { name: 'forged', type: 'REST', value: { url: 'http://127.0.0.1:1/' } } });
      expect(forged.status).toBe(401);
      expect((await send(app, 'GET', '/v1/connectors/forged', { headers: fromConsole(cookie) })).status).toBe(404);
    });

    test('a bearer header wins over the cookie, whichever of the two is better', async () => {
      const readSession = await signIn(app, RO_TOKEN);
      const writeSession = await signIn(app, RW_TOKEN);
      const current = (await send(app, 'GET', '/v1/connectors/billing', { headers: bearer(RW_TOKEN) })).json.version;
      const update = { type: 'REST', description: 'updated by token', value: { base_url: fixture.url, health_path: '/health' } };
      const put = (headers: Record<string, string>) => send(app, 'PUT', '/v1/connectors/billing', { headers: { ...headers, 'if-match': `"${current}"` }, body: update });
      const wrongToken = await put({ ...fromConsole(writeSession), ...bearer(`wrong-${hex()}`) });
      expect(wrongToken.status).toBe(401);
      expect(wrongToken.json.error.message).toMatch(/bearer token is not valid/);
      const readToken = await put({ ...fromConsole(writeSession), ...bearer(RO_TOKEN) });
      expect(readToken.status).toBe(403);
      const writeToken = await put({ ...fromConsole(readSession), ...bearer(RW_TOKEN) });
      expect(writeToken.status).toBe(200);
      expect(writeToken.json.version).toBe(current + 1);
    });

    test('a read-only session reads and tests as stored, like a read-only token, but cannot write or override (403)', async () => {
      const cookie = await signIn(app, RO_TOKEN);
      const headers = fromConsole(cookie);
      expect((await send(app, 'GET', '/v1/connectors/billing', { headers })).status).toBe(200);
      const tested = await send(app, 'POST', '/v1/connectors/billing/test', { headers });
      expect(tested.status).toBe(200);
      expect(tested.json.ok).toBe(true);
      const current = (await send(app, 'GET', '/v1/connectors/billing', { headers })).json;
      const put = await send(app, 'PUT', '/v1/connectors/billing', {
        headers: { ...headers, 'if-match': `"${current.version}"` },
        body: { type: 'REST', description: 'changed by a read-only session', value: { base_url: fixture.url } },
      });
      expect(put.status).toBe(403);
      expect(put.json.error.type).toBe('Request.Forbidden');
      const created = await send(app, 'POST', '/v1/connectors', { headers, body: { name: 'by_read_session', type: 'REST', value: { url: 'http://127.0.0.1:1/' } } });
      expect(created.status).toBe(403);
      const overridden = await send(app, 'POST', '/v1/connectors/billing/test', { headers, body: { overrides: { health_path: '/elsewhere' } } });
      expect(overridden.status).toBe(403);
      expect(overridden.json.error.message).toContain('read-only tokens cannot override inputs');
      expect((await send(app, 'GET', '/v1/connectors/billing', { headers })).json.version).toBe(current.version);
      expect((await send(app, 'GET', '/v1/connectors/by_read_session', { headers })).status).toBe(404);
    });

    test('a tampered, forged or foreign cookie is refused with 401 telling the page to sign in again, and never echoed', async () => {
      const readSession = (await signIn(app, RO_TOKEN)).slice('tc_console='.length);
      const [expiry, , signature] = readSession.split('.');
      const flipped = `${signature[0] === 'A' ? 'B' : 'A'}${signature.slice(1)}`;
      const otherApi = await api({ tokens: { readWrite: [OTHER_API_TOKEN], readOnly: [] } });
      const foreign = (await signIn(otherApi, OTHER_API_TOKEN)).slice('tc_console='.length);
      // Well formed and validly signed, by a token this API never had.
      const guessed = new ConsoleSessions([['write', ['guess']]]).issue('guess', 'write').value;
      const refused = {
        'read raised to write': `${expiry}.write.${signature}`,
        'expiry pushed later': `${Number(expiry) + 1}.read.${signature}`,
        'signature changed': `${expiry}.read.${flipped}`,
        'signed by another API\'s token': foreign,
        'signed by an unknown token': guessed,
        'not a session at all': 'garbage',
        'the token itself': RW_TOKEN,
      };
      // The same cookie is accepted as it was issued: what is refused below is refused for its change alone.
      expect((await send(app, 'GET', '/v1/connectors', { headers: fromConsole(`tc_console=${readSession}`) })).status).toBe(200);
      for (const [what, value] of Object.entries(refused)) {
        const res = await send(app, 'GET', '/v1/connectors', { headers: fromConsole(`tc_console=${value}`) });
        expect([what, res.status]).toEqual([what, 401]);
        expect(res.json.error).toEqual({ type: 'Request.Unauthorized', message: expect.stringMatching(/sign in again/) });
        expect(res.text).not.toContain(value);
        expect(res.text).not.toContain('connectors":');
      }
      // Without any cookie, the console's request is told to sign in.
      const none = await send(app, 'GET', '/v1/connectors', { headers: { 'x-tc-console': '1' } });
      expect(none.status).toBe(401);
      expect(none.json.error.message).toMatch(/no console session: sign in/);
    });

    test('a session expires after its TTL, and one claiming to last longer than this API allows is refused', async () => {
      const shortLived = await api({ console: { assetsDir, sessionTtlMs: 300 } });
      const cookie = await signIn(shortLived, RW_TOKEN);
      expect((await send(shortLived, 'GET', '/v1/connectors', { headers: fromConsole(cookie) })).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 400));
      const expired = await send(shortLived, 'GET', '/v1/connectors', { headers: fromConsole(cookie) });
      expect(expired.status).toBe(401);
      expect(expired.json.error.message).toBe('the console session has expired: sign in again with a token');
      // A day-long session, validly signed by a token they accept, outlives what APIs of 8 h or 300 ms allow: refused.
      const dayLong = fromConsole(`tc_console=${new ConsoleSessions([['write', [RW_TOKEN]]], 24 * 3600_000).issue(RW_TOKEN, 'write').value}`);
      const dayLongApi = await api({ console: { assetsDir, sessionTtlMs: 24 * 3600_000 } });
      expect((await send(dayLongApi, 'GET', '/v1/connectors', { headers: dayLong })).status).toBe(200);
      expect((await send(app, 'GET', '/v1/connectors', { headers: dayLong })).status).toBe(401);
      expect((await send(shortLived, 'GET', '/v1/connectors', { headers: dayLong })).status).toBe(401);
    });

    test('sessions survive a restart; removing a token from TC_API_TOKENS, or making it read-only, ends its sessions', async () => {
      const before = await api({ tokens: tokensFromEnv({ TC_API_TOKENS: `${RW_TOKEN},${REVOKED_TOKEN}` }) });
      const kept = await signIn(before, RW_TOKEN);
      const revoked = await signIn(before, REVOKED_TOKEN);
      expect((await send(before, 'GET', '/v1/connectors', { headers: fromConsole(revoked) })).status).toBe(200);

      // "Restarted" with the token removed: a new API process on the same store, no state shared.
      const after = await api({ tokens: tokensFromEnv({ TC_API_TOKENS: RW_TOKEN }) });
      expect((await send(after, 'GET', '/v1/connectors', { headers: fromConsole(kept) })).status).toBe(200);
      const refused = await send(after, 'GET', '/v1/connectors', { headers: fromConsole(revoked) });
      expect(refused.status).toBe(401);
      expect(refused.json.error.message).toMatch(/no longer accepted.*sign in again/);

      const demoted = await api({ tokens: tokensFromEnv({ TC_API_TOKENS: RW_TOKEN, TC_API_READ_TOKENS: REVOKED_TOKEN }) });
      expect((await send(demoted, 'GET', '/v1/connectors', { headers: fromConsole(revoked) })).status).toBe(401);
      // Signing in again gives what the token now allows.
      expect((await send(demoted, 'POST', '/v1/session', { headers: bearer(REVOKED_TOKEN) })).json.access).toBe('read');
    });

    test('with the console turned off, there is no page and no session: the cookie is ignored', async () => {
      const cookie = await signIn(app, RW_TOKEN);
      const off = await api({ console: false });
      expect((await send(off, 'GET', '/')).status).toBe(401);
      expect((await send(off, 'GET', '/console/app.js')).status).toBe(401);
      expect((await send(off, 'POST', '/v1/session', { headers: bearer(RW_TOKEN) })).status).toBe(404);
      const byCookie = await send(off, 'GET', '/v1/connectors', { headers: fromConsole(cookie) });
      expect(byCookie.status).toBe(401);
      expect(byCookie.json.error.message).toMatch(/needs an Authorization: Bearer <token> header/);
    });
  });

  describe('the page and its assets', () => {
    const SECURITY_HEADERS = {
      'content-security-policy': CONSOLE_CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'x-frame-options': 'DENY',
    };

    test('the page and its assets are served without a token, with the Content-Security-Policy and the other security headers', async () => {
      expect(CONSOLE_CSP).toBe(
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
      );
      const page = await send(app, 'GET', '/');
      expect(page.status).toBe(200);
      expect(page.text).toContain('<title>Connector console</title>');
      expect(page.headers).toMatchObject({ ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      expect(page.setCookie).toBe('');
      const head = await send(app, 'HEAD', '/');
      expect(head.status).toBe(200);
      expect(head.headers).toMatchObject(SECURITY_HEADERS);

      const types = { '/console/app.js': 'text/javascript; charset=utf-8', '/console/app.css': 'text/css; charset=utf-8', '/console/logo.svg': 'image/svg+xml' };
      for (const [url, type] of Object.entries(types)) {
        const asset = await send(app, 'GET', url);
        expect([url, asset.status]).toEqual([url, 200]);
        expect(asset.headers).toMatchObject({ ...SECURITY_HEADERS, 'content-type': type, 'cache-control': 'no-cache' });
        // Unchanged, it is not sent again.
        const again = await send(app, 'GET', url, { headers: { 'if-none-match': String(asset.headers.etag) } });
        expect([url, again.status, again.text]).toEqual([url, 304, '']);
      }
      // Flat: a file in a subfolder is not served; unknown files are 404.
      for (const url of ['/console/nested/deep.js', '/console/nested', '/console/missing.js', '/console/index.html']) {
        const res = await send(app, 'GET', url);
        expect([url, res.status === 404 || res.status === 401]).toEqual([url, true]);
        expect(res.text).not.toContain('nested');
      }
    });

    test('without a built console, / answers 503 with a page saying to run npm run build:console, and the API still works', async () => {
      const unbuilt = await api({ console: { assetsDir: path.join(workDir, 'no-such-folder') } });
      const page = await send(unbuilt, 'GET', '/');
      expect(page.status).toBe(503);
      expect(page.headers).toMatchObject({ ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8' });
      expect(page.text).toContain('npm run build:console');
      expect(page.text).not.toContain(workDir);
      expect((await send(unbuilt, 'GET', '/console/app.js')).status).toBe(404);
      expect((await send(unbuilt, 'GET', '/v1/connectors', { headers: bearer(RW_TOKEN) })).status).toBe(200);
      // A folder without index.html is not a built console either.
      const empty = path.join(workDir, 'empty');
      mkdirSync(empty, { recursive: true });
      expect((await send(await api({ console: { assetsDir: empty } }), 'GET', '/')).status).toBe(503);
    });

    test('no path reaches a file outside the assets folder, however it is spelled', async () => {
      // The plant: the text is served when it is inside the folder, so a leak would be seen.
      const inside = await send(app, 'GET', '/console/inside.txt');
      expect(inside.status).toBe(200);
      expect(inside.text).toBe(SECRET_FILE_TEXT);
      for (const url of [
        '/console/..%2fsecret.txt',
        '/console/..%2Fsecret.txt',
        '/console/%2e%2e%2fsecret.txt',
        '/console/../secret.txt',
        '/console/..%5csecret.txt',
        '/console/..%2f..%2f..%2f..%2fetc%2fpasswd',
        '/console/%2e%2e/secret.txt',
        '/console/inside.txt%00.js',
        '/secret.txt',
      ]) {
        const res = await send(app, 'GET', url);
        expect([url, res.status === 404 || res.status === 401 || res.status === 400]).toEqual([url, true]);
        expect(res.text).not.toContain(SECRET_FILE_TEXT);
        expect(res.text).not.toContain('root:');
      }
    });

    test('the Host check applies to the page, the assets and the session routes (DNS rebinding)', async () => {
      const cookie = await signIn(app, RW_TOKEN);
      const requests: Array<['GET' | 'POST' | 'DELETE', string, Record<string, string>]> = [
        ['GET', '/', {}],
        ['GET', '/console/app.js', {}],
        ['POST', '/v1/session', bearer(RW_TOKEN)],
        ['GET', '/v1/session', fromConsole(cookie)],
        ['DELETE', '/v1/session', {}],
      ];
      for (const [method, url, headers] of requests) {
        expect([url, (await send(app, method, url, { headers: { ...headers, host: 'localhost:8080' } })).status]).toEqual([url, method === 'DELETE' ? 204 : 200]);
        const refused = await send(app, method, url, { headers: { ...headers, host: 'evil.example' } });
        expect([method, url, refused.status]).toEqual([method, url, 403]);
        expect(refused.json.error.type).toBe('Request.HostNotAllowed');
        expect(refused.setCookie).toBe('');
        expect(refused.text).not.toContain('<title>');
      }
    });
  });
});
