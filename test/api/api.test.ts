import { randomBytes } from 'node:crypto';
import { createConnectionRunner } from '../../core/runner';
import { createHostCheck, HttpError } from '../../api/http';
import { allowedHostsFromEnv, createManagementApi, startManagementApi, tokensFromEnv, type RunningManagementApi, type StartManagementApiOptions } from '../../api/server';
import { ConnectorRegistry } from '../../connectors/registry';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import { MASK } from '../../core/inputs';
import { Keyring } from '../../core/keyring';
import { ConnectorLimiter } from '../../core/limits';
import { ConnectorService } from '../../core/service';
import { ConnectorStore } from '../../core/store/connector-store';
import { PgDatabase } from '../../core/store/database';
import { startTestHttpServer, type RecordedRequest, type TestHttpServer } from '../fixtures/http-server';
import { yamlAliasBomb } from '../fixtures/yaml-bomb';
import { rawRequest } from '../support/raw-http';
import { recordResponse, recordSecrets } from '../support/leak-sweep';

// Response bodies are whatever JSON the API sends; the tests read fields loosely and check them.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const hex = () => randomBytes(6).toString('hex');
const RW_TOKEN = `rw-${hex()}${hex()}`;
const RO_TOKEN = `ro-${hex()}${hex()}`;
const TOKEN_1 = `tok-first-${hex()}`;
const TOKEN_2 = `tok-second-${hex()}`;
const TOKEN_STALE = `tok-stale-${hex()}`;
const TOKEN_IN_BAD_JSON = `tok-badjson-${hex()}`;
const TOKEN_READ_ONLY_WRITE = `tok-readonly-${hex()}`;
const OPENAI_KEY = `sk-apply-${hex()}`;
/** Every value no response may ever contain: connector secrets and the API tokens themselves. */
const SECRETS = [RW_TOKEN, RO_TOKEN, TOKEN_1, TOKEN_2, TOKEN_STALE, TOKEN_IN_BAD_JSON, TOKEN_READ_ONLY_WRITE, OPENAI_KEY];
recordSecrets('the tokens and secrets of api.test.ts', SECRETS);
const TRICKY = "x'); DROP TABLE tc_connector_versions; --";

const key1 = { id: 'k1', key: randomBytes(32) };
const key2 = { id: 'k2', key: randomBytes(32) };

describe('management API over HTTP', () => {
  let scratch: ScratchDatabase;
  let store: ConnectorStore;
  let service: ConnectorService;
  let fixture: TestHttpServer;
  let api: RunningManagementApi;
  /** Every response's status line, headers and body, for the final "no secret anywhere" check. */
  const responses: string[] = [];

  beforeAll(async () => {
    scratch = await createScratchDatabase('tc_api');
    store = new ConnectorStore(new PgDatabase({ connectionString: scratch.url }));
    await store.migrate();
    // Both keys, k1 primary: the key-rotation test rewrites everything under k2, and this service still reads it.
    service = new ConnectorService({ store, registry: new ConnectorRegistry(), keyring: new Keyring([key1, key2]) });
    fixture = await startTestHttpServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.path === '/openapi.json') res.end(JSON.stringify({ openapi: '3.1.0', info: { title: 'Billing', version: '1' }, paths: { '/invoices': {} } }));
      else res.end(JSON.stringify({ ok: true }));
    });
    api = await startManagementApi({
      service,
      runner: createConnectionRunner({ service }),
      tokens: { readWrite: [RW_TOKEN], readOnly: [RO_TOKEN] },
      port: 0,
    });
  });

  afterAll(async () => {
    await api?.close();
    await service?.close();
    await store?.close();
    await scratch?.drop();
    await fixture?.close();
  });

  interface CallOptions {
    /** Bearer token; `null` sends no Authorization header. Default: the read-write token. */
    token?: string | null;
    /** An object is sent as JSON; a string as it is, with the content type given in `headers`. */
    body?: unknown;
    headers?: Record<string, string>;
    /** Default: the main API. */
    base?: string;
  }

  async function call(method: string, path: string, options: CallOptions = {}) {
    const token = options.token === undefined ? RW_TOKEN : options.token;
    const headers: Record<string, string> = { ...(token === null ? {} : { authorization: `Bearer ${token}` }) };
    let body: string | undefined;
    if (typeof options.body === 'string') body = options.body;
    else if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] = 'application/json';
    }
    const res = await fetch(`${options.base ?? api.url}${path}`, { method, headers: { ...headers, ...options.headers }, body });
    const text = await res.text();
    responses.push(`${res.status} ${JSON.stringify([...res.headers])} ${text}`);
    recordResponse(`management API ${method} ${path}`, responses[responses.length - 1]);
    let json: Json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, json, text };
  }

  /** Starts an extra API for one test and closes it afterwards. */
  async function withApi<T>(options: Partial<StartManagementApiOptions>, fn: (base: string) => Promise<T>): Promise<T> {
    const extra = await startManagementApi({ service, tokens: { readWrite: [RW_TOKEN], readOnly: [RO_TOKEN] }, port: 0, ...options });
    try {
      return await fn(extra.url);
    } finally {
      await extra.close();
    }
  }

  const billing = (token: string, description: string) => ({
    type: 'REST',
    description,
    value: { base_url: fixture.url, auth: { type: 'bearer', token }, health_path: '/health', openapi_path: '/openapi.json' },
  });

  /** Runs a connection test through the API and returns the request the fixture received for it. */
  async function testThroughApi(name: string, base = api.url): Promise<{ result: Json; request: RecordedRequest }> {
    const before = fixture.requests.length;
    const res = await call('POST', `/v1/connectors/${name}/test`, { base });
    expect(res.status).toBe(200);
    expect(fixture.requests.length).toBe(before + 1);
    return { result: res.json, request: fixture.requests[before] };
  }

  const historyOf = async (name: string) => (await call('GET', `/v1/connectors/${name}/history`)).json.versions as Json[];

  describe('connectors: create, read, update, delete', () => {
    test('creating a connector answers 201 with an ETag, a Location and the token masked', async () => {
      const res = await call('POST', '/v1/connectors', { body: { name: 'billing', ...billing(TOKEN_1, 'Billing v1') } });
      expect(res.status).toBe(201);
      expect(res.headers.get('etag')).toBe('"1"');
      expect(res.headers.get('location')).toBe('/v1/connectors/billing');
      expect(res.json).toMatchObject({ name: 'billing', type: 'REST', version: 1, description: 'Billing v1', created_by: 'api' });
      expect(res.json.value.auth).toEqual({ type: 'bearer', token: MASK });
    });

    test('creating a connector that exists answers 409 with the current version and changes nothing', async () => {
      const res = await call('POST', '/v1/connectors', { body: { name: 'billing', ...billing(TOKEN_STALE, 'again') } });
      expect(res.status).toBe(409);
      expect(res.json.error).toMatchObject({ type: 'Connector.Conflict', current_version: 1 });
      expect(res.json.error.message).toMatch(/already exists.*If-Match: "1"/);
      expect((await historyOf('billing')).length).toBe(1);
    });

    test('every read shape shows the secret masked: single, by version, list and history', async () => {
      const single = await call('GET', '/v1/connectors/billing');
      expect(single.status).toBe(200);
      expect(single.headers.get('etag')).toBe('"1"');
      expect(single.json.value.auth.token).toBe(MASK);
      const byVersion = await call('GET', '/v1/connectors/billing?version=1');
      expect(byVersion.json).toMatchObject({ version: 1, value: { auth: { token: MASK } } });
      const list = await call('GET', '/v1/connectors');
      expect(list.json.connectors.find((c: Json) => c.name === 'billing').value.auth.token).toBe(MASK);
      const history = await call('GET', '/v1/connectors/billing/history');
      expect(history.json.versions[0]).toMatchObject({ version: 1, changed: ['created'], value: { auth: { token: MASK } } });
      for (const res of [single, byVersion, list, history]) expect(res.text).not.toContain(TOKEN_1);
    });

    test('an update with the current If-Match writes the next version; the name may come from the path', async () => {
      const current = await call('GET', '/v1/connectors/billing');
      // What a form does: take the masked view, change the description, send it back.
      const { name: _name, version: _v, created_at: _c, created_by: _b, ...edited } = current.json;
      const res = await call('PUT', '/v1/connectors/billing', {
        body: { ...edited, description: 'Billing v2' },
        headers: { 'if-match': current.headers.get('etag')! },
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('etag')).toBe('"2"');
      expect(res.json).toMatchObject({ name: 'billing', version: 2, description: 'Billing v2', value: { auth: { token: MASK } } });
      expect((await call('GET', '/v1/connectors/billing')).json.description).toBe('Billing v2');
    });

    test('writing the mask back keeps the stored secret: the connection test still sends the original token', async () => {
      const [latest] = await historyOf('billing');
      expect(latest.changed).toEqual(['description']);
      const { result, request } = await testThroughApi('billing');
      expect(result).toMatchObject({ ok: true, message: expect.stringContaining('HTTP 200') });
      expect(result.latency_ms).toEqual(expect.any(Number));
      expect(request.path).toBe('/health');
      expect(request.headers.authorization).toBe(`Bearer ${TOKEN_1}`);
    });

    test('a stale If-Match answers 409 with the current version and changes nothing', async () => {
      const res = await call('PUT', '/v1/connectors/billing', { body: billing(TOKEN_STALE, 'stale edit'), headers: { 'if-match': '"1"' } });
      expect(res.status).toBe(409);
      expect(res.json.error).toMatchObject({ type: 'Connector.Conflict', current_version: 2 });
      expect(res.json.error.message).toMatch(/version 2, not 1: nothing was changed/);
      expect((await call('GET', '/v1/connectors/billing')).json).toMatchObject({ version: 2, description: 'Billing v2' });
      expect((await historyOf('billing')).length).toBe(2);
      expect((await testThroughApi('billing')).request.headers.authorization).toBe(`Bearer ${TOKEN_1}`);
    });

    test('a PUT without If-Match answers 428 naming If-Match and changes nothing', async () => {
      const res = await call('PUT', '/v1/connectors/billing', { body: billing(TOKEN_STALE, 'no precondition') });
      expect(res.status).toBe(428);
      expect(res.json.error.type).toBe('Request.PreconditionRequired');
      expect(res.json.error.message).toContain('If-Match');
      expect((await historyOf('billing')).length).toBe(2);
    });

    test('a PUT whose body names another connector, or whose If-Match is not a version, is refused', async () => {
      const other = await call('PUT', '/v1/connectors/billing', { body: { name: 'other', ...billing(TOKEN_STALE, 'x') }, headers: { 'if-match': '"2"' } });
      expect(other.status).toBe(400);
      expect(other.json.error.issues).toEqual([{ path: 'name', message: expect.stringContaining('billing') }]);
      const weird = await call('PUT', '/v1/connectors/billing', { body: billing(TOKEN_STALE, 'x'), headers: { 'if-match': `"2"; ${TRICKY}` } });
      expect(weird.status).toBe(400);
      expect(weird.json.error.message).toContain('If-Match');
      expect((await historyOf('billing')).length).toBe(2);
    });

    test('history lists the names of changed fields and never their values', async () => {
      const res = await call('PUT', '/v1/connectors/billing', { body: billing(TOKEN_2, 'Billing v3'), headers: { 'if-match': '2' } });
      expect(res.status).toBe(200);
      expect(res.json.version).toBe(3);
      const history = await call('GET', '/v1/connectors/billing/history');
      expect(history.json.versions.map((v: Json) => v.version)).toEqual([3, 2, 1]);
      expect(history.json.versions[0].changed).toEqual(expect.arrayContaining(['description', 'value.auth.token']));
      expect(history.text).not.toContain(TOKEN_1);
      expect(history.text).not.toContain(TOKEN_2);
      expect((await testThroughApi('billing')).request.headers.authorization).toBe(`Bearer ${TOKEN_2}`);
    });

    test('reading by version returns that version without an ETag; a bad or missing version is refused', async () => {
      const v1 = await call('GET', '/v1/connectors/billing?version=1');
      expect(v1.json).toMatchObject({ version: 1, description: 'Billing v1' });
      expect(v1.headers.get('etag')).toBeNull();
      expect((await call('GET', '/v1/connectors/billing?version=99')).status).toBe(404);
      for (const bad of ['0', '-1', 'abc', '1.5', '99999999999', encodeURIComponent(TRICKY)]) {
        const res = await call('GET', `/v1/connectors/billing?version=${bad}`);
        expect(res.status).toBe(400);
        expect(res.json.error.issues).toEqual([{ path: 'version', message: expect.any(String) }]);
      }
    });

    test('rollback writes an old version as the newest, its secret included', async () => {
      const res = await call('POST', '/v1/connectors/billing/rollback', { body: { version: 1 } });
      expect(res.status).toBe(200);
      expect(res.headers.get('etag')).toBe('"4"');
      expect(res.json).toMatchObject({ version: 4, description: 'Billing v1', value: { auth: { token: MASK } } });
      expect((await testThroughApi('billing')).request.headers.authorization).toBe(`Bearer ${TOKEN_1}`);
      expect((await call('POST', '/v1/connectors/billing/rollback', { body: { version: 'one' } })).status).toBe(400);
      expect((await call('POST', '/v1/connectors/billing/rollback', { body: { version: 42 } })).status).toBe(404);
    });

    test('limits reset ends the back-off a 429 set; it says when there was none, and an unknown connector is 404', async () => {
      await service.apply({ name: 'limited', type: 'REST', value: { base_url: fixture.url }, limits: { max_concurrent: 2 } });
      // The back-off a 429 leaves, as a connector worker sets it.
      await new ConnectorLimiter(store.db).backOff('limited', 300_000);
      expect((await call('GET', '/v1/connectors/limited')).json.usage.backoff_until).toEqual(expect.any(String));
      const reset = await call('POST', '/v1/connectors/limited/limits/reset');
      expect([reset.status, reset.json]).toEqual([200, { name: 'limited', backoff_cleared: true }]);
      expect((await call('GET', '/v1/connectors/limited')).json.usage.backoff_until).toBeUndefined();
      expect((await call('POST', '/v1/connectors/limited/limits/reset')).json).toEqual({ name: 'limited', backoff_cleared: false });
      const missing = await call('POST', '/v1/connectors/nothing_here/limits/reset');
      expect([missing.status, missing.json.error.type]).toEqual([404, 'Connector.NotFound']);
    });

    test('delete checks a given If-Match, answers the tombstone, then the connector is 404 and its history stays', async () => {
      const stale = await call('DELETE', '/v1/connectors/billing', { headers: { 'if-match': '"3"' } });
      expect(stale.status).toBe(409);
      expect(stale.json.error.current_version).toBe(4);
      expect((await call('GET', '/v1/connectors/billing')).status).toBe(200);

      const res = await call('DELETE', '/v1/connectors/billing', { headers: { 'if-match': '"4"' } });
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ name: 'billing', version: 5, value: { auth: { token: MASK } } });
      const gone = await call('GET', '/v1/connectors/billing');
      expect(gone.status).toBe(404);
      expect(gone.json.error.type).toBe('Connector.NotFound');
      expect((await call('GET', '/v1/connectors')).json.connectors.map((c: Json) => c.name)).not.toContain('billing');
      const history = await historyOf('billing');
      expect(history.map((v) => [v.version, v.deleted])).toEqual([
        [5, true],
        [4, false],
        [3, false],
        [2, false],
        [1, false],
      ]);
      expect((await call('DELETE', '/v1/connectors/billing')).status).toBe(404);
      expect((await call('POST', '/v1/connectors/billing/test')).status).toBe(404);
    });
  });

  describe('connector types', () => {
    test('the type list carries each JSON Schema; one type is found case-insensitively, an unknown one is 404', async () => {
      const list = await call('GET', '/v1/types');
      expect(list.status).toBe(200);
      const rest = list.json.types.find((t: Json) => t.name === 'REST');
      expect(rest.json_schema.properties.url).toBeDefined();
      expect(rest.sensitive).toContain('auth.token');
      const openai = await call('GET', '/v1/types/openai');
      expect(openai.status).toBe(200);
      expect(openai.json).toMatchObject({ name: 'OPENAI', sensitive: expect.arrayContaining(['api_key']) });
      expect(openai.json.json_schema.properties.api_key).toBeDefined();
      const unknown = await call('GET', '/v1/types/NOPE');
      expect(unknown.status).toBe(404);
      expect(unknown.json.error.message).toContain('REST');
    });

    /**
     * Every property of a JSON Schema at every depth, by dotted path (`auth.token`, `vault_secrets[].path`),
     * with its description: what a form shows beside each field.
     */
    function fieldDescriptions(schema: Json, path = '', found: Record<string, unknown> = {}): Record<string, unknown> {
      if (!schema || typeof schema !== 'object') return found;
      for (const [key, property] of Object.entries((schema.properties ?? {}) as Record<string, Json>)) {
        const at = path ? `${path}.${key}` : key;
        // Variants of a union share the path; the first description found wins, a missing one is recorded.
        if (found[at] === undefined) found[at] = property.description;
        fieldDescriptions(property, at, found);
      }
      for (const variant of [...(schema.oneOf ?? []), ...(schema.anyOf ?? [])]) fieldDescriptions(variant, path, found);
      if (schema.items) fieldDescriptions(schema.items, `${path}[]`, found);
      return found;
    }

    const undescribed = (descriptions: Record<string, unknown>) =>
      Object.entries(descriptions)
        .filter(([, description]) => typeof description !== 'string' || description.length < 10)
        .map(([path]) => path);

    test("a REST type's JSON Schema describes every input, also each field of every auth variant", async () => {
      const rest = await call('GET', '/v1/types/REST');
      expect(rest.status).toBe(200);
      const schema = rest.json.json_schema;
      const descriptions = fieldDescriptions(schema);
      // The walk reaches the top level and inside each variant of the auth union.
      expect(Object.keys(descriptions)).toEqual(expect.arrayContaining(['url', 'base_url', 'timeout', 'auth', 'auth.type', 'auth.username', 'auth.password', 'auth.token', 'auth.header', 'auth.value']));
      expect(undescribed(descriptions)).toEqual([]);
      for (const variant of schema.properties.auth.oneOf) {
        for (const [key, property] of Object.entries(variant.properties as Record<string, Json>)) {
          expect([key, typeof property.description]).toEqual([key, 'string']);
        }
      }
      // Defaults and units stay in the text, for readers that show only the description.
      expect(schema.properties.method.description).toContain('Default `GET`');
      expect(schema.properties.timeout.description).toContain('Default 30 s');
      expect(schema.properties.auth.oneOf.find((v: Json) => v.properties.type.const === 'api_key').properties.header.description).toContain('X-API-Key');
      expect(schema.properties.base_url.examples).toEqual(expect.arrayContaining([expect.stringMatching(/^https:\/\//)]));
    });

    test("an OPENAI type's JSON Schema describes every input and the fields of its messages", async () => {
      const openai = await call('GET', '/v1/types/OPENAI');
      expect(openai.status).toBe(200);
      const descriptions = fieldDescriptions(openai.json.json_schema);
      expect(Object.keys(descriptions)).toEqual(expect.arrayContaining(['base_url', 'api_key', 'timeout', 'operation', 'messages', 'messages[].role', 'messages[].content', 'tools[].type', 'extra_body']));
      expect(undescribed(descriptions)).toEqual([]);
      expect(openai.json.json_schema.properties.timeout.description).toContain('Default 60 s');
      expect(openai.json.json_schema.properties.operation.description).toContain('Default `models.list`');
    });

    test("an AGENT type's JSON Schema describes every input", async () => {
      const agent = await call('GET', '/v1/types/AGENT');
      expect(agent.status).toBe(200);
      const descriptions = fieldDescriptions(agent.json.json_schema);
      expect(Object.keys(descriptions)).toEqual(expect.arrayContaining(['connector', 'model', 'system_prompt', 'temperature', 'max_tokens', 'tools', 'messages', 'messages[].role']));
      expect(undescribed(descriptions)).toEqual([]);
    });

    test('the types carry the JSON Schema of a connector document, every field described', async () => {
      const list = await call('GET', '/v1/types');
      const one = await call('GET', '/v1/types/rest');
      expect(one.json.definition_json_schema).toEqual(list.json.definition_json_schema);
      const schema = list.json.definition_json_schema;
      const descriptions = fieldDescriptions(schema);
      expect(Object.keys(descriptions)).toEqual(
        expect.arrayContaining([
          'name', 'type', 'description', 'value', 'vault_secrets', 'vault_secrets[].path', 'vault_secrets[].map', 'vault_secrets[].secret_keys',
          'locked', 'allowed_destinations', 'retry', 'retry.maximum_attempts', 'retry.initial_interval', 'retry.backoff_coefficient', 'retry.maximum_interval', 'timeout',
        ]),
      );
      expect(undescribed(descriptions)).toEqual([]);
      expect(schema.required).toEqual(['name', 'type']);
      // A type's own response keeps every field it had.
      expect(Object.keys(one.json)).toEqual(expect.arrayContaining(['name', 'description', 'fields', 'sensitive', 'json_schema']));
    });
  });

  describe('apply', () => {
    test('multi-document YAML writes every connector, secrets masked', async () => {
      const yaml = [
        'name: apply_rest',
        'type: REST',
        'description: from YAML',
        'value:',
        '  url: http://127.0.0.1:1/',
        '---',
        'name: apply_openai',
        'type: OPENAI',
        'value:',
        '  base_url: http://127.0.0.1:1/v1',
        `  api_key: ${OPENAI_KEY}`,
        '',
      ].join('\n');
      const res = await call('POST', '/v1/apply', { body: yaml, headers: { 'content-type': 'application/yaml' } });
      expect(res.status).toBe(200);
      expect(res.json.applied.map((v: Json) => [v.name, v.version])).toEqual([
        ['apply_rest', 1],
        ['apply_openai', 1],
      ]);
      expect(res.json.applied[1].value.api_key).toBe(MASK);
      expect((await call('GET', '/v1/connectors/apply_openai')).json.value.api_key).toBe(MASK);
    });

    test('a JSON array, and text/plain YAML, are applied too', async () => {
      const array = await call('POST', '/v1/apply', {
        body: [
          { name: 'apply_json_a', type: 'REST', value: { url: 'http://127.0.0.1:1/' } },
          { name: 'apply_json_b', type: 'REST', value: { url: 'http://127.0.0.1:2/' } },
        ],
      });
      expect(array.status).toBe(200);
      expect(array.json.applied).toHaveLength(2);
      const text = await call('POST', '/v1/apply', {
        body: 'name: apply_text\ntype: REST\nvalue: { url: "http://127.0.0.1:1/" }\n',
        headers: { 'content-type': 'text/plain' },
      });
      expect(text.status).toBe(200);
      expect(text.json.applied[0]).toMatchObject({ name: 'apply_text', version: 1 });
    });

    test('one document with an unknown field fails the whole apply, naming the document, and writes neither', async () => {
      const yaml = [
        'name: all_or_nothing_a',
        'type: REST',
        'value: { url: "http://127.0.0.1:1/" }',
        '---',
        'name: all_or_nothing_b',
        'type: REST',
        'colour: red',
        'value: { url: "http://127.0.0.1:1/" }',
      ].join('\n');
      const res = await call('POST', '/v1/apply', { body: yaml, headers: { 'content-type': 'text/yaml' } });
      expect(res.status).toBe(400);
      expect(res.json.error.type).toBe('Connector.InvalidInput');
      expect(res.json.error.issues[0].path).toMatch(/^documents\.1/);
      expect(res.json.error.message).toContain('colour');
      expect((await call('GET', '/v1/connectors/all_or_nothing_a')).status).toBe(404);
      expect((await call('GET', '/v1/connectors/all_or_nothing_b')).status).toBe(404);
    });

    test('a YAML syntax error names line and column and writes nothing', async () => {
      const yaml = ['name: syntax_a', 'type: REST', 'value: { url: "http://127.0.0.1:1/" }', '---', 'name: syntax_b', 'type: [REST', `value: { token: ${TOKEN_STALE} }`].join(
        '\n',
      );
      const res = await call('POST', '/v1/apply', { body: yaml, headers: { 'content-type': 'application/yaml' } });
      expect(res.status).toBe(400);
      expect(res.json.error.type).toBe('Connector.InvalidDocument');
      expect(res.json.error.message).toMatch(/^request body:\d+:\d+: /);
      expect((await call('GET', '/v1/connectors/syntax_a')).status).toBe(404);
      expect((await call('GET', '/v1/connectors/syntax_b')).status).toBe(404);
    });

    test('a YAML alias bomb answers 400 saying it expands too many aliases; nothing is stored and the API keeps answering', async () => {
      const before = (await call('GET', '/v1/connectors')).json;
      const versionRows = async () => (await store.db.query<{ n: string }>('SELECT count(*) AS n FROM tc_connector_versions'))[0].n;
      const rowsBefore = await versionRows();
      const good = 'name: bomb_neighbour\ntype: REST\nvalue: { url: "http://127.0.0.1:1/" }\n';
      const yaml = { 'content-type': 'application/yaml' };
      const attempts: Array<[string, string, CallOptions]> = [
        ['POST', '/v1/apply', { body: yamlAliasBomb('bomb'), headers: yaml }],
        ['POST', '/v1/apply', { body: `${good}---\n${yamlAliasBomb('bomb')}`, headers: { 'content-type': 'text/plain' } }],
        ['POST', '/v1/connectors', { body: yamlAliasBomb('bomb'), headers: yaml }],
        ['PUT', '/v1/connectors/apply_rest', { body: yamlAliasBomb('apply_rest'), headers: { ...yaml, 'if-match': '"1"' } }],
      ];
      for (const [method, path, options] of attempts) {
        const res = await call(method, path, options);
        expect([method, path, res.status]).toEqual([method, path, 400]);
        expect(res.json.error.type).toBe('Connector.InvalidDocument');
        expect(res.json.error.message).toMatch(/^request body:\d+:\d+: document \d expands too many YAML aliases \(more than 20 alias expansions\).*billion laughs/);
      }
      // Still answering, and nothing changed.
      expect((await call('GET', '/v1/types')).status).toBe(200);
      expect((await call('GET', '/v1/connectors')).json).toEqual(before);
      expect(await versionRows()).toBe(rowsBefore);
      expect((await call('GET', '/v1/connectors/bomb')).status).toBe(404);
      expect((await call('GET', '/v1/connectors/bomb_neighbour')).status).toBe(404);
      // A few aliases, as shared defaults use them, are fine.
      const shared = 'name: aliased\ntype: REST\ndescription: &d shared\nvalue: { url: "http://127.0.0.1:1/", headers: { x-a: *d, x-b: *d } }\n';
      const aliased = await call('POST', '/v1/connectors', { body: shared, headers: yaml });
      expect(aliased.status).toBe(201);
      expect(aliased.json.value.headers).toEqual({ 'x-a': 'shared', 'x-b': 'shared' });
    });

    test('an apply with no definitions is refused', async () => {
      const res = await call('POST', '/v1/apply', { body: '# nothing here\n', headers: { 'content-type': 'application/yaml' } });
      expect(res.status).toBe(400);
      expect(res.json.error.message).toContain('no connector definitions');
    });
  });

  describe('test and introspect', () => {
    beforeAll(async () => {
      const res = await call('POST', '/v1/connectors', {
        body: { name: 'catalog', ...billing(TOKEN_1, 'documented'), locked: ['base_url'] },
      });
      expect(res.status).toBe(201);
    });

    test('introspect answers the OpenAPI document, fetched with the stored token', async () => {
      const before = fixture.requests.length;
      const res = await call('POST', '/v1/connectors/catalog/introspect');
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ openapi_url: `${fixture.url}/openapi.json`, document: { info: { title: 'Billing' } } });
      expect(fixture.requests[before].headers.authorization).toBe(`Bearer ${TOKEN_1}`);
    });

    test('overrides are applied; a locked field is refused with 400 and an unknown connector is 404', async () => {
      const overridden = await call('POST', '/v1/connectors/catalog/test', { body: { overrides: { health_path: '/elsewhere' } } });
      expect(overridden.status).toBe(200);
      expect(fixture.requests.at(-1)!.path).toBe('/elsewhere');
      const locked = await call('POST', '/v1/connectors/catalog/test', { body: { overrides: { base_url: 'http://127.0.0.1:1/' } } });
      expect(locked.status).toBe(400);
      expect(locked.json.error).toMatchObject({ type: 'Connector.LockedField', message: expect.stringContaining('base_url') });
      const missing = await call('POST', '/v1/connectors/no_such_connector/introspect');
      expect(missing.status).toBe(404);
      expect(missing.json.error.type).toBe('Connector.NotFound');
      const badBody = await call('POST', '/v1/connectors/catalog/test', { body: { override: {} } });
      expect(badBody.status).toBe(400);
    });

    test('a read-only token may test and introspect a connector only as stored: any override is refused with 403 and no request leaves', async () => {
      const elsewhere = await startTestHttpServer();
      try {
        expect((await call('POST', '/v1/connectors', { body: { name: 'ro_probe', ...billing(TOKEN_1, 'read-only probe') } })).status).toBe(201);
        const ro = { token: RO_TOKEN };
        const refused: Array<[string, Record<string, unknown>]> = [
          ['test', { base_url: elsewhere.url }],
          ['test', { health_path: '/elsewhere' }],
          ['test', { auth: { type: 'bearer', token: 'mine' } }],
          ['introspect', { openapi_path: '/admin/export' }],
          ['introspect', { base_url: elsewhere.url }],
        ];
        const fixtureBefore = fixture.requests.length;
        for (const [action, overrides] of refused) {
          const res = await call('POST', `/v1/connectors/ro_probe/${action}`, { ...ro, body: { overrides } });
          expect([action, overrides, res.status]).toEqual([action, overrides, 403]);
          expect(res.json.error).toMatchObject({ type: 'Request.Forbidden', message: expect.stringContaining('read-only tokens cannot override inputs') });
        }
        expect(fixture.requests.length).toBe(fixtureBefore);
        expect(elsewhere.requests).toHaveLength(0);

        // As stored (no body, or no overrides), a read-only token still tests and introspects.
        for (const body of [undefined, {}, { overrides: {} }]) {
          const tested = await call('POST', '/v1/connectors/ro_probe/test', { ...ro, body });
          expect(tested.status).toBe(200);
          expect(tested.json.ok).toBe(true);
        }
        expect((await call('POST', '/v1/connectors/ro_probe/introspect', ro)).status).toBe(200);
        expect(fixture.requests.slice(fixtureBefore).map((r) => r.path)).toEqual(['/health', '/health', '/health', '/openapi.json']);

        // A read-write token may override, and the elsewhere server does count what reaches it.
        const overridden = await call('POST', '/v1/connectors/ro_probe/test', { body: { overrides: { health_path: '/rw-elsewhere' } } });
        expect(overridden.status).toBe(200);
        expect(fixture.requests.at(-1)!.path).toBe('/rw-elsewhere');
        // Sending the stored token to another origin is refused even to a read-write token; bringing its own is not.
        const redirected = await call('POST', '/v1/connectors/ro_probe/test', { body: { overrides: { base_url: elsewhere.url } } });
        expect(redirected.status).toBe(403);
        expect(redirected.json.error).toMatchObject({ type: 'Connector.DestinationNotAllowed', message: expect.stringContaining('auth.token') });
        expect(elsewhere.requests).toHaveLength(0);
        const ownToken = { base_url: elsewhere.url, auth: { type: 'bearer', token: 'the-callers-own-token' } };
        expect((await call('POST', '/v1/connectors/ro_probe/test', { body: { overrides: ownToken } })).status).toBe(200);
        expect(elsewhere.requests.map((r) => [r.path, r.headers.authorization])).toEqual([['/health', 'Bearer the-callers-own-token']]);
      } finally {
        await elsewhere.close();
      }
    });

    test('introspecting a connector without openapi_path answers 400 naming the field', async () => {
      await call('POST', '/v1/connectors', { body: { name: 'no_openapi', type: 'REST', value: { base_url: fixture.url } } });
      const res = await call('POST', '/v1/connectors/no_openapi/introspect');
      expect(res.status).toBe(400);
      expect(res.json.error).toMatchObject({ type: 'Connector.InvalidInput', message: expect.stringContaining('openapi_path') });
    });

    test('without a runner, test and introspect answer 501 with a clear message', async () => {
      await withApi({}, async (base) => {
        for (const action of ['test', 'introspect']) {
          const res = await call('POST', `/v1/connectors/catalog/${action}`, { base });
          expect(res.status).toBe(501);
          expect(res.json.error.message).toContain('runner');
        }
      });
    });
  });

  describe('key rotation', () => {
    test('rotate-key reports how many values it rewrote, and connectors stay usable by the runner', async () => {
      const created = await call('POST', '/v1/connectors', { body: { name: 'rotated', ...billing(TOKEN_2, 'before rotation') } });
      expect(created.status).toBe(201);
      // A service whose keyring has a new primary key: what an operator configures before rotating.
      const rotatingService = new ConnectorService({ store, registry: service.registry, keyring: new Keyring([key2, key1]) });
      await withApi({ service: rotatingService, runner: createConnectionRunner({ service: rotatingService }) }, async (base) => {
        const res = await call('POST', '/v1/rotate-key', { base });
        expect(res.status).toBe(200);
        expect(res.json.rewritten).toBeGreaterThanOrEqual(8);
        expect((await call('POST', '/v1/rotate-key', { base })).json).toEqual({ rewritten: 0 });
        expect((await testThroughApi('rotated', base)).request.headers.authorization).toBe(`Bearer ${TOKEN_2}`);
      });
      const rows = JSON.stringify(await store.db.query('SELECT value FROM tc_connector_versions'));
      expect(rows).not.toContain('tcenc:v1:k1:');
      expect((await testThroughApi('rotated')).request.headers.authorization).toBe(`Bearer ${TOKEN_2}`);
    });
  });

  describe('security', () => {
    test('no token, a wrong token or another scheme answers 401 with WWW-Authenticate: Bearer', async () => {
      const none = await call('GET', '/v1/connectors', { token: null });
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toMatch(/^Bearer\b/);
      expect(none.json.error.type).toBe('Request.Unauthorized');
      const wrong = await call('GET', '/v1/connectors', { token: `${RW_TOKEN}x` });
      expect(wrong.status).toBe(401);
      expect(wrong.headers.get('www-authenticate')).toMatch(/^Bearer .*invalid_token/);
      const basic = await call('GET', '/v1/connectors', { token: null, headers: { authorization: `Basic ${Buffer.from(`u:${RW_TOKEN}`).toString('base64')}` } });
      expect(basic.status).toBe(401);
      // Routes are not revealed to unauthenticated callers, and nothing is written.
      expect((await call('GET', '/v1/no-such-route', { token: null })).status).toBe(401);
      expect((await call('POST', '/v1/connectors', { token: 'nope', body: { name: 'unauthorised', type: 'REST' } })).status).toBe(401);
      expect((await call('GET', '/v1/connectors/unauthorised')).status).toBe(404);
    });

    test('a read-only token may read and test, and every other write answers 403 and stores nothing', async () => {
      const ro = { token: RO_TOKEN };
      expect((await call('GET', '/v1/connectors', ro)).status).toBe(200);
      expect((await call('GET', '/v1/connectors/catalog', ro)).status).toBe(200);
      expect((await call('GET', '/v1/connectors/catalog/history', ro)).status).toBe(200);
      expect((await call('GET', '/v1/types', ro)).status).toBe(200);
      const tested = await call('POST', '/v1/connectors/catalog/test', ro);
      expect(tested.status).toBe(200);
      expect(tested.json.ok).toBe(true);
      expect((await call('POST', '/v1/connectors/catalog/introspect', ro)).status).toBe(200);

      const definition = { name: 'catalog', ...billing(TOKEN_READ_ONLY_WRITE, 'read-only write') };
      const writes: Array<[string, string, CallOptions]> = [
        ['POST', '/v1/connectors', { body: { ...definition, name: 'ro_created' } }],
        ['PUT', '/v1/connectors/catalog', { body: definition, headers: { 'if-match': '"1"' } }],
        ['DELETE', '/v1/connectors/catalog', {}],
        ['POST', '/v1/connectors/catalog/rollback', { body: { version: 1 } }],
        ['POST', '/v1/connectors/catalog/limits/reset', {}],
        ['POST', '/v1/apply', { body: [{ ...definition, name: 'ro_applied' }] }],
        ['POST', '/v1/rotate-key', {}],
      ];
      for (const [method, path, options] of writes) {
        const res = await call(method, path, { ...options, ...ro });
        expect([method, path, res.status]).toEqual([method, path, 403]);
        expect(res.json.error.type).toBe('Request.Forbidden');
      }
      expect((await historyOf('catalog')).length).toBe(1);
      expect((await call('GET', '/v1/connectors/ro_created')).status).toBe(404);
      expect((await call('GET', '/v1/connectors/ro_applied')).status).toBe(404);
    });

    test('a request whose Host names another site is refused with 403 before anything else (DNS rebinding); loopback names and allowed hosts are served', async () => {
      const send = async (base: string, host: string, method = 'GET', path = '/v1/connectors', body?: string) => {
        const res = await rawRequest(`${base}${path}`, {
          method,
          headers: { host, authorization: `Bearer ${RW_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
          body,
        });
        responses.push(`${res.status} ${JSON.stringify(res.headers)} ${res.text}`);
        recordResponse(`management API ${method} ${path} (Host ${host})`, responses[responses.length - 1]);
        return res;
      };
      const port = new URL(api.url).port;
      for (const name of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]) {
        const served = await send(api.url, name);
        expect([name, served.status]).toEqual([name, 200]);
        expect(served.text).toContain('"connectors":[');
      }
      for (const name of [`evil.example:${port}`, 'evil.example', `localhost.evil.example:${port}`]) {
        const refused = await send(api.url, name);
        expect([name, refused.status]).toEqual([name, 403]);
        expect(JSON.parse(refused.text).error).toMatchObject({ type: 'Request.HostNotAllowed', message: expect.stringMatching(/TC_API_ALLOWED_HOSTS.*DNS-rebinding/) });
        expect(refused.text).not.toContain('connectors":');
      }
      const write = await send(api.url, 'evil.example', 'POST', '/v1/connectors', JSON.stringify({ name: 'rebound', type: 'REST', value: { url: 'http://127.0.0.1:1/' } }));
      expect(write.status).toBe(403);
      expect((await call('GET', '/v1/connectors/rebound')).status).toBe(404);
      // Refused before authentication: a page of another site learns nothing about tokens either.
      expect((await rawRequest(`${api.url}/v1/connectors`, { headers: { host: 'evil.example' } })).status).toBe(403);

      await withApi({ allowedHosts: ['connectors.example.test'] }, async (base) => {
        expect((await send(base, 'connectors.example.test')).status).toBe(200);
        expect((await send(base, 'evil.example')).status).toBe(403);
      });
      expect((await send(api.url, 'connectors.example.test')).status).toBe(403);
    });

    test('the Host check accepts the address a request arrived on, so a server on all interfaces answers by its own IP addresses', () => {
      const check = createHostCheck({ allowedHosts: ['proxy.example.test'], setting: 'TC_API_ALLOWED_HOSTS', server: 'this API' });
      const ok = (host: string | undefined, localAddress?: string) => check({ headers: host === undefined ? {} : { host }, socket: { localAddress } });
      expect(() => ok('192.0.2.7:8080', '::ffff:192.0.2.7')).not.toThrow();
      expect(() => ok('[fd00::2]:8080', 'fd00::2')).not.toThrow();
      expect(() => ok('proxy.example.test', '192.0.2.7')).not.toThrow();
      expect(() => ok('192.0.2.8:8080', '192.0.2.7')).toThrow(HttpError);
      expect(() => ok('evil.example', '192.0.2.7')).toThrow(/^the Host header "evil.example" does not name this API/);
      expect(() => ok(undefined, '127.0.0.1')).toThrow(/^no Host header does not name this API/);
    });

    test('a body over the limit answers 413 and stores nothing', async () => {
      await withApi({ bodyLimitBytes: 2048 }, async (base) => {
        const big = await call('POST', '/v1/connectors', { base, body: { name: 'too_big', type: 'REST', description: 'x'.repeat(4096), value: { url: 'http://h/' } } });
        expect(big.status).toBe(413);
        expect(big.json.error.type).toBe('Request.TooLarge');
        const yaml = `name: too_big\ntype: REST\ndescription: ${'y'.repeat(4096)}\n`;
        expect((await call('POST', '/v1/apply', { base, body: yaml, headers: { 'content-type': 'application/yaml' } })).status).toBe(413);
        const small = await call('POST', '/v1/connectors', { base, body: { name: 'small_enough', type: 'REST', value: { url: 'http://h/' } } });
        expect(small.status).toBe(201);
      });
      expect((await call('GET', '/v1/connectors/too_big')).status).toBe(404);
    });

    test('malformed JSON answers 400 without echoing the body; an unsupported content type answers 415', async () => {
      const truncated = `{"name": "bad_json", "type": "REST", "value": {"auth": {"type": "bearer", "token": "${TOKEN_IN_BAD_JSON}"`;
      const res = await call('POST', '/v1/connectors', { body: truncated, headers: { 'content-type': 'application/json' } });
      expect(res.status).toBe(400);
      expect(res.json.error).toEqual({ type: 'Request.InvalidJson', message: expect.stringContaining('not valid JSON') });
      expect(res.text).not.toContain(TOKEN_IN_BAD_JSON);
      expect(res.text).not.toMatch(/at .*\.(js|ts):\d+/);
      const xml = await call('POST', '/v1/connectors', { body: '<connector name="bad_json"/>', headers: { 'content-type': 'application/xml' } });
      expect(xml.status).toBe(415);
      expect(xml.json.error.type).toBe('Request.UnsupportedMediaType');
      expect((await call('GET', '/v1/connectors/bad_json')).status).toBe(404);
    });

    test('a name with path characters, dots, spaces or upper case answers 400 naming name, and nothing is stored', async () => {
      const before = (await call('GET', '/v1/connectors')).json.connectors.map((c: Json) => c.name);
      const names = ['bad%2Fname', '..%2F..', '..%2F..%2Fetc', '..%2F..%2Fetc%2Fpasswd', 'Upper', 'with%20space', '%2E%2E%2F', 'nul%00byte', encodeURIComponent(TRICKY)];
      for (const name of names) {
        for (const [method, path, options] of [
          ['GET', `/v1/connectors/${name}`, {}],
          ['GET', `/v1/connectors/${name}/history`, {}],
          ['PUT', `/v1/connectors/${name}`, { body: { type: 'REST', value: { url: 'http://h/' } }, headers: { 'if-match': '"0"' } }],
          ['DELETE', `/v1/connectors/${name}`, {}],
          ['POST', `/v1/connectors/${name}/test`, {}],
        ] as Array<[string, string, CallOptions]>) {
          const res = await call(method, path, options);
          expect([method, path, res.status]).toEqual([method, path, 400]);
          expect(res.json.error.issues).toEqual([{ path: 'name', message: expect.any(String) }]);
        }
      }
      const after = (await call('GET', '/v1/connectors')).json.connectors.map((c: Json) => c.name);
      expect(after).toEqual(before);
    });

    test('SQL-significant characters in description and header values are stored and returned verbatim', async () => {
      const res = await call('POST', '/v1/connectors', {
        body: { name: 'tricky_sql', type: 'REST', description: TRICKY, value: { url: 'http://127.0.0.1:1/', headers: { 'x-note': TRICKY } } },
      });
      expect(res.status).toBe(201);
      expect(res.json).toMatchObject({ description: TRICKY, value: { headers: { 'x-note': TRICKY } } });
      const read = await call('GET', '/v1/connectors/tricky_sql');
      expect(read.json).toMatchObject({ description: TRICKY, value: { headers: { 'x-note': TRICKY } } });
      const [{ n }] = await store.db.query<{ n: number }>("SELECT count(*)::int AS n FROM tc_connector_versions WHERE name = 'tricky_sql'");
      expect(n).toBe(1);
      expect((await call('GET', '/v1/connectors')).status).toBe(200);
    });
  });

  describe('errors from the store and the keyring', () => {
    test('a keyring missing for a sensitive value answers 500 naming the setting, and stores nothing', async () => {
      const keyless = new ConnectorService({ store, registry: service.registry });
      await withApi({ service: keyless }, async (base) => {
        const res = await call('POST', '/v1/connectors', { base, body: { name: 'keyless', ...billing(TOKEN_STALE, 'no key') } });
        expect(res.status).toBe(500);
        expect(res.json.error).toEqual({ type: 'Connector.Keyring', message: expect.stringMatching(/value\.auth\.token.*TC_KEYRING/) });
      });
      expect((await call('GET', '/v1/connectors/keyless')).status).toBe(404);
    });

    test('an unreachable store answers 503 without its password', async () => {
      const unreachable = new ConnectorStore(new PgDatabase({ connectionString: 'postgres://u:store-pw-9911@127.0.0.1:9/db', connectionTimeoutMillis: 2_000 }));
      try {
        await withApi({ service: new ConnectorService({ store: unreachable, registry: service.registry }) }, async (base) => {
          const res = await call('GET', '/v1/connectors', { base });
          expect(res.status).toBe(503);
          expect(res.json.error.type).toBe('Connector.Store.Unavailable');
          expect(res.text).not.toContain('store-pw-9911');
        });
      } finally {
        await unreachable.close();
      }
    });

    test('an unexpected error answers a bare 500 without the driver message', async () => {
      // A database that was never migrated: the driver fails with "relation ... does not exist".
      const empty = await createScratchDatabase('tc_api_empty');
      const unmigrated = new ConnectorStore(new PgDatabase({ connectionString: empty.url }));
      try {
        await withApi({ service: new ConnectorService({ store: unmigrated, registry: service.registry }) }, async (base) => {
          const res = await call('GET', '/v1/connectors', { base });
          expect(res.status).toBe(500);
          expect(res.json).toEqual({ error: { type: 'Internal', message: 'internal error' } });
        });
      } finally {
        await unmigrated.close();
        await empty.drop();
      }
    });
  });

  describe('configuration', () => {
    test('tokensFromEnv reads both variables, comma-separated, and refuses none at all naming them', () => {
      const [a1, b2, r1] = ['a1', 'b2', 'r1'].map((prefix) => `${prefix}-0123456789abcdef`);
      expect(tokensFromEnv({ TC_API_TOKENS: ` ${a1} , ${b2},`, TC_API_READ_TOKENS: r1 })).toEqual({ readWrite: [a1, b2], readOnly: [r1] });
      expect(tokensFromEnv({ TC_API_READ_TOKENS: r1 })).toEqual({ readWrite: [], readOnly: [r1] });
      expect(() => tokensFromEnv({})).toThrow(/TC_API_TOKENS.*TC_API_READ_TOKENS/);
      expect(() => tokensFromEnv({ TC_API_TOKENS: ' , ' })).toThrow(/TC_API_TOKENS/);
    });

    test('TC_API_ALLOWED_HOSTS is read comma-separated, and a value with a scheme or a port is refused naming the variable', () => {
      expect(allowedHostsFromEnv({})).toEqual([]);
      expect(allowedHostsFromEnv({ TC_API_ALLOWED_HOSTS: ' Connectors.Example.com ,10.0.0.5' })).toEqual(['connectors.example.com', '10.0.0.5']);
      expect(() => allowedHostsFromEnv({ TC_API_ALLOWED_HOSTS: 'http://connectors.example.com' })).toThrow(/^TC_API_ALLOWED_HOSTS: .* is not a host name/);
      expect(() => allowedHostsFromEnv({ TC_API_ALLOWED_HOSTS: 'connectors.example.com:8080' })).toThrow(/^TC_API_ALLOWED_HOSTS/);
      expect(() => createManagementApi({ service, tokens: { readWrite: [RW_TOKEN], readOnly: [] }, allowedHosts: ['a/b'] })).toThrow(/allowedHosts/);
    });

    test('the API refuses to be built without tokens', () => {
      expect(() => createManagementApi({ service, tokens: { readWrite: [], readOnly: [] } })).toThrow(/TC_API_TOKENS/);
      expect(() => createManagementApi({ service, tokens: { readWrite: ['has space'], readOnly: [] } })).toThrow(/whitespace/);
      // Nor with a short one, given in code rather than in TC_API_TOKENS.
      expect(() => createManagementApi({ service, tokens: { readWrite: [RW_TOKEN], readOnly: ['fifteen-chars!!'] } })).toThrow(
        /^the management API tokens must each be at least 16 characters long/,
      );
    });
  });

  // Last, so it sees every response of the suite.
  test('no response in the whole suite contained a secret or an API token', () => {
    expect(responses.length).toBeGreaterThan(100);
    const all = responses.join('\n');
    for (const secret of SECRETS) expect(all).not.toContain(secret);
  });
});
