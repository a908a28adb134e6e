// The product's first promise, tested as an attacker would probe it: no store or Vault secret leaves
// the connector worker (not through history, summaries, results, messages or logs, not by overriding
// where a call goes), redaction leaves ordinary data alone, and every attempt of a `connection` runs
// the connector version it shows.
import vault from 'node-vault';
import { createConnectionRunner } from '../../core/runner';
import { Keyring } from '../../core/keyring';
import { MASK } from '../../core/inputs';
import { startManagementApi } from '../../api/server';
import { ConnectorRegistry } from '../../connectors/registry';
import { ConnectorService, ConnectorValidationError } from '../../core/service';
import { VaultSecretSource } from '../../core/vault';
import { secretRedactions } from '../../worker/logging';
import { startOpenAiServer, type OpenAiTestServer } from '../fixtures/openai-server';
import { startTestHttpServer, type TestHttpServer } from '../fixtures/http-server';
import { startPasswordTrap } from '../fixtures/password-trap';
import { historyText, startHarness, type Harness } from '../support/harness';
import { decodedHistoryText, recordSecrets } from '../support/leak-sweep';
import { testStack, uniqueName } from '../support/stack';

const name = (prefix: string) => uniqueName(prefix).toLowerCase();
const hex = () => Math.random().toString(16).slice(2, 12);

describe('no secret leaves the connector worker', () => {
  const stack = testStack();
  const vaultAdmin = vault({ apiVersion: 'v1', endpoint: stack.vault.address, token: stack.vault.token });
  let h: Harness;
  let api: TestHttpServer;
  /** Another system, where an attacker would like a connector's secrets to go. */
  let elsewhere: TestHttpServer;

  beforeAll(async () => {
    [h, api, elsewhere] = await Promise.all([startHarness(), startTestHttpServer(), startTestHttpServer()]);
  });
  afterAll(async () => {
    await h?.shutdown();
    await Promise.all([api?.close(), elsewhere?.close()]);
  });

  async function vaultSecret(data: Record<string, string>, secretKeys: string[] = Object.keys(data)): Promise<string> {
    const path = `secret/data/${uniqueName('promise')}`;
    await vaultAdmin.write(path, { data });
    recordSecrets('a Vault secret of secrets.test.ts', secretKeys.map((k) => data[k]));
    return path;
  }

  describe('the history check sees into payloads', () => {
    test('a marker passed as an override is found in the decoded parent and child histories', async () => {
      const marker = `override-marker-${hex()}`;
      const connector = name('marker');
      await h.service.apply({ name: connector, type: 'REST', value: { base_url: api.url } });
      const { result, workflowId } = await h.call(connector, { query: { note: marker } });
      expect(result.error).toBeUndefined();
      // The override is the workflow's own data: it is in both inputs, so a check that cannot see it is blind.
      expect(await historyText(h.client, workflowId)).toContain(marker);
      expect(await historyText(h.client, result.workflowId!)).toContain(marker);
    });

    test('a failure message and a summary are searched too', async () => {
      const connector = name('failtext');
      await h.service.apply({ name: connector, type: 'REST', value: { base_url: api.url, path: '/visible-path-in-summary' } });
      api.respondWith({ status: 404 });
      const { result } = await h.call(connector);
      expect(result.error?.type).toBe('Connector.External.Http');
      const child = await historyText(h.client, result.workflowId!);
      expect(child).toContain('visible-path-in-summary'); // in the static summary and the failure message
      expect(child).toContain('HTTP 404');
    });
  });

  describe("a connector's secrets go only where the connector goes", () => {
    async function bearerConnector(extra: Record<string, unknown> = {}) {
      const token = `stored-bearer-${hex()}`;
      const connector = name('bound');
      await h.service.apply({ name: connector, type: 'REST', value: { base_url: api.url, auth: { type: 'bearer', token } }, ...extra });
      return { connector, token };
    }

    test('a workflow that overrides base_url does not get the stored token sent elsewhere', async () => {
      const { connector } = await bearerConnector();
      const before = elsewhere.requests.length;
      const { result } = await h.call(connector, { base_url: elsewhere.url });
      expect(result.error).toMatchObject({ type: 'Connector.DestinationNotAllowed', nonRetryable: true });
      expect(result.error!.message).toContain('auth.token');
      expect(result.error!.message).toContain(elsewhere.url);
      expect(result.error!.message).toContain('allowed_destinations');
      expect(elsewhere.requests.length).toBe(before);
    });

    test('a path that smuggles another origin is caught as a change of destination', async () => {
      const { connector } = await bearerConnector();
      const before = elsewhere.requests.length;
      // joinUrl keeps it a path; should it ever resolve elsewhere, the destination check still sees the real origin.
      const { result } = await h.call(connector, { path: `//${new URL(elsewhere.url).host}/steal` });
      expect(result.error).toBeUndefined();
      expect(elsewhere.requests.length).toBe(before);
      expect(api.requests[api.requests.length - 1].path).toBe(`/${new URL(elsewhere.url).host}/steal`);
    });

    test('an override that brings its own token may go elsewhere, and only its own token is sent', async () => {
      const { connector, token } = await bearerConnector();
      const own = `workflow-token-${hex()}`;
      const { result } = await h.call(connector, { base_url: elsewhere.url, auth: { type: 'bearer', token: own } });
      expect(result.error).toBeUndefined();
      const request = elsewhere.requests[elsewhere.requests.length - 1];
      expect(request.headers.authorization).toBe(`Bearer ${own}`);
      expect(JSON.stringify(request)).not.toContain(token);
    });

    test('a destination the profile allows gets the stored token', async () => {
      const { connector, token } = await bearerConnector({ allowed_destinations: [elsewhere.url] });
      const { result } = await h.call(connector, { base_url: `${elsewhere.url}/v2` });
      expect(result.error).toBeUndefined();
      expect(elsewhere.requests[elsewhere.requests.length - 1].headers.authorization).toBe(`Bearer ${token}`);
    });

    test('a Vault secret is bound the same way, and the CLI and API path (the runner) refuses alike', async () => {
      const vaultToken = `vault-bearer-${hex()}`;
      const path = await vaultSecret({ token: vaultToken });
      const connector = name('boundvault');
      await h.service.apply({ name: connector, type: 'REST', value: { base_url: api.url, auth: { type: 'bearer' } }, vault_secrets: [{ path, map: { token: 'auth.token' } }] });
      const runner = createConnectionRunner({ service: h.service, vault: h.vault });
      const before = elsewhere.requests.length;
      for (const action of ['invoke', 'test', 'introspect'] as const) {
        const refused = await runner.run({ connector, action, overrides: { base_url: elsewhere.url, openapi_path: '/openapi.json' } }, { signal: new AbortController().signal }).then(
          () => undefined,
          (err: { type?: string; message: string }) => err,
        );
        expect(refused).toMatchObject({ type: 'Connector.DestinationNotAllowed' });
        expect(refused!.message).not.toContain(vaultToken);
      }
      expect(elsewhere.requests.length).toBe(before);
      // The stored destination itself still works.
      const ok = await runner.run({ connector }, { signal: new AbortController().signal });
      expect(api.requests[api.requests.length - 1].headers.authorization).toBe(`Bearer ${vaultToken}`);
      expect(JSON.stringify(ok)).not.toContain(vaultToken);
    });

    test('a connector without secrets may be pointed anywhere', async () => {
      const connector = name('open');
      await h.service.apply({ name: connector, type: 'REST', value: { base_url: api.url, headers: { 'x-team': 'billing' } } });
      const { result } = await h.call(connector, { base_url: elsewhere.url });
      expect(result.error).toBeUndefined();
      expect(elsewhere.requests[elsewhere.requests.length - 1].headers['x-team']).toBe('billing');
    });

    test('saving a new base_url while keeping the stored token as ******** is refused; writing the token again, or an allowed destination, is not', async () => {
      const { connector, token } = await bearerConnector();
      const moved = { name: connector, type: 'REST', value: { base_url: elsewhere.url, auth: { type: 'bearer', token: MASK } } };
      const refusal = await h.service.apply(moved).then(
        () => undefined,
        (err: ConnectorValidationError) => err,
      );
      expect(refusal).toBeInstanceOf(ConnectorValidationError);
      expect(refusal!.issues).toEqual([{ path: 'value.auth.token', message: expect.stringContaining(`would now go to ${new URL(elsewhere.url).origin} instead of ${new URL(api.url).origin}`) }]);
      expect((await h.service.get(connector)).version).toBe(1);
      // Nothing was sent anywhere, and the stored token still goes home.
      const before = elsewhere.requests.length;
      expect((await h.call(connector)).result.error).toBeUndefined();
      expect(api.requests[api.requests.length - 1].headers.authorization).toBe(`Bearer ${token}`);
      expect(elsewhere.requests.length).toBe(before);

      // The same path and a changed description keep the mask's meaning.
      await h.service.apply({ name: connector, type: 'REST', description: 'same place', value: { base_url: api.url, auth: { type: 'bearer', token: MASK } } });
      // Allowed when the token was written: the secret may follow.
      await h.service.apply({ name: connector, type: 'REST', value: { base_url: api.url, auth: { type: 'bearer', token } }, allowed_destinations: [new URL(elsewhere.url).origin] });
      await h.service.apply(moved);
      expect((await h.call(connector)).result.error).toBeUndefined();
      expect(elsewhere.requests[elsewhere.requests.length - 1].headers.authorization).toBe(`Bearer ${token}`);
      // A destination allowed only in the same request does not count: it was not the stored version's.
      const other = await bearerConnector();
      await expect(h.service.apply({ name: other.connector, type: 'REST', value: { base_url: elsewhere.url, auth: { type: 'bearer', token: MASK } }, allowed_destinations: ['*'] })).rejects.toThrow(/never follows a new destination/);
      // Written again, the token may go anywhere: whoever writes it knows it.
      await h.service.apply({ name: other.connector, type: 'REST', value: { base_url: elsewhere.url, auth: { type: 'bearer', token: 'typed-again' } } });
    });

    describe('a secret is bound to where it may go when it is written (issue 19)', () => {
      const origin = (url: string) => new URL(url).origin;
      const refusal = (definition: Record<string, unknown>) =>
        h.service.apply(definition).then(
          () => undefined,
          (err: ConnectorValidationError) => err,
        );

      test('two saves cannot re-aim a stored token: allowing a destination while keeping ******** is refused, and the history shows the token written again', async () => {
        const { connector, token } = await bearerConnector();
        // The token reaches its own server: what the checks below look for is visible where it belongs.
        expect((await h.call(connector)).result.error).toBeUndefined();
        expect(api.requests[api.requests.length - 1].headers.authorization).toBe(`Bearer ${token}`);
        const kept = { base_url: api.url, auth: { type: 'bearer', token: MASK } };

        // Save 1 of the attack: widen allowed_destinations and keep the token.
        const widened = await refusal({ name: connector, type: 'REST', value: kept, allowed_destinations: [origin(elsewhere.url)] });
        expect(widened?.issues).toEqual([
          { path: 'value.auth.token', message: expect.stringContaining(`allowed_destinations now lists ${origin(elsewhere.url)}, which the secret was not written for (${origin(api.url)})`) },
        ]);
        expect(widened!.message).toContain('write the secret again in the same save');
        // Save 2 of the attack, whatever came before: move and narrow in one go.
        expect((await refusal({ name: connector, type: 'REST', value: { ...kept, base_url: elsewhere.url }, allowed_destinations: [] }))?.issues[0].path).toBe('value.auth.token');
        expect((await h.service.get(connector)).version).toBe(1);

        // Whoever writes the token again knows it, and may bind it wider: the history names the token as changed.
        await h.service.apply({ name: connector, type: 'REST', value: { base_url: api.url, auth: { type: 'bearer', token } }, allowed_destinations: [origin(elsewhere.url)] });
        const [latest] = await h.service.history(connector);
        expect(latest.changed).toEqual(expect.arrayContaining(['allowed_destinations', 'value.auth.token']));
        // Narrowing keeps the mask's meaning; the narrowed list then holds for every call.
        await h.service.apply({ name: connector, type: 'REST', value: kept, allowed_destinations: [] });
        const before = elsewhere.requests.length;
        expect((await h.call(connector, { base_url: elsewhere.url })).result.error).toMatchObject({ type: 'Connector.DestinationNotAllowed' });
        expect(elsewhere.requests.length).toBe(before);
      });

      test('a version written past the service (straight into the store) whose token was bound elsewhere does not send it', async () => {
        const { connector, token } = await bearerConnector();
        expect((await h.call(connector)).result.error).toBeUndefined();
        expect(api.requests[api.requests.length - 1].headers.authorization).toBe(`Bearer ${token}`);
        // What a row written by hand, or by an older build without the save check, may hold: the
        // token's ciphertext (bound to api) under a profile that points elsewhere.
        const stored = await h.store.get(connector);
        await h.store.put({ ...stored!, value: { ...stored!.value, base_url: elsewhere.url } });
        const before = elsewhere.requests.length;
        const { result } = await h.call(connector);
        expect(result.error).toMatchObject({ type: 'Connector.DestinationNotAllowed', nonRetryable: true });
        expect(result.error!.message).toContain('were not written for');
        expect(elsewhere.requests.length).toBe(before);
        // The binding cannot be edited either: it is part of the ciphertext's associated data.
        const ciphertext = (stored!.value.auth as { token: string }).token;
        const label = Keyring.labelOf(ciphertext)!;
        expect(JSON.parse(label)).toMatchObject({ t: 'REST', d: [origin(api.url)] });
        const forged = `${ciphertext.slice(0, ciphertext.lastIndexOf(':') + 1)}${Buffer.from(label.replace(origin(api.url), origin(elsewhere.url))).toString('base64url')}`;
        await h.store.put({ ...stored!, value: { base_url: elsewhere.url, auth: { type: 'bearer', token: forged } } });
        const tampered = await h.call(connector);
        expect(tampered.result.error).toMatchObject({ type: 'Connector.Keyring' });
        expect(tampered.result.error!.message).toContain('does not decrypt');
        expect(elsewhere.requests.length).toBe(before);
      });

      test('a Host header is part of the destination: overriding or saving it does not take the token to another virtual host', async () => {
        // One address, two tenants told apart by Host, as behind a shared ingress or CDN.
        const tenants: Record<string, Array<string | undefined>> = { a: [], b: [] };
        const ingress = await startTestHttpServer((req, res) => {
          const tenant = req.headers.host === 'tenant-b.test' ? 'b' : 'a';
          tenants[tenant].push(req.headers.authorization);
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ tenant }));
        });
        try {
          const token = `tenant-a-token-${hex()}`;
          const connector = name('vhost');
          await h.service.apply({ name: connector, type: 'REST', value: { base_url: ingress.url, auth: { type: 'bearer', token } } });
          expect((await h.call(connector)).result.details).toMatchObject({ output: { body: { tenant: 'a' } } });
          expect(tenants.a).toEqual([`Bearer ${token}`]);

          const moved = await h.call(connector, { headers: { Host: 'tenant-b.test' } });
          expect(moved.result.error).toMatchObject({ type: 'Connector.DestinationNotAllowed' });
          expect(moved.result.error!.message).toContain(`${origin(ingress.url)} host=tenant-b.test`);
          // A Host header naming the URL's own host changes nothing.
          expect((await h.call(connector, { headers: { host: new URL(ingress.url).host } })).result.error).toBeUndefined();
          const saved = await refusal({ name: connector, type: 'REST', value: { base_url: ingress.url, headers: { host: 'tenant-b.test' }, auth: { type: 'bearer', token: MASK } } });
          expect(saved?.issues[0]).toMatchObject({ path: 'value.auth.token', message: expect.stringContaining('host=tenant-b.test') });
          expect(tenants.b).toEqual([]);
          expect(tenants.a).toEqual([`Bearer ${token}`, `Bearer ${token}`]);
        } finally {
          await ingress.close();
        }
      });

      test('a TLS downgrade (tls: false, no verification, another CA) never gets the stored SQL password, by override or by save', async () => {
        const trap = await startPasswordTrap();
        try {
          const password = `pg-in-the-clear-${hex()}`;
          const value = { host: '127.0.0.1', port: trap.port, database: 'app', user: 'app', password, sql: 'SELECT 1' };
          const retry = { initialInterval: '50ms' as const, maximumAttempts: 1 };
          // The trap sees a password sent in clear: a connector that goes there without TLS hands it over.
          const plain = name('plainpg');
          await h.service.apply({ name: plain, type: 'POSTGRES', value: { ...value, tls: false } });
          await h.call(plain, undefined, { retry });
          expect(trap.received()).toContain(password);
          const seen = trap.received().split(password).length;

          const connector = name('tlspg');
          await h.service.apply({ name: connector, type: 'POSTGRES', value: { ...value, tls: true } });
          // As stored, the call insists on TLS: the trap refuses it and gets nothing; the message does not talk anyone into turning TLS off.
          const stored = await h.call(connector, undefined, { retry });
          expect(stored.result.error!.message).toContain('does not accept TLS');
          expect(stored.result.error!.message).not.toMatch(/set tls: ?false/);
          for (const tls of [false, { reject_unauthorized: false }, { ca: '-----BEGIN CERTIFICATE-----\nMIIBattacker\n-----END CERTIFICATE-----' }]) {
            const { result } = await h.call(connector, { tls }, { retry });
            expect(result.error).toMatchObject({ type: 'Connector.DestinationNotAllowed' });
            expect(result.error!.message).toContain('password');
          }
          const saved = await refusal({ name: connector, type: 'POSTGRES', value: { ...value, password: MASK, tls: false } });
          expect(saved?.issues[0]).toMatchObject({ path: 'value.password', message: expect.stringContaining(`127.0.0.1:${trap.port} instead of 127.0.0.1:${trap.port} tls`) });
          expect(trap.received().split(password).length).toBe(seen);
        } finally {
          await trap.close();
        }
      });

      test('a header stored in plain text before its name counted as secret, and one whose name holds a dot, are kept by ******** and encrypted', async () => {
        const connector = name('plainhdr');
        const legacy = `legacy-header-${hex()}`;
        const dotted = `dotted-header-${hex()}`;
        recordSecrets('plain headers of secrets.test.ts', [legacy, dotted]);
        // As a version before the broad header rule stored it: X-Auth-Token in plain text.
        await h.service.apply({ name: connector, type: 'REST', value: { base_url: api.url, headers: { 'x.api-key': dotted } } });
        const stored = await h.store.get(connector);
        await h.store.put({ ...stored!, value: { ...stored!.value, headers: { ...(stored!.value.headers as object), 'X-Auth-Token': legacy } } });
        const view = await h.service.get(connector);
        expect(view.value.headers).toEqual({ 'x.api-key': MASK, 'X-Auth-Token': MASK });
        // Saved back as the console and `get | apply` do: both kept, both encrypted now.
        await h.service.apply({ name: connector, type: 'REST', description: 'saved back', value: view.value });
        const [row] = await h.store.db.query<{ value: unknown }>('SELECT value FROM tc_connector_versions WHERE name = $1 ORDER BY version DESC LIMIT 1', [connector]);
        const headers = (row.value as { headers: Record<string, string> }).headers;
        expect(Keyring.isCiphertext(headers['X-Auth-Token']) && Keyring.isCiphertext(headers['x.api-key'])).toBe(true);
        expect(JSON.stringify(row.value)).not.toContain(legacy);
        expect((await h.call(connector)).result.error).toBeUndefined();
        const sent = api.requests[api.requests.length - 1].headers;
        expect([sent['x-auth-token'], sent['x.api-key']]).toEqual([legacy, dotted]);
        // The plain one was bound to where its version went, like any secret stored before bindings.
        expect(JSON.parse(Keyring.labelOf(headers['X-Auth-Token'])!)).toMatchObject({ t: 'REST', d: [origin(api.url)] });
        const moved = await refusal({ name: connector, type: 'REST', value: { ...view.value, base_url: elsewhere.url } });
        expect(moved?.issues.map((i) => i.path).sort()).toEqual(['value.headers.X-Auth-Token', 'value.headers.x.api-key']);
      });

      test('a stored token never follows a destination its Vault secrets name: such a connector is refused at run time, and saves that move it are refused', async () => {
        // The token reaches a server a profile names: what the checks below look for is visible where it belongs.
        const { connector: named, token } = await bearerConnector();
        expect((await h.call(named)).result.error).toBeUndefined();
        expect(api.requests[api.requests.length - 1].headers.authorization).toBe(`Bearer ${token}`);
        const seen = () => [...api.requests, ...elsewhere.requests].filter((r) => r.headers.authorization === `Bearer ${token}`).length;
        const before = seen();
        // Whoever edits connectors may point vault_secrets at any secret under TC_VAULT_PATHS (another team's URL, say).
        const own = await vaultSecret({ url: api.url }, []);
        const other = await vaultSecret({ endpoint: elsewhere.url }, []);
        const connector = name('vaulturl');
        await h.service.apply({ name: connector, type: 'REST', value: { auth: { type: 'bearer', token } }, vault_secrets: [{ path: own, map: { url: 'base_url' } }] });
        const { result } = await h.call(connector);
        expect(result.error).toMatchObject({ type: 'Connector.DestinationNotAllowed' });
        expect(result.error!.message).toContain('were not written for');
        const kept = { auth: { type: 'bearer', token: MASK } };
        for (const moved of [
          { value: { ...kept, headers: { Host: 'tenant-b.test' } }, vault_secrets: [{ path: own, map: { url: 'base_url' } }] },
          { value: kept, vault_secrets: [{ path: other, map: { endpoint: 'base_url' } }] },
        ]) {
          expect((await refusal({ name: connector, type: 'REST', ...moved }))?.issues[0]).toMatchObject({ path: 'value.auth.token', message: expect.stringContaining('the profile would name no destination') });
        }
        expect(seen()).toBe(before);
      });

      test('a retry pinned to an older version does not take the token back to a server the newest version moved away from', async () => {
        const oldHome = await startTestHttpServer();
        try {
          const token = `moved-token-${hex()}`;
          const connector = name('movedaway');
          await h.service.apply({ name: connector, type: 'REST', value: { base_url: oldHome.url, auth: { type: 'bearer', token } }, allowed_destinations: [origin(api.url)] });
          oldHome.respondWith({ status: 500 });
          const call = h.call(connector, undefined, { retry: { initialInterval: '2s', maximumAttempts: 2 } });
          while (oldHome.requests.length < 1) await new Promise((r) => setTimeout(r, 20));
          expect(oldHome.requests[0].headers.authorization).toBe(`Bearer ${token}`);
          // The owner moves the connector and stops allowing the old server (compromised, say).
          await h.service.apply({ name: connector, type: 'REST', value: { base_url: api.url, auth: { type: 'bearer', token: MASK } }, allowed_destinations: [] });
          const { result } = await call;
          expect(result.error).toMatchObject({ type: 'Connector.DestinationNotAllowed' });
          expect(oldHome.requests.length).toBe(1);
        } finally {
          await oldHome.close();
        }
      });

      test('narrowing lasts: a destination the owner removed cannot be brought back by a later save that keeps ********', async () => {
        const { connector, token } = await bearerConnector({ allowed_destinations: [origin(elsewhere.url)] });
        expect((await h.call(connector, { base_url: elsewhere.url })).result.error).toBeUndefined();
        expect(elsewhere.requests[elsewhere.requests.length - 1].headers.authorization).toBe(`Bearer ${token}`);
        const before = elsewhere.requests.length;
        const kept = { base_url: api.url, auth: { type: 'bearer', token: MASK } };
        await h.service.apply({ name: connector, type: 'REST', value: kept, allowed_destinations: [] });
        expect((await h.call(connector, { base_url: elsewhere.url })).result.error).toMatchObject({ type: 'Connector.DestinationNotAllowed' });
        for (const save of [{ value: { ...kept, base_url: elsewhere.url } }, { value: kept, allowed_destinations: [origin(elsewhere.url)] }]) {
          expect((await refusal({ name: connector, type: 'REST', ...save }))?.issues[0].path).toBe('value.auth.token');
        }
        expect(elsewhere.requests.length).toBe(before);
        expect((await h.call(connector)).result.error).toBeUndefined(); // still at home
        // Nor by a rollback to the version from before the narrowing: it restores that version, with its
        // allowed_destinations, but its token no wider than the owner left it.
        const restored = await h.service.rollback(connector, 1);
        expect(restored.allowed_destinations).toEqual([origin(elsewhere.url)]);
        expect((await h.call(connector, { base_url: elsewhere.url })).result.error).toMatchObject({ type: 'Connector.DestinationNotAllowed' });
        expect(elsewhere.requests.length).toBe(before);
        expect((await h.call(connector)).result.error).toBeUndefined();
        expect(api.requests[api.requests.length - 1].headers.authorization).toBe(`Bearer ${token}`);
      });

      test('an API key cannot be sent as the Host header (auth.header), by profile or by override', async () => {
        const key = `api-key-${hex()}`;
        const connector = name('authhost');
        await h.service.apply({ name: connector, type: 'REST', value: { base_url: api.url, auth: { type: 'api_key', value: key } } });
        expect((await h.call(connector)).result.error).toBeUndefined();
        expect(api.requests[api.requests.length - 1].headers['x-api-key']).toBe(key);
        const { result } = await h.call(connector, { auth: { header: 'Host' } });
        expect(result.error).toMatchObject({ type: 'Connector.InvalidInput' });
        expect(result.error!.message).toContain('auth.header');
        await expect(h.service.apply({ name: name('authhost2'), type: 'REST', value: { base_url: api.url, auth: { type: 'api_key', header: 'HOST', value: key } } })).rejects.toThrow(/value\.auth\.header: must not be Host/);
        expect(api.requests.filter((r) => r.headers.host === key)).toEqual([]);
      });

      test('changing the type (POSTGRES to MYSQL) while keeping ******** is refused: the password would go to another server', async () => {
        const connector = name('retype');
        const value = { host: '127.0.0.1', port: 5432, database: 'app', user: 'app', password: `pg-retype-${hex()}` };
        await h.service.apply({ name: connector, type: 'POSTGRES', value });
        expect((await h.service.get(connector)).value.password).toBe(MASK);
        const saved = await refusal({ name: connector, type: 'MYSQL', value: { ...value, password: MASK } });
        expect(saved?.issues[0]).toMatchObject({ path: 'value.password', message: expect.stringContaining('the type would now be MYSQL instead of POSTGRES, which the secret was written for') });
        await h.service.apply({ name: connector, type: 'MYSQL', value: { ...value, port: 3306 } }); // written again: fine
      });

      test('a call pinned to an older version obeys the newest version\'s locked fields and allowed_destinations', async () => {
        const { connector } = await bearerConnector({ allowed_destinations: [origin(elsewhere.url)] });
        const runner = createConnectionRunner({ service: h.service, vault: h.vault });
        const run = (overrides: Record<string, unknown>) =>
          runner.run({ connector, overrides, descriptor: { version: 1 } }, { signal: new AbortController().signal }).then(
            () => undefined,
            (err: { type?: string; message: string }) => err,
          );
        const before = elsewhere.requests.length;
        await h.service.apply({ name: connector, type: 'REST', value: { base_url: api.url, auth: { type: 'bearer', token: MASK } }, allowed_destinations: [], locked: ['base_url'] });
        expect(await run({ base_url: elsewhere.url })).toMatchObject({ type: 'Connector.LockedField' });
        await h.service.apply({ name: connector, type: 'REST', value: { base_url: api.url, auth: { type: 'bearer', token: MASK } }, allowed_destinations: [] });
        expect(await run({ base_url: elsewhere.url })).toMatchObject({ type: 'Connector.DestinationNotAllowed' });
        expect(elsewhere.requests.length).toBe(before);
        // Version 1 itself still runs, at home.
        expect(await run({})).toBeUndefined();
      });
    });

    describe('other types', () => {
      const key = `sk-bound-${hex()}`;
      let openai: OpenAiTestServer;
      let otherOpenai: OpenAiTestServer;
      beforeAll(async () => {
        [openai, otherOpenai] = await Promise.all([startOpenAiServer({ apiKey: key }), startOpenAiServer({ apiKey: key })]);
      });
      afterAll(async () => {
        await Promise.all([openai?.close(), otherOpenai?.close()]);
      });

      test('OPENAI: overriding base_url does not send the stored api_key', async () => {
        const connector = name('boundai');
        await h.service.apply({ name: connector, type: 'OPENAI', value: { base_url: openai.url, api_key: key } });
        const before = otherOpenai.requests.length;
        const { result } = await h.call(connector, { base_url: otherOpenai.url });
        expect(result.error).toMatchObject({ type: 'Connector.DestinationNotAllowed' });
        expect(result.error!.message).toContain('api_key');
        expect(otherOpenai.requests.length).toBe(before);
      });

      test('POSTGRES: overriding host does not send the stored password; an allowed host does', async () => {
        const connector = name('boundpg');
        const db = new URL(stack.databaseUrl);
        const value = { host: '127.0.0.1', port: Number(db.port || 5432), database: db.pathname.slice(1), user: decodeURIComponent(db.username) || 'postgres', password: `pg-bound-${hex()}` };
        await h.service.apply({ name: connector, type: 'POSTGRES', value: { ...value, sql: 'SELECT 1 AS one' } });
        const refused = await h.call(connector, { host: 'localhost' });
        expect(refused.result.error).toMatchObject({ type: 'Connector.DestinationNotAllowed' });
        expect(refused.result.error!.message).toContain('password');
        expect(refused.result.error!.message).toContain(`localhost:${value.port}`);

        await h.service.apply({ name: connector, type: 'POSTGRES', value: { ...value, sql: 'SELECT 1 AS one' }, allowed_destinations: [`localhost:${value.port}`] });
        const allowed = await h.call(connector, { host: 'localhost' });
        expect(allowed.result.error).toBeUndefined();
      });
    });
  });

  describe('Vault is read only under the paths the operator allows (TC_VAULT_PATHS)', () => {
    /** Paths no connector may name, whatever TC_VAULT_PATHS says: the worker's own token, Vault's own settings. */
    const forbidden = ['auth/token/lookup-self', 'secret/../auth/token/lookup-self', 'secret/data/x/lookup-self', 'sys/mounts', 'identity/oidc/token/x', 'cubbyhole/x', 'secret//data/x', 'secret/./data/x'];
    const lookupSelf = (base_url: string) => ({ type: 'REST', value: { base_url, auth: { type: 'bearer' } }, vault_secrets: [{ path: 'auth/token/lookup-self', map: { id: 'auth.token' } }] });

    test("the worker's Vault token can read lookup-self, so the check below guards something real", async () => {
      // What an editor would receive at auth.token if the path were read: the worker's own token.
      const answer = (await vaultAdmin.read('auth/token/lookup-self')) as { data: { id: string } };
      expect(answer.data.id).toBe(stack.vault.token);
    });

    test('saving a reference to auth/token/lookup-self (or another forbidden path) is refused by the service and the API, naming the field and the allowed prefixes', async () => {
      for (const path of forbidden) {
        const connector = name('vaultpath');
        const refusal = await h.service.apply({ name: connector, ...lookupSelf(elsewhere.url), vault_secrets: [{ path: 'secret/data/fine' }, { path, map: { id: 'auth.token' } }] }).then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(refusal).toBeInstanceOf(ConnectorValidationError);
        expect((refusal as ConnectorValidationError).issues).toEqual([{ path: 'vault_secrets.1.path', message: expect.stringContaining('connectors may read only secret/ (TC_VAULT_PATHS)') }]);
        await expect(h.service.get(connector)).rejects.toThrow(/does not exist/);
      }

      const token = `vault-paths-rw-${hex()}${hex()}`;
      const managementApi = await startManagementApi({ service: h.service, tokens: { readWrite: [token], readOnly: [] }, port: 0 });
      try {
        const connector = name('vaultpathapi');
        const res = await fetch(`${managementApi.url}/v1/connectors`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ name: connector, ...lookupSelf(elsewhere.url) }),
        });
        expect(res.status).toBe(400);
        const body = (await res.json()) as { error: { type: string; issues: Array<{ path: string; message: string }> } };
        expect(body.error.type).toBe('Connector.InvalidInput');
        expect(body.error.issues).toEqual([
          { path: 'vault_secrets.0.path', message: "reaches Vault's auth/ mount, which connectors may never read (it holds tokens and Vault's own settings); connectors may read only secret/ (TC_VAULT_PATHS)" },
        ]);
        await expect(h.service.get(connector)).rejects.toThrow(/does not exist/);
      } finally {
        await managementApi.close();
      }
    });

    test('a path outside the configured prefixes is refused on save; one inside is accepted; the setting itself cannot name a forbidden mount', async () => {
      const team = `secret/data/${name('team')}/`;
      const narrow = new ConnectorService({ store: h.store, registry: new ConnectorRegistry(), keyring: h.keyring, vaultPaths: [team] });
      const payroll = { name: name('payroll'), type: 'REST', value: { base_url: api.url }, vault_secrets: [{ path: `secret/data/${name('payroll')}` }] };
      await expect(narrow.apply(payroll)).rejects.toMatchObject({ issues: [{ path: 'vault_secrets.0.path', message: `is outside the Vault paths connectors may read: ${team} (TC_VAULT_PATHS)` }] });
      expect((await narrow.apply({ ...payroll, vault_secrets: [{ path: `${team}billing` }] })).version).toBe(1);
      // Nothing given in code widens it to Vault's own mounts either.
      for (const vaultPaths of [['auth/'], ['secret/', 'sys/'], ['a'], ['secret/../auth/'], ['lookup-self/']]) {
        expect(() => new ConnectorService({ store: h.store, registry: new ConnectorRegistry(), vaultPaths })).toThrow(/^vaultPaths: /);
        expect(() => new VaultSecretSource({ address: stack.vault.address, token: stack.vault.token, allowedPaths: vaultPaths })).toThrow(/^allowedPaths: /);
      }
    });

    test("a connector stored before the rule that reads lookup-self fails as Connector.Vault.PermissionDenied, and the worker's token reaches no one", async () => {
      // The same shape of connector with an allowed path delivers its Vault value: the target would see the token if it were read.
      const marker = `vault-path-marker-${hex()}`;
      const allowed = name('allowedvault');
      await h.service.apply({ name: allowed, type: 'REST', value: { base_url: elsewhere.url, auth: { type: 'bearer' } }, vault_secrets: [{ path: await vaultSecret({ id: marker }), map: { id: 'auth.token' } }] });
      expect((await h.call(allowed)).result.error).toBeUndefined();
      expect(elsewhere.requests[elsewhere.requests.length - 1].headers.authorization).toBe(`Bearer ${marker}`);

      // Written to the store directly, as a connector saved before the service refused such paths.
      const connector = name('storedbefore');
      await h.store.put({ name: connector, description: '', locked: [], allowed_destinations: [], ...lookupSelf(elsewhere.url) } as Parameters<typeof h.store.put>[0]);
      const before = elsewhere.requests.length;
      const { result } = await h.call(connector);
      expect(result.error).toMatchObject({ type: 'Connector.Vault.PermissionDenied', nonRetryable: true });
      expect(result.error!.message).toContain('auth/token/lookup-self');
      expect(result.error!.message).toContain(connector);
      expect(elsewhere.requests.length).toBe(before);
      const everything = [JSON.stringify(elsewhere.requests), JSON.stringify(api.requests), JSON.stringify(result), await historyText(h.client, result.workflowId!)].join('\n');
      expect(everything).toContain(marker); // the sweep sees what reached the target and the histories
      expect(everything).not.toContain(stack.vault.token);
    });

    test('a path the operator no longer allows is refused at run time as Connector.Vault.PermissionDenied; one still allowed works', async () => {
      const team = `secret/data/${name('team')}/`;
      const otherTeam = await vaultSecret({ token: `payroll-token-${hex()}` });
      const ownTeam = `${team}billing`;
      const ownToken = `own-team-token-${hex()}`;
      await vaultAdmin.write(ownTeam, { data: { token: ownToken } });
      recordSecrets('a Vault secret of secrets.test.ts', [ownToken]);
      // Saved while the whole secret/ mount was allowed (the default) ...
      const payroll = name('payroll');
      const billing = name('billing');
      for (const [connector, path] of [[payroll, otherTeam], [billing, ownTeam]]) {
        await h.service.apply({ name: connector, type: 'REST', value: { base_url: elsewhere.url, auth: { type: 'bearer' } }, vault_secrets: [{ path, map: { token: 'auth.token' } }] });
      }
      // ... then run by a worker whose TC_VAULT_PATHS is the team's folder only.
      const narrowVault = new VaultSecretSource({ address: stack.vault.address, token: stack.vault.token, cacheTtlMs: 0, allowedPaths: [team] });
      const runner = createConnectionRunner({ service: h.service, vault: narrowVault });
      const before = elsewhere.requests.length;
      const refused = await runner.run({ connector: payroll }, { signal: new AbortController().signal }).then(
        () => undefined,
        (err: { type?: string; nonRetryable?: boolean; message: string }) => err,
      );
      expect(refused).toMatchObject({ type: 'Connector.Vault.PermissionDenied', nonRetryable: true });
      expect(refused!.message).toContain(`is outside the Vault paths connectors may read: ${team} (TC_VAULT_PATHS)`);
      expect(elsewhere.requests.length).toBe(before);
      await runner.run({ connector: billing }, { signal: new AbortController().signal });
      expect(elsewhere.requests[elsewhere.requests.length - 1].headers.authorization).toBe(`Bearer ${ownToken}`);
    });
  });

  describe('credentials inside a URL are secrets', () => {
    test('stored encrypted, masked on read and in results, sent as Basic auth, absent from history', async () => {
      const password = `url-pass-${hex()}`;
      const connector = name('urlcreds');
      recordSecrets('a URL password', [password]);
      await h.service.apply({ name: connector, type: 'REST', value: { url: `http://alice:${password}@127.0.0.1:${api.port}/creds` } });

      const [row] = await h.store.db.query<{ value: unknown }>('SELECT value FROM tc_connector_versions WHERE name = $1', [connector]);
      expect(JSON.stringify(row.value)).not.toContain(password);
      expect(Keyring.isCiphertext((row.value as { url: unknown }).url)).toBe(true);
      expect((await h.service.get(connector)).value.url).toBe(MASK);

      const marker = `url-marker-${hex()}`;
      const { result, workflowId } = await h.call(connector, { query: { note: marker } });
      expect(result.error).toBeUndefined();
      expect(api.requests[api.requests.length - 1].headers.authorization).toBe(`Basic ${Buffer.from(`alice:${password}`).toString('base64')}`);
      expect(result.details!.inputs.url).toBe(MASK);
      for (const id of [workflowId, result.workflowId!]) {
        const text = await historyText(h.client, id);
        expect(text).toContain(marker);
        expect(text).not.toContain(password);
      }

      // Writing the mask back keeps the stored URL, as for every other secret.
      await h.service.apply({ name: connector, type: 'REST', value: { url: MASK, method: 'post' } });
      const again = await h.call(connector);
      expect(again.result.error).toBeUndefined();
      expect(api.requests[api.requests.length - 1].headers.authorization).toBe(`Basic ${Buffer.from(`alice:${password}`).toString('base64')}`);
    });

    test('an echo of the URL password is redacted from the output', async () => {
      const password = `echoed-pass-${hex()}`;
      // Not for the sweep: an inline definition is the workflow's own data, in its history by design.
      const { result } = await h.call({ type: 'REST', url: `http://bob:${password}@127.0.0.1:${api.port}/echo` });
      expect(result.error).toBeUndefined();
      const output = JSON.stringify(result.details!.output);
      expect(output).toContain('authorization'); // the echo is there...
      // ...without the password, plain or inside the Basic credentials the server saw.
      expect(output).not.toContain(password);
      expect(output).not.toContain(Buffer.from(`bob:${password}`).toString('base64'));
      expect(result.details!.inputs.url).toBe(MASK);
    });
  });

  describe("a header named like a credential is a secret, by the schema's name rule", () => {
    test('X-Auth-Token is stored encrypted, masked on read through the API, and redacted from what an echoing server answers', async () => {
      const token = `x-auth-token-${hex()}`;
      const marker = `plain-header-${hex()}`; // an ordinary header, to show each check sees what is there
      recordSecrets('a header of secrets.test.ts', [token]);
      const connector = name('authheader');
      await h.service.apply({ name: connector, type: 'REST', value: { base_url: api.url, headers: { 'X-Auth-Token': token, 'X-Team': marker } } });

      // At rest: the row holds the ordinary header in plain text and the token only as ciphertext.
      const [row] = await h.store.db.query<{ value: string }>('SELECT value::text AS value FROM tc_connector_versions WHERE name = $1', [connector]);
      expect(row.value).toContain(marker);
      expect(row.value).not.toContain(token);
      expect(JSON.parse(row.value).headers['X-Auth-Token']).toMatch(/^tcenc:/);

      // On read, through the HTTP API.
      const apiToken = `headers-rw-${hex()}${hex()}`;
      const managementApi = await startManagementApi({ service: h.service, tokens: { readWrite: [apiToken], readOnly: [] }, port: 0 });
      try {
        const read = await fetch(`${managementApi.url}/v1/connectors/${connector}`, { headers: { authorization: `Bearer ${apiToken}` } });
        const text = await read.text();
        expect(read.status).toBe(200);
        expect((JSON.parse(text) as { value: { headers: Record<string, string> } }).value.headers).toEqual({ 'X-Auth-Token': MASK, 'X-Team': marker });
        expect(text).not.toContain(token);
      } finally {
        await managementApi.close();
      }

      // In a call: the server receives the token, and its echo of the request comes back redacted.
      const { result, workflowId } = await h.call(connector);
      expect(result.error).toBeUndefined();
      expect(api.requests[api.requests.length - 1].headers['x-auth-token']).toBe(token);
      const output = result.details!.output as { body: { headers: Record<string, string> } };
      expect(output.body.headers['x-team']).toBe(marker);
      expect(output.body.headers['x-auth-token']).toBe(MASK);
      expect(result.details!.inputs).toMatchObject({ headers: { 'X-Auth-Token': MASK, 'X-Team': marker } });
      for (const id of [workflowId, result.workflowId!]) {
        const history = await historyText(h.client, id);
        expect(history).toContain(marker);
        expect(history).not.toContain(token);
      }
    });

    test('a header the rule covers follows an override of the destination no more than auth does', async () => {
      const token = `x-api-key-${hex()}`;
      recordSecrets('a header of secrets.test.ts', [token]);
      const connector = name('keyheader');
      await h.service.apply({ name: connector, type: 'REST', value: { base_url: api.url, headers: { 'X-Custom-Api-Key': token } } });
      expect((await h.call(connector)).result.error).toBeUndefined();
      expect(api.requests[api.requests.length - 1].headers['x-custom-api-key']).toBe(token);
      const before = elsewhere.requests.length;
      const { result } = await h.call(connector, { base_url: elsewhere.url });
      expect(result.error).toMatchObject({ type: 'Connector.DestinationNotAllowed', nonRetryable: true });
      expect(result.error!.message).not.toContain(token);
      expect(elsewhere.requests.length).toBe(before);
    });
  });

  describe('redaction removes secrets and nothing else', () => {
    test('a short Vault value that is not secret (a team name "json") is left alone everywhere', async () => {
      const token = `vault-token-${hex()}`;
      const path = await vaultSecret({ team: 'json', token }, ['token']);
      const connector = name('plain');
      await h.service.apply({
        name: connector,
        type: 'REST',
        value: { base_url: api.url, auth: { type: 'bearer' } },
        vault_secrets: [{ path, map: { team: 'headers.x-team', token: 'auth.token' } }],
      });
      const { result } = await h.call(connector);
      expect(result.error).toBeUndefined();
      const output = result.details!.output as { headers: Record<string, string>; body: { headers: Record<string, string> } };
      expect(output.headers['content-type']).toBe('application/json');
      expect(output.body.headers['x-team']).toBe('json');
      // The secret the server echoed is gone.
      expect(output.body.headers.authorization).toBe(`Bearer ${MASK}`);
      // Logs too: the process-wide set redacts the token, and not the team name inside other words.
      expect(secretRedactions.redact(`content-type application/json, token ${token}`)).toBe(`content-type application/json, token ${MASK}`);
    });

    test('a short Vault value declared secret is redacted; a long one is redacted without a declaration', async () => {
      const shortSecret = `pin${hex().slice(0, 3)}`;
      const longValue = `long-vault-value-${hex()}-${hex()}`;
      const path = await vaultSecret({ pin: shortSecret, long: longValue });
      const connector = name('declared');
      await h.service.apply({
        name: connector,
        type: 'REST',
        value: { base_url: api.url },
        vault_secrets: [{ path, map: { pin: 'headers.x-pin', long: 'headers.x-long' }, secret_keys: ['pin'] }],
      });
      const { result } = await h.call(connector);
      expect(api.requests[api.requests.length - 1].headers).toMatchObject({ 'x-pin': shortSecret, 'x-long': longValue });
      const output = JSON.stringify(result.details!.output);
      expect(output).toContain('x-pin');
      expect(output).not.toContain(shortSecret);
      expect(output).not.toContain(longValue);
    });
  });

  describe('summaries carry no secret', () => {
    test('a whole url is summarised by its host: a webhook path stays out of the descriptor and every summary', async () => {
      const hookKey = `hook-key-${hex()}`;
      const connector = name('webhook');
      await h.service.apply({ name: connector, type: 'REST', value: { url: `${api.url}/hooks/${hookKey}`, method: 'post' } });
      const { result, workflowId } = await h.call(connector);
      expect(result.error).toBeUndefined();
      const child = h.client.workflow.getHandle(result.workflowId!);
      expect(await (await child.describe()).staticSummary()).toBe(connector);
      // The descriptor (the result of the child's describe local activity), the summaries of the child
      // and its call, and its current details; the result itself shows the profile's url, which is
      // plain data of the profile.
      const childEvents = (await child.fetchHistory()).events!;
      const described = childEvents.find((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity')!.markerRecordedEventAttributes!;
      const { currentDetails } = await child.query<{ currentDetails: string }>('__temporal_workflow_metadata');
      const summaries = [described, ...childEvents.map((e) => e.userMetadata).filter(Boolean), currentDetails].map(decodedHistoryText).join('\n');
      expect(summaries).toContain(`REST ${connector} POST 127.0.0.1:${api.port}`);
      expect(currentDetails).toContain(`REST ${connector} POST 127.0.0.1:${api.port}`);
      expect(summaries).not.toContain(hookKey);
      expect((await h.client.workflow.getHandle(workflowId).fetchHistory()).events!.filter((e) => e.activityTaskScheduledEventAttributes)).toEqual([]);
    });

    test("an override's token is redacted from the summary, even inside the path", async () => {
      const token = `override-token-${hex()}`;
      const connector = name('sumtoken');
      await h.service.apply({ name: connector, type: 'REST', value: { base_url: api.url } });
      const { result } = await h.call(connector, { path: `/by-token/${token}`, auth: { type: 'bearer', token } });
      expect(result.error).toBeUndefined();
      const child = h.client.workflow.getHandle(result.workflowId!);
      const { currentDetails } = await child.query<{ currentDetails: string }>('__temporal_workflow_metadata');
      expect(currentDetails).toBe(`done: REST ${connector} GET /by-token/${MASK} in ${result.details!.duration_ms} ms, attempt 1`);
      // The child's static summary, then its call's.
      const summaries = (await child.fetchHistory()).events!.flatMap((e) => (e.userMetadata?.summary ? [JSON.parse(Buffer.from(e.userMetadata.summary.data!).toString())] : []));
      expect(summaries).toEqual([connector, `REST ${connector} GET /by-token/${MASK}`]);
    });

    test('a webhook URL kept in Vault as a declared secret is redacted from failure messages by its path', async () => {
      const hookKey = `vault-hook-${hex()}`;
      const path = await vaultSecret({ hook: `${api.url}/hooks/${hookKey}` });
      const connector = name('vaulthook');
      await h.service.apply({ name: connector, type: 'REST', value: {}, vault_secrets: [{ path, map: { hook: 'url' }, secret_keys: ['hook'] }] });
      api.respondWith({ status: 404 });
      const { result, workflowId } = await h.call(connector);
      expect(result.error?.type).toBe('Connector.External.Http');
      expect(result.error!.message).toContain('HTTP 404');
      expect(result.error!.message).not.toContain(hookKey);
      for (const id of [workflowId, result.workflowId!]) expect(await historyText(h.client, id)).not.toContain(hookKey);
    });
  });
});

describe('every attempt of a connection runs the version it shows', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.shutdown();
  });

  test('a retry after an update runs the version the connection started with; the next call gets the new one', async () => {
    const connector = name('pinned');
    let first = true;
    const server = await startTestHttpServer(async (req, res) => {
      if (first) {
        first = false;
        // The update lands while attempt 1 is in flight; attempt 2 must not switch to it.
        await h.service.apply({ name: connector, type: 'REST', value: { base_url: server.url, headers: { 'x-version': 'two' } } });
        res.writeHead(503).end();
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ version: req.headers['x-version'] }));
    });
    try {
      await h.service.apply({ name: connector, type: 'REST', value: { base_url: server.url, headers: { 'x-version': 'one' } } });
      const { result } = await h.call(connector);
      expect(result.error).toBeUndefined();
      expect(server.requests.map((r) => r.headers['x-version'])).toEqual(['one', 'one']);
      expect(result.details).toMatchObject({ attempt: 2, connector: { name: connector, version: 1 }, output: { body: { version: 'one' } } });

      const next = await h.call(connector);
      expect(next.result.details).toMatchObject({ attempt: 1, connector: { version: 2 }, output: { body: { version: 'two' } } });
    } finally {
      await server.close();
    }
  });

  test('a rollback between attempts does not switch either', async () => {
    const connector = name('pinroll');
    const server = await startTestHttpServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ version: req.headers['x-version'] }));
    });
    try {
      await h.service.apply({ name: connector, type: 'REST', value: { base_url: server.url, headers: { 'x-version': 'one' } } });
      await h.service.apply({ name: connector, type: 'REST', value: { base_url: server.url, headers: { 'x-version': 'two' } } });
      server.respondWith({ status: 503 });
      const pending = h.call(connector, undefined, { taskQueue: h.connectorQueue, retry: { initialInterval: '1500ms', maximumAttempts: 2 } });
      while (server.requests.length === 0) await new Promise((r) => setTimeout(r, 20));
      await h.service.rollback(connector, 1);
      const { result } = await pending;
      expect(server.requests.map((r) => r.headers['x-version'])).toEqual(['two', 'two']);
      expect(result.details).toMatchObject({ attempt: 2, connector: { version: 2 } });
    } finally {
      await server.close();
    }
  });

  test('a connector deleted between attempts stops the retries with Connector.NotFound', async () => {
    const connector = name('pindel');
    let first = true;
    const server = await startTestHttpServer(async (_req, res) => {
      if (first) {
        first = false;
        await h.service.delete(connector);
      }
      res.writeHead(503).end();
    });
    try {
      await h.service.apply({ name: connector, type: 'REST', value: { base_url: server.url } });
      const { result } = await h.call(connector);
      expect(result.error).toMatchObject({ type: 'Connector.NotFound', nonRetryable: true });
      expect(result.error!.message).toContain('version 1');
      expect(server.requests.length).toBe(1);
    } finally {
      await server.close();
    }
  });
});
