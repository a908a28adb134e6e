// Pools across connector versions, through the whole call path (store, runner, type) on the real servers.
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { Client } from 'pg';
import { createConnectionRunner } from '../../core/runner';
import { ConnectorRegistry } from '../../connectors/registry';
import type { SqlQueryResult, SqlTransactionResult } from '../../connectors/sql-common';
import { Keyring } from '../../core/keyring';
import { ConnectorService } from '../../core/service';
import { ConnectorStore } from '../../core/store/connector-store';
import { PgDatabase } from '../../core/store/database';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import { postgresInputs } from '../support/connector-calls';
import { waitFor } from '../support/wait';

/** The MariaDB server of this machine: root with an empty password, as the dev stack sets it up. */
const MYSQL_SERVER = { host: '127.0.0.1', port: 3306, user: 'root', password: '' };

describe('connector pools across versions', () => {
  const suffix = randomBytes(4).toString('hex');
  const mysqlDatabase = `tc_pools_${suffix}`;
  let storeDb: ScratchDatabase;
  let target: ScratchDatabase;
  let store: ConnectorStore;
  let service: ConnectorService;
  let runner: ReturnType<typeof createConnectionRunner>;
  let mysqlAdmin: mysql.Connection;
  let pgAdmin: Client;
  const signal = new AbortController().signal;

  beforeAll(async () => {
    [storeDb, target] = await Promise.all([createScratchDatabase('tc_pools_store'), createScratchDatabase('tc_pools_target')]);
    store = new ConnectorStore(new PgDatabase({ connectionString: storeDb.url }));
    await store.migrate();
    service = new ConnectorService({ store, registry: new ConnectorRegistry(), keyring: new Keyring([{ id: 'k1', key: randomBytes(32) }]) });
    runner = createConnectionRunner({ service });
    mysqlAdmin = await mysql.createConnection({ ...MYSQL_SERVER, supportBigNumbers: true, bigNumberStrings: true });
    await mysqlAdmin.query(`CREATE DATABASE ${mysqlDatabase}`);
    await mysqlAdmin.query(`CREATE TABLE ${mysqlDatabase}.ledger (id INT PRIMARY KEY, amount INT NOT NULL) ENGINE=InnoDB`);
    pgAdmin = new Client({ connectionString: target.url });
    await pgAdmin.connect();
    await pgAdmin.query('CREATE TABLE ledger (id int PRIMARY KEY, amount int NOT NULL)');
  });

  afterAll(async () => {
    await service?.registry.close();
    await service?.close();
    await store?.close();
    await pgAdmin?.end();
    await mysqlAdmin?.query(`DROP DATABASE IF EXISTS ${mysqlDatabase}`);
    await mysqlAdmin?.end();
    await Promise.all([storeDb?.drop(), target?.drop()]);
  });

  test('a MYSQL transaction in flight survives a new version of its connector and commits', async () => {
    const name = `ledger_mysql_${suffix}`;
    const value = { ...MYSQL_SERVER, database: mysqlDatabase };
    await service.apply({ name, type: 'MYSQL', value });
    const marker = `held_${suffix}`;
    const transaction = runner.run(
      {
        connector: name,
        overrides: {
          operation: 'transaction',
          statements: [
            { sql: 'INSERT INTO ledger VALUES (?, ?)', params: [1, 10] },
            { sql: `SELECT SLEEP(1) AS ${marker}` },
            { sql: 'INSERT INTO ledger VALUES (?, ?)', params: [2, 20] },
          ],
        },
      },
      { signal },
    );
    const holding = async () =>
      (await mysqlAdmin.query<mysql.RowDataPacket[]>("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND COMMAND <> 'Sleep'", [`SELECT SLEEP(1) AS ${marker}%`]))[0];
    await waitFor(async () => (await holding()).length === 1);
    const [{ ID: heldOn }] = await holding();

    await service.apply({ name, type: 'MYSQL', value: { ...value, statement_timeout: '20s' } });
    const newer = await runner.run({ connector: name, overrides: { sql: 'SELECT CONNECTION_ID() AS id' } }, { signal });
    expect(newer.connector.version).toBe(2);

    const committed = await transaction;
    expect(committed.connector.version).toBe(1);
    expect((committed.output as SqlTransactionResult).results).toHaveLength(3);
    const [rows] = await mysqlAdmin.query<mysql.RowDataPacket[]>(`SELECT id, amount FROM ${mysqlDatabase}.ledger ORDER BY id`);
    expect(rows).toEqual([
      { id: 1, amount: 10 },
      { id: 2, amount: 20 },
    ]);

    // The old version's pool closes once its transaction is done; the new version's connection stays.
    const newerId = String((newer.output as SqlQueryResult).rows[0].id);
    const alive = async () =>
      (await mysqlAdmin.query<mysql.RowDataPacket[]>('SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN (?)', [[heldOn, newerId]]))[0].map((row) => String(row.ID));
    await waitFor(async () => (await alive()).join() === newerId);
  });

  test('a POSTGRES transaction in flight, and a call queued behind it, survive a new version of their connector', async () => {
    const name = `ledger_pg_${suffix}`;
    // One connection: the second call of the old version waits in the old version's pool.
    const value = { ...postgresInputs(target), pool_size: 1, connect_timeout: '4s' };
    await service.apply({ name, type: 'POSTGRES', value });
    const marker = `held_${suffix}`;
    const transaction = runner.run(
      {
        connector: name,
        overrides: {
          operation: 'transaction',
          statements: [
            { sql: 'INSERT INTO ledger VALUES ($1, $2)', params: [1, 10] },
            { sql: `SELECT pg_sleep(1) AS ${marker}` },
            { sql: 'INSERT INTO ledger VALUES ($1, $2)', params: [2, 20] },
          ],
        },
      },
      { signal },
    );
    const holding = async () =>
      (await pgAdmin.query("SELECT pid FROM pg_stat_activity WHERE query LIKE $1 AND state = 'active' AND pid <> pg_backend_pid()", [`%AS ${marker}%`])).rows;
    await waitFor(async () => (await holding()).length === 1);
    const [{ pid: heldOn }] = await holding();

    // Once resolved, the call queues for the pool's only connection before anything else runs.
    let queued: () => void = () => undefined;
    const resolved = new Promise<void>((resolve) => (queued = resolve));
    const waiting = runner.run({ connector: name, overrides: { sql: 'SELECT count(*)::int AS n FROM ledger' } }, { signal, onResolved: () => queued() });
    await resolved;

    await service.apply({ name, type: 'POSTGRES', value: { ...value, statement_timeout: '20s' } });
    const newer = await runner.run({ connector: name, overrides: { sql: 'SELECT pg_backend_pid() AS pid' } }, { signal });
    expect(newer.connector.version).toBe(2);

    const [committed, after] = await Promise.all([transaction, waiting]);
    expect(committed.connector.version).toBe(1);
    expect((committed.output as SqlTransactionResult).results).toHaveLength(3);
    expect(after.connector.version).toBe(1);
    expect((after.output as SqlQueryResult).rows).toEqual([{ n: 2 }]);

    const newerPid = (newer.output as SqlQueryResult).rows[0].pid as number;
    const alive = async () => (await pgAdmin.query('SELECT pid FROM pg_stat_activity WHERE pid = ANY($1) ORDER BY pid', [[heldOn, newerPid]])).rows.map((row) => row.pid);
    await waitFor(async () => (await alive()).join() === String(newerPid));
  });
});
