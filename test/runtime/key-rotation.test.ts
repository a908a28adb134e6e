import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { ConnectorRegistry } from '../../connectors/registry';
import { MASK } from '../../core/inputs';
import { Keyring, KeyringError } from '../../core/keyring';
import { ConnectorService } from '../../core/service';
import { ConnectorStore } from '../../core/store/connector-store';
import { PgDatabase } from '../../core/store/database';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import { pollUntil } from '../support/wait';


const k1 = { id: 'k1', key: randomBytes(32) };
const k2 = { id: 'k2', key: randomBytes(32) };
const k3 = { id: 'k3', key: randomBytes(32) };
const TOKEN = `tok-rotation-${randomBytes(6).toString('hex')}`;

// Key rotation against concurrent writers on the PostgreSQL server: each service has a pool of its own,
// as separate processes (a worker, the API, the CLI running rotate-key) would.
describe('key rotation and concurrent writers on PostgreSQL', () => {
  let scratch: ScratchDatabase;
  let admin: Client;
  const registry = new ConnectorRegistry();
  const stores: ConnectorStore[] = [];

  beforeEach(async () => {
    scratch = await createScratchDatabase('tc_rotate');
    admin = new Client({ connectionString: scratch.url });
    await admin.connect();
    await (await openStore()).migrate();
  });
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
    await admin?.end();
    await scratch?.drop();
  });

  async function openStore(): Promise<ConnectorStore> {
    const store = new ConnectorStore(new PgDatabase({ connectionString: scratch.url }));
    stores.push(store);
    return store;
  }

  async function serviceWith(...keys: Array<{ id: string; key: Buffer }>): Promise<ConnectorService> {
    return new ConnectorService({ store: await openStore(), registry, keyring: new Keyring(keys) });
  }

  const billing = (description: string, token: string = TOKEN) => ({
    name: 'billing',
    type: 'REST',
    description,
    value: { base_url: 'http://127.0.0.1:1/api', auth: { type: 'bearer', token } },
  });

  async function storedValues(): Promise<string> {
    return JSON.stringify((await admin.query('SELECT value FROM tc_connector_versions')).rows);
  }

  /** Backends of this database that wait for a lock, by the start of their query. */
  async function lockWaiters(): Promise<string[]> {
    const { rows } = await admin.query<{ query: string }>(
      "SELECT query FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
      [scratch.name],
    );
    return rows.map((r) => r.query.trim().slice(0, 40));
  }

  const concurrentWrites: Array<[string, (writer: ConnectorService) => Promise<unknown>]> = [
    ['a secret written back masked', async (writer) => writer.apply({ ...billing('written during rotation'), value: (await writer.get('billing')).value })],
    ['a rollback', async (writer) => writer.rollback('billing', 1)],
  ];

  test.each(concurrentWrites)('%s during a key rotation waits for it, and no row keeps the old key', async (_label, write) => {
    const before = await serviceWith(k1);
    await before.apply(billing('v1'));
    await before.apply(billing('v2'));
    expect(await storedValues()).toContain('tcenc:v1:k1:');

    // A rotation in progress: it holds its place and waits for a row that a third session holds.
    const blocker = new Client({ connectionString: scratch.url });
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query("SELECT 1 FROM tc_connector_versions WHERE name = 'billing' AND version = 1 FOR UPDATE");
    const rotator = await serviceWith(k2, k1);
    const rotation = rotator.rotateKeys();
    expect(await pollUntil(lockWaiters, (q) => q.some((s) => s.startsWith('SELECT name, version')))).toEqual([expect.stringMatching(/^SELECT name, version/)]);

    // Another process writes meanwhile, with the same (new) keyring.
    const writer = await serviceWith(k2, k1);
    let settled = false;
    const written = write(writer).finally(() => (settled = true));
    await pollUntil(
      async () => settled || (await lockWaiters()).length === 2,
      (done) => done,
    );
    await blocker.query('COMMIT');
    await blocker.end();
    expect(await rotation).toBeGreaterThanOrEqual(2);
    await written;

    const values = await storedValues();
    expect(values).toContain('tcenc:v1:k2:');
    expect(values).not.toContain('tcenc:v1:k1:');
    // The old key can be dropped: every version, the one written meanwhile included, decrypts with k2 alone.
    const onlyNew = await serviceWith(k2);
    const latest = await onlyNew.load('billing');
    expect(latest!.version).toBe(3);
    expect(latest!.value).toMatchObject({ auth: { token: TOKEN } });
    expect(await onlyNew.rotateKeys()).toBe(0);
  });

  test('a writer whose keyring still puts a retired key first encrypts under the rotated key, or is refused without it', async () => {
    const old = await serviceWith(k1);
    await old.apply(billing('v1'));
    await (await serviceWith(k2, k1)).rotateKeys();
    expect(await (await openStore()).keyState()).toEqual({ current: 'k2', retired: new Set(['k1']) });

    // TC_KEYRING not yet updated in this process, but it already holds k2 (a rolling update): it follows the store.
    const lagging = await serviceWith(k1, k2);
    await lagging.apply({ ...billing('from a lagging keyring', `${TOKEN}-lagging`), name: 'lagging' });
    const values = await storedValues();
    expect(values).toContain('tcenc:v1:k2:');
    expect(values).not.toContain('tcenc:v1:k1:');
    expect((await (await serviceWith(k2)).load('lagging'))!.value).toMatchObject({ auth: { token: `${TOKEN}-lagging` } });

    // Without k2 it cannot write a secret the store's readers can decrypt once k1 is gone: refused, naming both keys.
    const stale = await serviceWith(k1);
    const err = await stale.apply({ ...billing('from a stale keyring', `${TOKEN}-stale`), name: 'stale' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyringError);
    expect((err as Error).message).toMatch(/value\.auth\.token.*"k1".*retired.*"k2"/);
    expect((err as Error).message).not.toContain(TOKEN);
    expect((await admin.query("SELECT count(*)::int AS n FROM tc_connector_versions WHERE name = 'stale'")).rows[0].n).toBe(0);
    // Writing the secret back masked needs no key: the stored (k2) ciphertext is kept.
    const kept = await stale.apply({ ...billing('masked from a stale keyring', MASK) });
    expect(kept.version).toBe(2);
    expect(await storedValues()).not.toContain('tcenc:v1:k1:');
  });

  test("rotate-key keeps the destinations each secret was written for, and a legacy secret (no binding) stays readable", async () => {
    const writer = await serviceWith(k1);
    await writer.apply({ ...billing('bound'), allowed_destinations: ['https://eu.example.com'] });
    const token = async () => ((await (await openStore()).get('billing'))!.value.auth as { token: string }).token;
    const label = Keyring.labelOf(await token());
    expect(JSON.parse(label!)).toEqual({ v: 1, t: 'REST', d: ['http://127.0.0.1:1', 'https://eu.example.com'], i: expect.any(String) });
    // A ciphertext as versions before bindings made it: no label, bound by the context alone.
    const legacy = new Keyring([k1]).encrypt(JSON.stringify(`${TOKEN}-legacy`), 'connector:legacy:auth.token');
    expect(Keyring.labelOf(legacy)).toBeUndefined();
    await admin.query(
      `INSERT INTO tc_connector_versions (name, version, type, description, value, vault_secrets, locked, allowed_destinations, created_by)
       SELECT 'legacy', 1, type, description, jsonb_set(value, '{auth,token}', to_jsonb($1::text)), vault_secrets, locked, '[]'::jsonb, created_by
         FROM tc_connector_versions WHERE name = 'billing'`,
      [legacy],
    );
    expect(await (await serviceWith(k2, k1)).rotateKeys()).toBe(2);
    expect(Keyring.keyIdOf(await token())).toBe('k2');
    expect(Keyring.labelOf(await token())).toBe(label);
    const reader = await serviceWith(k2);
    expect((await reader.load('billing'))!.bindings).toEqual({ 'auth.token': { type: 'REST', destinations: ['http://127.0.0.1:1', 'https://eu.example.com'], id: expect.any(String) } });
    const old = await reader.load('legacy');
    expect(old!.value).toMatchObject({ auth: { token: `${TOKEN}-legacy` } });
    expect(old!.bindings).toEqual({});
  });

  test('rotating to a retired key is refused, so a stale keyring cannot undo a rotation', async () => {
    await (await serviceWith(k1)).apply(billing('v1'));
    await (await serviceWith(k2, k1)).rotateKeys();
    const err = await (await serviceWith(k1, k2)).rotateKeys().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyringError);
    expect((err as Error).message).toMatch(/cannot rotate to key "k1": an earlier rotate-key retired it .*"k2"/);
    expect(await storedValues()).not.toContain('tcenc:v1:k1:');
    // A newer key still rotates, and retires k2 in turn.
    expect(await (await serviceWith(k3, k2)).rotateKeys()).toBe(1);
    expect(await (await openStore()).keyState()).toEqual({ current: 'k3', retired: new Set(['k1', 'k2']) });
  });
});
