import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { ConnectorRegistry } from '../../connectors/registry';
import { Keyring } from '../../core/keyring';
import { ConnectorService } from '../../core/service';
import { ConnectorStore } from '../../core/store/connector-store';
import { PgDatabase } from '../../core/store/database';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import { pollUntil, sleep } from '../support/wait';


// The profile cache of the connector worker, against the PostgreSQL server: its LISTEN connection is a
// real backend the test can kill, and other writers are other pools, as other processes would be.
describe('profile cache on PostgreSQL', () => {
  let scratch: ScratchDatabase;
  let admin: Client;
  let writerStore: ConnectorStore;
  let writer: ConnectorService;
  const registry = new ConnectorRegistry();
  const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
  const opened: Array<{ service: ConnectorService; store: ConnectorStore }> = [];

  beforeAll(async () => {
    scratch = await createScratchDatabase('tc_cache');
    admin = new Client({ connectionString: scratch.url });
    await admin.connect();
    writerStore = new ConnectorStore(new PgDatabase({ connectionString: scratch.url }));
    await writerStore.migrate();
    writer = new ConnectorService({ store: writerStore, registry, keyring });
  });
  // Each test's worker services stop with it, so the next test sees only its own LISTEN connection.
  afterEach(async () => {
    for (const { service, store } of opened.splice(0)) {
      await service.close();
      await store.close();
    }
    expect(await pollUntil(listenPids, (pids) => pids.length === 0)).toEqual([]);
  });
  afterAll(async () => {
    await writerStore?.close();
    await admin?.end();
    await scratch?.drop();
  });

  /** A connector worker's service with a store (and so a LISTEN connection) of its own. */
  async function workerService(options: { cacheTtlMs?: number } = {}): Promise<ConnectorService> {
    const store = new ConnectorStore(new PgDatabase({ connectionString: scratch.url }));
    const service = new ConnectorService({ store, registry, keyring, ...options });
    opened.push({ service, store });
    await service.watch();
    return service;
  }

  const profile = (name: string, description: string) => ({
    name,
    type: 'REST',
    description,
    value: { base_url: 'http://127.0.0.1:1/api', auth: { type: 'bearer', token: `tok-${name}` } },
  });

  /** Backends of this database that LISTEN (the store's change notifications). */
  async function listenPids(): Promise<number[]> {
    const { rows } = await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN %'", [scratch.name]);
    return rows.map((r) => r.pid);
  }

  test('after the LISTEN connection is killed while changes are written, the next load returns the newest version', async () => {
    await writer.apply(profile('killed_listen', 'v1'));
    const service = await workerService();
    const [pid] = await pollUntil(listenPids, (pids) => pids.length === 1);
    expect((await service.load('killed_listen'))!.description).toBe('v1');
    expect(service.cachedProfiles).toBe(1);

    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    expect(await pollUntil(listenPids, (pids) => !pids.includes(pid))).not.toContain(pid);
    await sleep(300); // the worker has read the server's FATAL and knows it no longer listens
    // Loaded while nobody listens, then changed by another process: that change's notification is lost.
    expect((await service.load('killed_listen'))!.description).toBe('v1');
    await writer.apply(profile('killed_listen', 'v2'));

    const pids = await pollUntil(listenPids, (p) => p.length > 0);
    expect(pids).not.toContain(pid);
    expect((await service.load('killed_listen'))!.description).toBe('v2');
  });

  test('a dropped LISTEN connection is re-established, alone, and changes are heard through it again', async () => {
    await writer.apply(profile('relistened', 'v1'));
    const service = await workerService();
    const [first] = await pollUntil(listenPids, (pids) => pids.length === 1);
    await admin.query('SELECT pg_terminate_backend($1)', [first]);
    const reopened = await pollUntil(listenPids, (pids) => pids.length > 0 && !pids.includes(first));
    expect(reopened).toHaveLength(1);

    // Cached again once the worker listens; with the default TTL of 30 s only a notification drops it now.
    await pollUntil(
      async () => (await service.load('relistened'), service.cachedProfiles),
      (n) => n === 1,
    );
    expect(service.cachedProfiles).toBe(1);
    await writer.apply(profile('relistened', 'v2'));
    const seen = await pollUntil(
      async () => (await service.load('relistened'))!.description,
      (d) => d === 'v2',
    );
    expect(seen).toBe('v2');

    // One connection, not one per report of the drop.
    await sleep(1_500);
    expect(await listenPids()).toEqual(reopened);
  });

  test('a change that no notification announces is read again after the cache TTL', async () => {
    await writer.apply(profile('ttl_bound', 'v1'));
    const service = await workerService({ cacheTtlMs: 1_000 });
    await pollUntil(
      async () => (await service.load('ttl_bound'), service.cachedProfiles),
      (n) => n === 1,
    );
    expect(service.cachedProfiles).toBe(1);
    // Changed behind the store's back: no NOTIFY, as when one is lost without the LISTEN connection noticing.
    await admin.query("UPDATE tc_connector_versions SET description = 'changed unannounced' WHERE name = 'ttl_bound'");
    const seen = await pollUntil(
      async () => (await service.load('ttl_bound'))!.description,
      (d) => d === 'changed unannounced',
    );
    expect(seen).toBe('changed unannounced');
  });

  test('loading names that do not exist caches nothing, so a connector created later without a notification is found', async () => {
    await writer.apply(profile('exists_for_cache', 'v1'));
    const service = await workerService();
    // The cache holds what exists (once the worker listens).
    await pollUntil(
      async () => (await service.load('exists_for_cache'), service.cachedProfiles),
      (n) => n === 1,
    );
    expect(service.cachedProfiles).toBe(1);
    for (let i = 0; i < 200; i++) expect(await service.load(`no_such_${randomBytes(6).toString('hex')}`)).toBeUndefined();
    expect(await service.load('appears_later')).toBeUndefined();
    expect(service.cachedProfiles).toBe(1);

    // Inserted without NOTIFY: only a miss that was not cached lets the worker see it.
    await admin.query(
      `INSERT INTO tc_connector_versions (name, version, type, value) VALUES ('appears_later', 1, 'REST', '{"url": "http://127.0.0.1:1/"}')`,
    );
    expect((await service.load('appears_later'))!.version).toBe(1);
    expect(service.cachedProfiles).toBe(2);
  });
});
