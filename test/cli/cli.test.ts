import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { createEncryptionCodec } from '../../core/codec';
import { Keyring } from '../../core/keyring';
import { ConnectorLimiter } from '../../core/limits';
import { PgDatabase } from '../../core/store/database';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import { startTestHttpServer, type TestHttpServer } from '../fixtures/http-server';
import { yamlAliasBomb } from '../fixtures/yaml-bomb';
import { startHarness } from '../support/harness';
import { rawRequest } from '../support/raw-http';
import { recordResponse, recordSecrets } from '../support/leak-sweep';
import { runProcess, type ProcessRun as Run } from '../support/run-process';

const BIN = path.resolve(__dirname, '..', '..', 'cli', 'bin.js');
const SECRET = 'tok-cli-SECRET-4242';
recordSecrets('the token of cli.test.ts', [SECRET]);

// The real `connectors` binary against a PostgreSQL database of this file's own.
describe('connectors CLI', () => {
  let db: ScratchDatabase;
  let api: TestHttpServer;
  const key1 = Keyring.generateEntry('k1');
  const key2 = Keyring.generateEntry('k2');
  let keyring = key1;
  const outputs: string[] = [];

  /** Runs the binary to its end; one that has not ended after 60 s is killed (and reports code null). */
  async function cli(args: string[], input?: string, env: Record<string, string> = {}): Promise<Run> {
    const run = await runProcess(process.execPath, [BIN, ...args], {
      env: { ...process.env, DATABASE_URL: db.url, TC_KEYRING: keyring, TC_KEYRING_FILE: '', VAULT_ADDR: '', ...env },
      timeoutMs: 60_000,
      input,
      label: `connectors ${args[0]}`,
    });
    outputs.push(run.stdout, run.stderr);
    return run;
  }

  /** Starts a server command (`codec-server`) and waits, at most 60 s, for the line that gives its URL. */
  function serve(args: string[], env: Record<string, string>, ready: RegExp): Promise<{ url: string; stdout: () => string; stop(): Promise<number | null> }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      const closed = new Promise<number | null>((done) =>
        child.on('close', (code) => {
          outputs.push(stdout, stderr);
          recordResponse(`connectors ${args[0]}`, `${stdout}\n${stderr}`);
          done(code);
        }),
      );
      const stop = async () => {
        child.kill('SIGTERM');
        return closed;
      };
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`no ready line within 60 s; stdout: ${stdout} stderr: ${stderr}`));
      }, 60_000);
      void closed.then((code) => {
        clearTimeout(timer);
        reject(new Error(`exited with ${code} before it was ready; stderr: ${stderr}`));
      });
      child.stderr.on('data', (c) => (stderr += c));
      child.stdout.on('data', (c) => {
        stdout += c;
        const match = ready.exec(stdout);
        if (match) {
          clearTimeout(timer);
          resolve({ url: match[1], stdout: () => stdout, stop });
        }
      });
    });
  }

  const definition = (description: string, token = SECRET) =>
    `name: billing_api\ntype: REST\ndescription: ${description}\nvalue:\n  base_url: ${api.url}\n  health_path: /health\n  auth: { type: bearer, token: ${token} }\n`;

  beforeAll(async () => {
    [db, api] = await Promise.all([createScratchDatabase('tc_cli'), startTestHttpServer()]);
  });
  afterAll(async () => {
    await api?.close();
    await db?.drop();
  });

  test('apply creates from YAML on stdin; get and list show the secret masked', async () => {
    const applied = await cli(['apply', '-f', '-'], definition('first'));
    expect(applied).toMatchObject({ code: 0, stdout: 'billing_api: created version 1\n' });
    const get = await cli(['get', 'billing_api', '-o', 'json']);
    expect(get.code).toBe(0);
    expect(JSON.parse(get.stdout)).toMatchObject({ name: 'billing_api', version: 1, value: { auth: { type: 'bearer', token: '********' } } });
    const yaml = await cli(['get', 'billing_api']);
    expect(yaml.stdout).toContain('token: "********"');
    const list = await cli(['list']);
    expect(list.stdout).toMatch(/^NAME\s+TYPE\s+VERSION/);
    expect(list.stdout).toMatch(/billing_api\s+REST\s+1/);
    expect(JSON.parse((await cli(['list', '--json'])).stdout)[0].value.auth.token).toBe('********');
  });

  test('get shows a connector\'s limits and what they have in use; an old version shows no use', async () => {
    const applied = await cli(['apply', '-f', '-'], `name: limited_api\ntype: REST\nvalue: { base_url: ${api.url} }\nlimits: { max_concurrent: 2, rate: { calls: 5, per: 1s } }\n`);
    expect(applied).toMatchObject({ code: 0, stdout: 'limited_api: created version 1\n' });
    const shown = JSON.parse((await cli(['get', 'limited_api', '-o', 'json'])).stdout);
    expect(shown).toMatchObject({ limits: { max_concurrent: 2, rate: { calls: 5, per: '1s' } }, usage: { in_flight: 0, waiting: 0, started_in_period: 0 } });
    expect((await cli(['get', 'limited_api'])).stdout).toMatch(/usage:\n\s+in_flight: 0\n\s+waiting: 0/);
    expect(JSON.parse((await cli(['get', 'limited_api', '--version', '1', '-o', 'json'])).stdout).usage).toBeUndefined();
  });

  test('limits reset ends the back-off a 429 set, says when there was none, and refuses an unknown connector', async () => {
    // The back-off a 429 leaves, set in the store the CLI uses, as a connector worker would.
    const store = new PgDatabase({ connectionString: db.url });
    try {
      await new ConnectorLimiter(store).backOff('limited_api', 300_000);
    } finally {
      await store.close();
    }
    expect(JSON.parse((await cli(['get', 'limited_api', '-o', 'json'])).stdout).usage.backoff_until).toEqual(expect.any(String));
    expect(await cli(['limits', 'reset', 'limited_api'])).toMatchObject({ code: 0, stdout: 'limited_api: back-off cleared\n' });
    expect(JSON.parse((await cli(['get', 'limited_api', '-o', 'json'])).stdout).usage.backoff_until).toBeUndefined();
    expect(await cli(['limits', 'reset', 'limited_api'])).toMatchObject({ code: 0, stdout: 'limited_api: no back-off was in force\n' });
    const missing = await cli(['limits', 'reset', 'missing']);
    expect(missing).toMatchObject({ code: 1, stderr: 'connectors: connector missing does not exist\n' });
  });

  test('the row holds ciphertext only', async () => {
    const client = new Client({ connectionString: db.url });
    await client.connect();
    const { rows } = await client.query('SELECT value::text AS v FROM tc_connector_versions');
    await client.end();
    expect(rows.map((r) => r.v).join()).not.toContain(SECRET);
  });

  test('test reaches the system with the stored secret; exit code 1 when it cannot', async () => {
    const ok = await cli(['test', 'billing_api']);
    expect(ok).toMatchObject({ code: 0, stdout: expect.stringMatching(/^ok: HTTP 200/) });
    expect(api.requests[api.requests.length - 1].headers.authorization).toBe(`Bearer ${SECRET}`);
    await cli(['apply', '-f', '-'], 'name: nowhere\ntype: REST\nvalue: { url: "http://127.0.0.1:9/" }\n');
    const failed = await cli(['test', 'nowhere']);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/^FAILED: .*ECONNREFUSED/);
  });

  test('writing the mask back keeps the secret; history names changed fields, never values', async () => {
    const current = JSON.parse((await cli(['get', 'billing_api', '-o', 'json'])).stdout);
    const masked = await cli(['apply', '-f', '-'], JSON.stringify({ name: 'billing_api', type: 'REST', description: 'second', value: current.value }));
    expect(masked).toMatchObject({ code: 0, stdout: 'billing_api: updated to version 2\n' });
    await cli(['test', 'billing_api']);
    expect(api.requests[api.requests.length - 1].headers.authorization).toBe(`Bearer ${SECRET}`);
    await cli(['apply', '-f', '-'], definition('third', 'tok-cli-NEW-0001'));

    const history = await cli(['history', 'billing_api', '--json']);
    const versions = JSON.parse(history.stdout) as Array<{ version: number; changed: string[]; created_by: string }>;
    expect(versions.map((v) => v.version)).toEqual([3, 2, 1]);
    expect(versions[0].changed).toEqual(['description', 'value.auth.token']);
    expect(versions[1].changed).toEqual(['description']);
    expect(versions[2].changed).toEqual(['created']);
    expect(versions[0].created_by).toMatch(/^cli:/);
    expect((await cli(['history', 'billing_api'])).stdout).toMatch(/^VERSION\s+WHEN\s+WHO\s+CHANGED/);
  });

  test('rollback restores an old version, secret included', async () => {
    const rolled = await cli(['rollback', 'billing_api', '1']);
    expect(rolled).toMatchObject({ code: 0, stdout: 'billing_api: version 1 restored as version 4\n' });
    await cli(['test', 'billing_api']);
    expect(api.requests[api.requests.length - 1].headers.authorization).toBe(`Bearer ${SECRET}`);
  });

  test('a multi-document apply with one bad document applies nothing, and says where', async () => {
    const good = 'name: good_one\ntype: REST\nvalue: { url: "http://127.0.0.1:9/" }\n';
    const unknownField = await cli(['apply', '-f', '-'], `${good}---\nname: bad_one\ntype: REST\ncolour: red\n`);
    expect(unknownField.code).toBe(1);
    expect(unknownField.stderr).toMatch(/^connectors: connector definition is invalid: documents\.1: Unrecognized key: "colour"\n$/);
    const syntax = await cli(['apply', '-f', '-'], `${good}---\nname: bad_one\n  value: [\n`);
    expect(syntax.code).toBe(1);
    expect(syntax.stderr).toMatch(/^connectors: stdin:5:\d+: /);
    expect((await cli(['get', 'good_one'])).stderr).toBe('connectors: connector good_one does not exist\n');
  });

  test('apply refuses a YAML alias bomb with one line saying it expands too many aliases, exit 1, and stores nothing', async () => {
    const before = await cli(['list', '--json']);
    expect(before.code).toBe(0);
    const fromStdin = await cli(['apply', '-f', '-'], yamlAliasBomb('bomb'));
    expect(fromStdin.code).toBe(1);
    expect(fromStdin.stdout).toBe('');
    expect(fromStdin.stderr).toMatch(/^connectors: stdin:1:1: document 1 expands too many YAML aliases \(more than 20 alias expansions\)[^\n]*billion laughs[^\n]*\n$/);
    const dir = mkdtempSync(path.join(tmpdir(), 'tc-cli-bomb-'));
    try {
      const file = path.join(dir, 'bomb.yaml');
      writeFileSync(file, `name: bomb_neighbour\ntype: REST\nvalue: { url: "http://127.0.0.1:9/" }\n---\n${yamlAliasBomb('bomb')}`);
      const fromFile = await cli(['apply', '-f', file]);
      expect(fromFile.code).toBe(1);
      expect(fromFile.stderr).toMatch(new RegExp(`^connectors: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4:1: document 2 expands too many YAML aliases[^\n]*\n$`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect((await cli(['list', '--json'])).stdout).toBe(before.stdout);
  });

  test('errors are one line on stderr with exit code 1; --help works everywhere', async () => {
    for (const args of [['get', 'missing'], ['delete', 'missing'], ['rollback', 'billing_api', '99'], ['apply', '-f', '/nonexistent.yaml'], ['get', 'billing_api', '--version', 'x']]) {
      const run = await cli(args);
      expect(run.code).toBe(1);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
      expect(run.stderr).not.toMatch(/\n\s+at /);
    }
    const stale = await cli(['delete', 'billing_api', '--expected-version', '1']);
    expect(stale.stderr).toContain('is at version 4, not 1');
    expect(JSON.parse((await cli(['get', 'billing_api', '-o', 'json'])).stdout).version).toBe(4);
    for (const args of [['--help'], ['apply', '--help'], ['history', '--help'], ['rotate-key', '--help']]) {
      const help = await cli(args);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(/^Usage: connectors/);
    }
  });

  test('types lists every type with its sensitive fields', async () => {
    const types = await cli(['types']);
    expect(types.stdout).toMatch(/REST\s+auth\.password, auth\.token/);
    // Headers are sensitive by their names (X-Auth-Token, ...): said once, not as a dozen name patterns.
    expect(types.stdout).toMatch(/REST\s+auth\.password, auth\.token, auth\.value, headers \(by name\)\s/);
    expect((await cli(['types', 'rest'])).stdout).toMatch(/^ {2}headers +\(sensitive by name\) Request headers/m);
    expect(types.stdout).toMatch(/OPENAI\s+api_key/);
    const json = JSON.parse((await cli(['types', '--json'])).stdout) as Array<{ name: string; json_schema: { properties: object } }>;
    expect(json.find((t) => t.name === 'REST')!.json_schema.properties).toHaveProperty('base_url');
  });

  test('types shows every field of a type with its description, also inside auth', async () => {
    const all = await cli(['types']);
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/^ {2}base_url +Base URL of the API/m);
    expect(all.stdout).toMatch(/^ {2}api_key +\(sensitive\) Sent as `Authorization: Bearer <api_key>`/m);
    const rest = await cli(['types', 'rest']);
    expect(rest.code).toBe(0);
    expect(rest.stdout).toMatch(/^REST: /m);
    expect(rest.stdout).toMatch(/^ {2}method +HTTP method, case-insensitive\. Default `GET`\./m);
    expect(rest.stdout).toMatch(/^ {2}auth\.token +\(sensitive\) \(type bearer\) Sent as `Authorization: Bearer <token>`/m);
    expect(rest.stdout).not.toMatch(/^OPENAI/m);
    const unknown = await cli(['types', 'NOPE']);
    expect(unknown).toMatchObject({ code: 1, stderr: expect.stringContaining('known types: REST') });
    // The document every connector shares, with its fields.
    const definition = await cli(['types', '--definition']);
    expect(definition.stdout).toMatch(/^ {2}vault_secrets\[\]\.path +/m);
    expect(definition.stdout).toMatch(/^ {2}locked +/m);
  });

  test('rotate-key re-encrypts everything; workflows still use the connector with only the new key', async () => {
    keyring = `${key2},${key1}`;
    const rotated = await cli(['rotate-key']);
    expect(rotated).toMatchObject({ code: 0, stdout: expect.stringMatching(/^re-encrypted \d+ value\(s\) under key k2\n$/) });
    keyring = key2;
    expect((await cli(['test', 'billing_api'])).code).toBe(0);

    const h = await startHarness({ databaseUrl: db.url, keyring: Keyring.parse(key2) });
    try {
      const { result } = await h.call('billing_api', { path: '/after-rotation' });
      expect(result.error).toBeUndefined();
      expect(api.requests[api.requests.length - 1]).toMatchObject({ path: '/after-rotation', headers: { authorization: `Bearer ${SECRET}` } });
    } finally {
      await h.shutdown();
    }
  });

  describe('codec-server', () => {
    const payloadKey = Keyring.generateEntry('cli-payload');
    const codecToken = `cli-codec-${randomBytes(8).toString('hex')}`;
    const marker = `cli-codec-marker-${randomBytes(6).toString('hex')}`;
    const READY = /codec server on (http:\/\/\S+) /;

    /** A /decode body holding one payload encrypted with the payload key, whose JSON is `{ note: marker }`. */
    async function encryptedBody(): Promise<string> {
      const [payload] = await createEncryptionCodec(Keyring.parse(payloadKey)).encode([
        { metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from(JSON.stringify({ note: marker })) },
      ]);
      const b64 = (bytes: Uint8Array | null | undefined) => Buffer.from(bytes ?? new Uint8Array()).toString('base64');
      return JSON.stringify({ payloads: [{ metadata: Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([k, v]) => [k, b64(v)])), data: b64(payload.data) }] });
    }
    const noteOf = (text: string) =>
      JSON.parse(Buffer.from((JSON.parse(text) as { payloads: Array<{ data: string }> }).payloads[0].data, 'base64').toString('utf8')) as { note: string };

    test('without TC_CODEC_TOKENS it refuses to start, and --insecure-no-auth is refused off loopback, each with one line and exit 1', async () => {
      const env = { TC_PAYLOAD_KEYRING: payloadKey, TC_CODEC_TOKENS: '' };
      const noTokens = await cli(['codec-server', '--port', '0'], undefined, env);
      expect(noTokens.code).toBe(1);
      expect(noTokens.stderr).toMatch(/^connectors: the codec server needs at least one bearer token \(TC_CODEC_TOKENS[^\n]*--insecure-no-auth[^\n]*\n$/);
      for (const host of ['0.0.0.0', '::']) {
        const open = await cli(['codec-server', '--insecure-no-auth', '--host', host, '--port', '0'], undefined, env);
        expect(open.code).toBe(1);
        expect(open.stderr).toMatch(/^connectors: refusing to serve \/decode without tokens on [^\n]*loopback addresses only[^\n]*\n$/);
      }
      const both = await cli(['codec-server', '--insecure-no-auth', '--port', '0'], undefined, { ...env, TC_CODEC_TOKENS: codecToken });
      expect(both.code).toBe(1);
      expect(both.stderr).toMatch(/^connectors: [^\n]*at once[^\n]*\n$/);
    });

    test('--insecure-no-auth serves /decode on loopback without a token and says so, and still refuses a foreign Host', async () => {
      const server = await serve(['codec-server', '--insecure-no-auth', '--port', '0'], { TC_PAYLOAD_KEYRING: payloadKey, TC_CODEC_TOKENS: '' }, READY);
      try {
        expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
        const body = await encryptedBody();
        const decoded = await rawRequest(`${server.url}/decode`, { method: 'POST', headers: { host: new URL(server.url).host, 'content-type': 'application/json' }, body });
        expect(decoded.status).toBe(200);
        expect(noteOf(decoded.text)).toEqual({ note: marker });
        const rebound = await rawRequest(`${server.url}/decode`, { method: 'POST', headers: { host: 'evil.example', 'content-type': 'application/json' }, body });
        expect(rebound.status).toBe(403);
        expect(rebound.text).toContain('Request.HostNotAllowed');
      } finally {
        expect(await server.stop()).toBe(0);
      }
      expect(server.stdout()).toContain('--insecure-no-auth: /encode and /decode need no token');
    });

    test('with TC_CODEC_TOKENS it answers only with a token, and to the names in TC_CODEC_ALLOWED_HOSTS', async () => {
      const env = { TC_PAYLOAD_KEYRING: payloadKey, TC_CODEC_TOKENS: codecToken, TC_CODEC_ALLOWED_HOSTS: 'codec.example.test' };
      const server = await serve(['codec-server', '--port', '0'], env, READY);
      try {
        const body = await encryptedBody();
        const decode = (host: string, token?: string) =>
          rawRequest(`${server.url}/decode`, { method: 'POST', headers: { host, 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body });
        expect((await decode(new URL(server.url).host)).status).toBe(401);
        const viaProxy = await decode('codec.example.test', codecToken);
        expect(viaProxy.status).toBe(200);
        expect(noteOf(viaProxy.text)).toEqual({ note: marker });
        expect((await decode('evil.example', codecToken)).status).toBe(403);
      } finally {
        expect(await server.stop()).toBe(0);
      }
      expect(server.stdout()).not.toContain('insecure');
    });
  });

  // The CLI reads its configuration once, through loadConfig, when a command first needs it.
  describe('serve', () => {
    const apiToken = `cli-api-${randomBytes(8).toString('hex')}`;
    recordSecrets('the API token of cli.test.ts', [apiToken]);

    test('serve prints the API and the console, whose session links to TC_TEMPORAL_UI_URL in TEMPORAL_NAMESPACE', async () => {
      const env = { DATABASE_URL: db.url, TC_KEYRING: keyring, TC_API_TOKENS: apiToken, TC_TEMPORAL_UI_URL: 'http://127.0.0.1:8233/', TEMPORAL_NAMESPACE: 'billing', VAULT_ADDR: '' };
      const server = await serve(['serve', '--port', '0'], env, /console on (http:\/\/\S+)\/\n/);
      try {
        expect(server.stdout()).toMatch(/^management API on http:\/\/127\.0\.0\.1:\d+ \(store [^\n]*\)\nconsole on http:\/\/127\.0\.0\.1:\d+\/\n$/);
        const host = new URL(server.url).host;
        expect((await rawRequest(`${server.url}/`, { headers: { host } })).headers['content-security-policy']).toContain("script-src 'self'");
        const session = await rawRequest(`${server.url}/v1/session`, { method: 'POST', headers: { host, authorization: `Bearer ${apiToken}` } });
        recordResponse('connectors serve POST /v1/session', `${session.status} ${JSON.stringify(session.headers)} ${session.text}`);
        expect(session.status).toBe(200);
        expect(JSON.parse(session.text)).toMatchObject({ access: 'write', temporal_ui: { url: 'http://127.0.0.1:8233', namespace: 'billing' } });
      } finally {
        expect(await server.stop()).toBe(0);
      }
    });

    test('an unusable TC_TEMPORAL_UI_URL stops serve with one line naming it, never the password in it', async () => {
      const run = await cli(['serve', '--port', '0'], undefined, { TC_API_TOKENS: apiToken, TC_TEMPORAL_UI_URL: `https://admin:${SECRET}@ui.example.com` });
      expect(run.code).toBe(1);
      expect(run.stderr).toBe('connectors: TC_TEMPORAL_UI_URL must not hold a user name or password: give a base URL such as http://127.0.0.1:8233\n');
    });

    test('an API token shorter than 16 characters, or a TC_VAULT_PATHS reaching Vault\'s own mounts, stops serve with one line naming the variable', async () => {
      const shortToken = 'short-SECRET-15'; // 15 characters
      const tooShort = await cli(['serve', '--port', '0'], undefined, { TC_API_TOKENS: `${apiToken},${shortToken}` });
      expect(tooShort).toEqual({ code: 1, stdout: '', stderr: 'connectors: TC_API_TOKENS must each be at least 16 characters long: use long random tokens, e.g. from openssl rand -hex 24\n' });
      const vaultPaths = await cli(['serve', '--port', '0'], undefined, { TC_API_TOKENS: apiToken, TC_VAULT_PATHS: 'secret/,auth/token/' });
      expect(vaultPaths).toEqual({
        code: 1,
        stdout: '',
        stderr: 'connectors: TC_VAULT_PATHS: "auth/token/" reaches Vault\'s auth/ mount, which connectors may never read (it holds tokens and Vault\'s own settings)\n',
      });
    });
  });

  describe('configuration', () => {
    const vault = { VAULT_ADDR: 'http://127.0.0.1:1', VAULT_TOKEN: 'root' };

    test('a bad value stops a command with one line naming the variable', async () => {
      const run = await cli(['list'], undefined, { ...vault, TC_VAULT_CACHE_TTL_MS: 'a minute' });
      expect(run).toEqual({ code: 1, stdout: '', stderr: 'connectors: TC_VAULT_CACHE_TTL_MS must be a whole number of milliseconds (0 or more), not "a minute"\n' });
    });

    test('with a good value the same command runs on the configured store', async () => {
      const run = await cli(['list', '--json'], undefined, { ...vault, TC_VAULT_CACHE_TTL_MS: '60000' });
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
      expect(Array.isArray(JSON.parse(run.stdout))).toBe(true);
    });

    test('a command that needs no configuration runs whatever the environment holds', async () => {
      const run = await cli(['--help'], undefined, { TC_LOG_LEVEL: 'loud' });
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^Usage: connectors/);
    });
  });

  test('no CLI output ever contained a secret', () => {
    expect(outputs.length).toBeGreaterThan(30);
    for (const text of outputs) {
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain('tok-cli-NEW-0001');
    }
  });
});

