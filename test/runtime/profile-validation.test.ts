import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { startManagementApi, type RunningManagementApi } from '../../api/server';
import { ConnectorRegistry } from '../../connectors/registry';
import { MASK } from '../../core/inputs';
import { Keyring } from '../../core/keyring';
import { ConnectorNotFoundError, ConnectorService, ConnectorValidationError } from '../../core/service';
import { ConnectorStore } from '../../core/store/connector-store';
import { PgDatabase } from '../../core/store/database';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';

const hex = () => randomBytes(6).toString('hex');
/** Values that must never appear in a message or, when refused, in a row. */
const TYPO_TOKEN = `tok-typo-${hex()}`;
const TYPO_KEY = `sk-typo-${hex()}`;
const TYPO_PASSWORD = `pw-typo-${hex()}`;
const API_TOKEN = `rw-${hex()}${hex()}`;

// Saving a profile validates its whole value against the type's schema, on the PostgreSQL server, through
// ConnectorService and through the HTTP API.
describe('profile validation on save', () => {
  let scratch: ScratchDatabase;
  let admin: Client;
  let store: ConnectorStore;
  let service: ConnectorService;
  let api: RunningManagementApi;

  beforeAll(async () => {
    scratch = await createScratchDatabase('tc_validate');
    admin = new Client({ connectionString: scratch.url });
    await admin.connect();
    store = new ConnectorStore(new PgDatabase({ connectionString: scratch.url }));
    await store.migrate();
    service = new ConnectorService({ store, registry: new ConnectorRegistry(), keyring: new Keyring([{ id: 'k1', key: randomBytes(32) }]) });
    api = await startManagementApi({ service, tokens: { readWrite: [API_TOKEN], readOnly: [] }, port: 0 });
  });
  afterAll(async () => {
    await api?.close();
    await service?.close();
    await store?.close();
    await admin?.end();
    await scratch?.drop();
  });

  /** Rows whose stored JSON holds `text` anywhere. */
  async function rowsHolding(text: string): Promise<number> {
    const { rows } = await admin.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM tc_connector_versions WHERE strpos(value::text || description || name, $1) > 0",
      [text],
    );
    return rows[0].n;
  }

  async function refused(definition: unknown): Promise<ConnectorValidationError> {
    const err = await service.apply(definition).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectorValidationError);
    return err as ConnectorValidationError;
  }

  const rest = (value: Record<string, unknown>) => ({ name: 'rest_profile', type: 'REST', value: { base_url: 'http://127.0.0.1:1/api', ...value } });
  const openai = (value: Record<string, unknown>) => ({ name: 'openai_profile', type: 'OPENAI', value: { api_key: 'sk-test-000', ...value } });
  const postgres = (value: Record<string, unknown>) => ({
    name: 'postgres_profile',
    type: 'POSTGRES',
    value: { host: '127.0.0.1', database: 'app', user: 'app', ...value },
  });

  test('a misspelt field at any depth is refused by name, its value neither shown nor stored', async () => {
    // A stored marker, so the row search below is shown to find what is there.
    const marker = `marker-${hex()}`;
    await service.apply(rest({ headers: { 'x-marker': marker } }));
    expect(await rowsHolding(marker)).toBe(1);

    const cases: Array<[unknown, string, string]> = [
      [rest({ auth: { type: 'bearer', tokn: TYPO_TOKEN } }), 'value.auth.tokn: is not an input of type REST', TYPO_TOKEN],
      [openai({ api_kee: TYPO_KEY }), 'value.api_kee: is not an input of type OPENAI', TYPO_KEY],
      [postgres({ tls: { reject_unauthorized: false, pasword: TYPO_PASSWORD } }), 'value.tls.pasword: is not an input of type POSTGRES', TYPO_PASSWORD],
      [
        postgres({ operation: 'transaction', statements: [{ sql: 'SELECT $1', parms: [TYPO_PASSWORD] }] }),
        'value.statements.0.parms: is not an input of type POSTGRES',
        TYPO_PASSWORD,
      ],
    ];
    for (const [definition, message, secret] of cases) {
      const err = await refused({ ...(definition as object), name: 'misspelt' });
      expect(err.message).toContain(message);
      expect(err.message).not.toContain(secret);
      expect(await rowsHolding(secret)).toBe(0);
    }
    await expect(service.get('misspelt')).rejects.toBeInstanceOf(ConnectorNotFoundError);
    expect(await rowsHolding('misspelt')).toBe(0);
    // The profile saved before is untouched.
    expect((await service.get('rest_profile')).version).toBe(1);
  });

  test('a value of the wrong type or form is refused at any depth, naming the field', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [rest({ headers: { 'x-count': 3 } }), /value\.headers\.x-count: .*expected string/],
      [rest({ timeout: true }), /value\.timeout: expected number or string/],
      [rest({ auth: { type: 'bearer', token: 42 } }), /value\.auth\.token: .*expected string/],
      [rest({ auth: { type: 'oauth' } }), /value\.auth\.type: /],
      [rest({ base_url: 'ftp://files.example.com/' }), /value\.base_url: must be an absolute http/],
      [openai({ temperature: 'warm' }), /value\.temperature: .*expected number/],
      [openai({ timeout: 'soon' }), /value\.timeout: must be milliseconds or a duration/],
      [openai({ stream: true }), /value\.stream: streaming is not supported/],
      [postgres({ port: '5432' }), /value\.port: .*expected number/],
      [postgres({ tls: 'yes' }), /value\.tls: expected boolean or object/],
      [postgres({ statements: [{ sql: '' }] }), /value\.statements\.0\.sql: /],
    ];
    for (const [definition, message] of cases) {
      const err = await refused({ ...(definition as object), name: 'wrong_type' });
      expect(err.message).toMatch(message);
      expect(err.message).not.toMatch(/\n\s+at /);
    }
    expect(await rowsHolding('wrong_type')).toBe(0);
  });

  test('a duration under 1 ms is refused wherever durations are taken, naming the field', async () => {
    // It would round to 0 ms: a timeout that fires at once (or none), a rate limit switched off.
    // The same forms of 1 ms and more are accepted, so the refusal is about the size, not the form.
    const cases: Array<[(duration: unknown) => Record<string, unknown>, string]> = [
      [(d) => rest({ timeout: d }), 'value.timeout'],
      [(d) => openai({ timeout: d }), 'value.timeout'],
      [(d) => postgres({ statement_timeout: d }), 'value.statement_timeout'],
      [(d) => ({ ...rest({}), timeout: d }), 'timeout'],
      [(d) => ({ ...rest({}), retry: { initial_interval: d } }), 'retry.initial_interval'],
      [(d) => ({ ...rest({}), limits: { rate: { calls: 1, per: d } } }), 'limits.rate.per'],
      [(d) => ({ ...rest({}), limits: { max_wait: d } }), 'limits.max_wait'],
    ];
    for (const [definition, field] of cases) {
      for (const tooShort of ['0.4ms', 0.4, '0s', 0]) {
        const err = await refused({ ...definition(tooShort), name: 'sub_millisecond' });
        expect(err.issues).toContainEqual({ path: field, message: expect.stringMatching(/^must be at least 1 ms/) });
      }
      // And longer than a timer holds (Node sets it to 1 ms, with a warning): refused as well. A
      // limit's own maximum (1 h) may speak first; a duration message comes either way.
      for (const tooLong of ['600h', 2_147_483_648]) {
        const err = await refused({ ...definition(tooLong), name: 'beyond_timers' });
        expect(err.issues).toContainEqual({ path: field, message: expect.stringMatching(/^must be at most/) });
      }
      expect((await service.apply({ ...definition('1ms'), name: 'one_millisecond' })).name).toBe('one_millisecond');
      expect((await service.apply({ ...definition(1), name: 'one_millisecond' })).name).toBe('one_millisecond');
    }
    expect(await rowsHolding('sub_millisecond')).toBe(0);
    expect(await rowsHolding('beyond_timers')).toBe(0);
  });

  test('a profile may leave out what Vault secrets or workflow overrides supply', async () => {
    // Required inputs missing, and rules over several inputs that only the merged inputs can satisfy.
    const partial = [
      { name: 'rest_no_token', type: 'REST', value: { base_url: 'http://127.0.0.1:1/api', auth: { type: 'bearer' } } },
      { name: 'rest_no_url', type: 'REST', value: { method: 'POST', headers: { accept: 'application/json' } } },
      { name: 'openai_no_key', type: 'OPENAI', value: { default_model: 'gpt-4o-mini', operation: 'embeddings' } },
      { name: 'postgres_no_login', type: 'POSTGRES', value: { host: 'db.internal', port: 5433, tls: { reject_unauthorized: true } } },
    ];
    for (const definition of partial) expect((await service.apply(definition)).version).toBe(1);
  });

  test('masked sensitive values written back pass validation and keep the stored secrets', async () => {
    const secrets = { rest: `tok-kept-${hex()}`, openai: `sk-kept-${hex()}`, postgres: `pw-kept-${hex()}` };
    const saved = [
      await service.apply({ ...rest({ auth: { type: 'bearer', token: secrets.rest } }), name: 'masked_rest' }),
      await service.apply({ ...openai({ api_key: secrets.openai }), name: 'masked_openai' }),
      await service.apply({ ...postgres({ password: secrets.postgres }), name: 'masked_postgres' }),
    ];
    for (const view of saved) {
      expect(JSON.stringify(view.value)).toContain(MASK);
      const again = await service.apply({ name: view.name, type: view.type, description: 'masked write-back', value: view.value });
      expect(again.version).toBe(2);
    }
    expect((await service.load('masked_rest'))!.value).toMatchObject({ auth: { token: secrets.rest } });
    expect((await service.load('masked_openai'))!.value).toMatchObject({ api_key: secrets.openai });
    expect((await service.load('masked_postgres'))!.value).toMatchObject({ password: secrets.postgres });
  });

  test('the HTTP API refuses a misspelt nested field with 400 naming it, and stores nothing', async () => {
    const res = await fetch(`${api.url}/v1/connectors`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...rest({ auth: { type: 'bearer', tokn: TYPO_TOKEN } }), name: 'api_misspelt' }),
    });
    const text = await res.text();
    expect(res.status).toBe(400);
    const body = JSON.parse(text) as { error: { type: string; issues: Array<{ path: string; message: string }> } };
    expect(body.error.type).toBe('Connector.InvalidInput');
    expect(body.error.issues).toContainEqual({ path: 'value.auth.tokn', message: 'is not an input of type REST' });
    expect(text).not.toContain(TYPO_TOKEN);
    expect(await rowsHolding('api_misspelt')).toBe(0);
    expect(await rowsHolding(TYPO_TOKEN)).toBe(0);
  });
});
