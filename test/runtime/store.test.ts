import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { ConnectorRegistry } from '../../connectors/registry';
import { MASK } from '../../core/inputs';
import { Keyring, KeyringError } from '../../core/keyring';
import { ConnectorNotFoundError, ConnectorService, ConnectorValidationError } from '../../core/service';
import { ConnectorStore, StoreConflictError, StoreUnavailableError } from '../../core/store/connector-store';
import { PgDatabase, PgliteDatabase, type SqlDatabase } from '../../core/store/database';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';

const newKey = (id: string) => ({ id, key: randomBytes(32) });

// The same behaviour must hold on the PostgreSQL server and on the embedded default.
describe.each([
  ['PostgreSQL server', 'pg'],
  ['embedded PGlite', 'pglite'],
] as const)('connector store on %s', (_label, kind) => {
  let scratch: ScratchDatabase | undefined;
  let db: SqlDatabase;
  let store: ConnectorStore;
  let service: ConnectorService;
  const key1 = newKey('k1');

  beforeAll(async () => {
    if (kind === 'pg') {
      scratch = await createScratchDatabase('tc_store');
      db = new PgDatabase({ connectionString: scratch.url });
    } else {
      db = await PgliteDatabase.open();
    }
    store = new ConnectorStore(db);
    await store.migrate();
    await store.migrate(); // idempotent
    service = new ConnectorService({ store, registry: new ConnectorRegistry(), keyring: new Keyring([key1]) });
  });
  afterAll(async () => {
    await service.close();
    await store.close();
    await scratch?.drop();
  });

  const billing = (token = 'tok-ABC-123456') => ({
    name: 'billing_api',
    type: 'REST',
    description: 'Billing',
    value: { base_url: 'http://127.0.0.1:1/api', auth: { type: 'bearer', token }, headers: { accept: 'application/json' } },
    locked: ['base_url'],
    retry: { maximum_attempts: 3 },
    timeout: '5s',
  });

  test('every change writes a new version; reads show sensitive values masked', async () => {
    const v1 = await service.apply(billing());
    expect(v1).toMatchObject({ name: 'billing_api', type: 'REST', version: 1, locked: ['base_url'], timeout: '5s' });
    expect(v1.value).toEqual({ base_url: 'http://127.0.0.1:1/api', auth: { type: 'bearer', token: MASK }, headers: { accept: 'application/json' } });
    const v2 = await service.apply({ ...billing('tok-DEF-654321'), description: 'Billing v2' });
    expect(v2.version).toBe(2);
    expect((await service.get('billing_api')).description).toBe('Billing v2');
    expect((await service.get('billing_api', 1)).description).toBe('Billing');
    expect((await service.history('billing_api')).map((v) => v.version)).toEqual([2, 1]);
    for (const view of [...(await service.list()), ...(await service.history('billing_api'))]) {
      expect(JSON.stringify(view)).not.toMatch(/tok-(ABC|DEF)/);
    }
  });

  test('the rows hold ciphertext, never the plaintext secret', async () => {
    const rows = await db.query<{ value: unknown }>("SELECT value FROM tc_connector_versions WHERE name = 'billing_api'");
    expect(rows.length).toBeGreaterThan(0);
    const text = JSON.stringify(rows);
    expect(text).not.toContain('tok-ABC-123456');
    expect(text).not.toContain('tok-DEF-654321');
    expect(text).toContain('tcenc:v1:k1:');
  });

  test('the worker reads the decrypted current version', async () => {
    const loaded = await service.load('billing_api');
    expect(loaded!.value).toMatchObject({ auth: { token: 'tok-DEF-654321' } });
    expect(loaded!.version).toBe(2);
  });

  test('writing the mask back keeps the stored secret', async () => {
    const current = await service.get('billing_api');
    await service.apply({ ...billing(), value: current.value, description: 'mask kept' });
    expect((await service.load('billing_api'))!.value).toMatchObject({ auth: { token: 'tok-DEF-654321' } });
  });

  test('the mask where nothing is stored is refused, naming the field', async () => {
    await expect(service.apply({ ...billing(MASK), name: 'fresh_one' })).rejects.toThrow(/value\.auth\.token.*has none stored/);
    await expect(service.get('fresh_one')).rejects.toBeInstanceOf(ConnectorNotFoundError);
  });

  test('a stale expected version is a conflict and changes nothing', async () => {
    const before = await service.get('billing_api');
    await expect(service.apply({ ...billing('tok-stale'), description: 'stale' }, { expectedVersion: before.version - 1 })).rejects.toBeInstanceOf(StoreConflictError);
    expect(await service.get('billing_api')).toEqual(before);
    const next = await service.apply({ ...billing(), value: before.value, description: 'fresh' }, { expectedVersion: before.version });
    expect(next.version).toBe(before.version + 1);
  });

  test('delete keeps history; rollback restores an old version, secrets included', async () => {
    await service.apply({ ...billing('tok-OLD-000001'), name: 'to_delete' });
    await service.apply({ ...billing('tok-NEW-000002'), name: 'to_delete' });
    await service.delete('to_delete');
    await expect(service.get('to_delete')).rejects.toBeInstanceOf(ConnectorNotFoundError);
    expect((await service.list()).map((c) => c.name)).not.toContain('to_delete');
    expect((await service.history('to_delete')).map((v) => v.version)).toEqual([3, 2, 1]);
    const restored = await service.rollback('to_delete', 1);
    expect(restored.version).toBe(4);
    expect((await service.load('to_delete'))!.value).toMatchObject({ auth: { token: 'tok-OLD-000001' } });
  });

  test('invalid definitions are refused naming each field, and store nothing', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ ...billing(), name: '../etc/passwd' }, /name: must be 1-128 characters/],
      [{ ...billing(), name: 'Billing API' }, /name:/],
      [{ ...billing(), type: 'SMOKE' }, /type: "SMOKE" is not a known connector type; known types: .*REST/],
      [{ ...billing(), value: { base_url: 'x', colour: 'red' } }, /value\.colour: is not an input of type REST/],
      [{ ...billing(), vault_secrets: [{ path: 'secret data' }] }, /vault_secrets\.0\.path/],
      [{ ...billing(), retry: { maximum_attempts: 0 } }, /retry\.maximum_attempts/],
      [{ ...billing(), timeout: 'soon' }, /timeout/],
      [{ ...billing(), extra: true }, /extra/],
    ];
    for (const [definition, message] of cases) {
      const err = await service.apply(definition).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectorValidationError);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain('tok-ABC-123456');
    }
    expect((await service.list()).map((c) => c.name).sort()).toEqual(['billing_api', 'to_delete']);
  });

  test('without a keyring, a sensitive value is refused with a clear error and a plain one is fine', async () => {
    const keyless = new ConnectorService({ store, registry: service.registry });
    await expect(keyless.apply({ ...billing(), name: 'keyless' })).rejects.toThrow(KeyringError);
    await expect(keyless.apply({ ...billing(), name: 'keyless' })).rejects.toThrow(/value\.auth\.token.*TC_KEYRING/);
    const plain = await keyless.apply({ name: 'plain', type: 'REST', value: { url: 'http://127.0.0.1:1/' } });
    expect(plain.version).toBe(1);
  });

  test('a change notification reaches watchers, so the profile cache drops the entry', async () => {
    await service.apply({ ...billing(), name: 'watched', description: 'before' });
    await service.watch();
    expect((await service.load('watched'))!.description).toBe('before');
    const seen = new Promise<string | undefined>((resolve) => void store.watch((name) => name === 'watched' && resolve(name)));
    // Another writer (another service on the same store) changes it: the cache must not serve the old version.
    const otherWriter = new ConnectorService({ store, registry: service.registry, keyring: new Keyring([key1]) });
    await otherWriter.apply({ ...billing(), name: 'watched', description: 'after' });
    expect(await seen).toBe('watched');
    let description: string | undefined;
    for (let i = 0; i < 50 && description !== 'after'; i++) {
      description = (await service.load('watched'))!.description;
      if (description !== 'after') await new Promise((r) => setTimeout(r, 20));
    }
    expect(description).toBe('after');
  });

  // Last: it retires k1, which the service above still puts first.
  test('key rotation re-encrypts every version and leaves every connector readable', async () => {
    const key2 = newKey('k2');
    const rotated = new ConnectorService({ store, registry: service.registry, keyring: new Keyring([key2, key1]) });
    const rewritten = await rotated.rotateKeys();
    expect(rewritten).toBeGreaterThanOrEqual(6);
    const text = JSON.stringify(await db.query('SELECT value FROM tc_connector_versions'));
    expect(text).not.toContain('tcenc:v1:k1:');
    // The old key can now be dropped.
    const onlyNew = new ConnectorService({ store, registry: service.registry, keyring: new Keyring([key2]) });
    expect((await onlyNew.load('billing_api'))!.value).toMatchObject({ auth: { token: 'tok-DEF-654321' } });
    expect((await onlyNew.load('to_delete'))!.value).toMatchObject({ auth: { token: 'tok-OLD-000001' } });
  });
});

describe('connector store errors', () => {
  test('an unreachable PostgreSQL gives StoreUnavailableError naming host and port, not the password', async () => {
    const store = new ConnectorStore(new PgDatabase({ connectionString: 'postgres://u:secret-pw-42@127.0.0.1:9/db', connectionTimeoutMillis: 2_000 }));
    const err = await store.get('x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as Error).message).toContain('127.0.0.1:9');
    expect((err as Error).message).not.toContain('secret-pw-42');
    await store.close();
  });

  test('SQL-significant characters in values are stored verbatim', async () => {
    const scratch = await createScratchDatabase('tc_sql');
    const store = new ConnectorStore(new PgDatabase({ connectionString: scratch.url }));
    try {
      await store.migrate();
      const service = new ConnectorService({ store, registry: new ConnectorRegistry(), keyring: new Keyring([newKey('k')]) });
      const tricky = "x'); DROP TABLE tc_connector_versions; --";
      await service.apply({ name: 'tricky', type: 'REST', description: tricky, value: { url: 'http://h/', headers: { 'x-note': tricky } } });
      expect((await service.get('tricky')).description).toBe(tricky);
      const client = new Client({ connectionString: scratch.url });
      await client.connect();
      expect((await client.query('SELECT count(*)::int AS n FROM tc_connector_versions')).rows[0].n).toBe(1);
      await client.end();
    } finally {
      await store.close();
      await scratch.drop();
    }
  });
});
