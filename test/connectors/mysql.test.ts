import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { CancelledFailure } from '@temporalio/common';
import mysql from 'mysql2/promise';
import { createMysqlConnector, mysqlConnector, mysqlSchema } from '../../connectors/mysql';
import type { SqlIntrospection, SqlQueryResult, SqlTransactionResult } from '../../connectors/sql-common';
import type { InvokeContext } from '../../connectors/types';
import { unusedLocalUrl } from '../fixtures/http-server';
import { failureOf, invokeContext as context } from '../support/connector-calls';

/** The MariaDB server of this machine: root with an empty password, as the dev stack sets it up. */
const SERVER = { host: '127.0.0.1', port: 3306, user: 'root', password: '' };

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 3_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('MYSQL connector', () => {
  const suffix = randomBytes(4).toString('hex');
  const database = `tc_mysql_${suffix}`;
  const otherDatabase = `tc_mysql_${suffix}_other`;
  const lockedUser = `tc_user_${suffix}`;
  const lockedPassword = `pw-SECRET-${suffix}`;
  const base = { ...SERVER, database };
  let admin: mysql.Connection;

  const invoke = (inputs: Record<string, unknown>, ctx: InvokeContext = context()) => mysqlConnector.invoke(mysqlSchema.parse({ ...base, ...inputs }), ctx);
  const query = async (sql: string, params: unknown[] = [], ctx?: InvokeContext) => (await invoke({ sql, params }, ctx)) as SqlQueryResult;
  const adminRows = async (sql: string, params: unknown[] = []) => (await admin.query<mysql.RowDataPacket[]>(sql, params))[0];
  /** Connections of the connector to the scratch database, leaving out the admin's own. */
  const openConnections = async (db: string) =>
    (await adminRows('SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()', [db])).length;

  beforeAll(async () => {
    admin = await mysql.createConnection({ ...SERVER, supportBigNumbers: true, bigNumberStrings: true });
    await admin.query(`CREATE DATABASE ${database}`);
    await admin.query(`CREATE DATABASE ${otherDatabase}`);
    await admin.query(`CREATE USER '${lockedUser}'@'%' IDENTIFIED BY '${lockedPassword}'`);
    await admin.query(`GRANT SELECT ON ${database}.* TO '${lockedUser}'@'%'`);
    await admin.query(`USE ${database}`);
  });

  afterAll(async () => {
    await mysqlConnector.close?.();
    if (!admin) return;
    await admin.query(`DROP USER IF EXISTS '${lockedUser}'@'%'`);
    await admin.query(`DROP DATABASE IF EXISTS ${database}`);
    await admin.query(`DROP DATABASE IF EXISTS ${otherDatabase}`);
    await admin.end();
  });

  describe('query', () => {
    test('parameters travel as values: quotes and a DROP TABLE are stored verbatim', async () => {
      await admin.query('CREATE TABLE notes (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT NOT NULL)');
      const hostile = `it's "quoted"'); DROP TABLE notes; --`;
      const inserted = await query('INSERT INTO notes (body) VALUES (?)', [hostile]);
      expect(inserted).toEqual({ rows: [], row_count: 1, fields: [], insert_id: 1 });
      const read = await query('SELECT body FROM notes WHERE id = ?', [inserted.insert_id]);
      expect(read.rows).toEqual([{ body: hostile }]);
      expect(await adminRows('SELECT COUNT(*) AS n FROM notes')).toEqual([{ n: '1' }]);
    });

    test('a query returns rows, row_count and fields named by type', async () => {
      await admin.query('CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, price DECIMAL(10, 2), picture BLOB)');
      await admin.query("INSERT INTO items VALUES (1, 'lamp', 12.5, NULL), (2, 'desk', 99, NULL)");
      const result = await query('SELECT id, name, price, picture FROM items WHERE price > ? ORDER BY id', [10]);
      expect(result).toEqual({
        rows: [
          { id: 1, name: 'lamp', price: '12.50', picture: null },
          { id: 2, name: 'desk', price: '99.00', picture: null },
        ],
        row_count: 2,
        fields: [
          { name: 'id', type: 'INT' },
          { name: 'name', type: 'VARCHAR' },
          { name: 'price', type: 'DECIMAL' },
          { name: 'picture', type: 'BLOB' },
        ],
      });
    });

    test('row_count of an UPDATE is the number of rows changed', async () => {
      await admin.query('CREATE TABLE counters (name VARCHAR(10) PRIMARY KEY, n INT NOT NULL)');
      await admin.query("INSERT INTO counters VALUES ('a', 0), ('b', 0), ('c', 5)");
      const result = await query('UPDATE counters SET n = n + 1 WHERE n < ?', [5]);
      expect(result).toEqual({ rows: [], row_count: 2, fields: [] });
    });

    test('rows are JSON-safe: blobs as base64, bigint as strings, date and time values as the server writes them', async () => {
      await admin.query('CREATE TABLE samples (big BIGINT, bin BLOB, at TIMESTAMP NULL, local_time DATETIME(3), day DATE, doc JSON)');
      await query('INSERT INTO samples VALUES (?, UNHEX(?), ?, ?, ?, ?)', ['9007199254740993', '0102ff', '2024-01-02 03:04:05', '2024-01-02 03:04:05.123', '2024-01-02', { a: [1, 2] }]);
      const result = await query('SELECT * FROM samples');
      expect(result.rows).toEqual([
        { big: '9007199254740993', bin: 'AQL/', at: '2024-01-02 03:04:05', local_time: '2024-01-02 03:04:05.123', day: '2024-01-02', doc: { a: [1, 2] } },
      ]);
      expect(JSON.parse(JSON.stringify(result.rows))).toEqual(result.rows);
      expect(result.fields.map((field) => field.type)).toEqual(['BIGINT', 'BLOB', 'TIMESTAMP', 'DATETIME', 'DATE', 'JSON']);
    });

    test('a failing statement is a non-retryable failure with the server message and error code', async () => {
      const failure = await failureOf(query('SELECT * FROM nope'));
      expect(failure.type).toBe('Connector.External.Error');
      expect(failure.nonRetryable).toBe(true);
      expect(failure.message).toBe(`MYSQL query failed: Table '${database}.nope' doesn't exist (ER_NO_SUCH_TABLE 1146, SQLSTATE 42S02)`);
      expect(failure.details).toEqual([{ code: 'ER_NO_SUCH_TABLE', errno: 1146, sqlstate: '42S02' }]);
      expect(failure.cause).toBeUndefined();
    });

    test('a duplicate key names the key but never the duplicate value', async () => {
      await admin.query('CREATE TABLE members (email VARCHAR(100) UNIQUE)');
      await query('INSERT INTO members VALUES (?)', ['ada@example.com']);
      const failure = await failureOf(query('INSERT INTO members VALUES (?)', ['ada@example.com']));
      expect(failure.nonRetryable).toBe(true);
      expect(failure.message).toBe("MYSQL query failed: Duplicate entry for key 'email' (ER_DUP_ENTRY 1062, SQLSTATE 23000)");
    });

    test('statement_timeout stops a long statement with a retryable Timeout failure, pooled or not', async () => {
      for (const poolKey of [undefined, 'slow@1']) {
        const started = Date.now();
        const failure = await failureOf(invoke({ sql: 'SELECT SLEEP(2)', statement_timeout: '200ms' }, context({ poolKey })));
        expect(Date.now() - started).toBeLessThan(1_500);
        expect(failure.type).toBe('Connector.External.Timeout');
        expect(failure.nonRetryable).toBe(false);
        expect(failure.message).toContain('statement_timeout (200 ms)');
      }
      await mysqlConnector.close?.('slow@1');
    });

    test('a signal aborted before the call rejects with its reason without connecting', async () => {
      const controller = new AbortController();
      const reason = new CancelledFailure('cancelled before start');
      controller.abort(reason);
      await expect(query('SELECT 1', [], context({ signal: controller.signal }))).rejects.toBe(reason);
    });
  });

  describe('transaction', () => {
    beforeAll(async () => {
      await admin.query('CREATE TABLE ledger (id INT PRIMARY KEY, amount INT NOT NULL) ENGINE=InnoDB');
    });

    test('statements run in order in one transaction, each with its result', async () => {
      const result = (await invoke({
        operation: 'transaction',
        statements: [
          { sql: 'INSERT INTO ledger VALUES (?, ?), (?, ?)', params: [1, 10, 2, 20] },
          { sql: 'UPDATE ledger SET amount = amount * 2 WHERE id = ?', params: [1] },
          { sql: 'SELECT id, amount FROM ledger ORDER BY id' },
        ],
      })) as SqlTransactionResult;
      expect(result.results).toEqual([
        { row_count: 2, rows: [] },
        { row_count: 1, rows: [] },
        {
          row_count: 2,
          rows: [
            { id: 1, amount: 20 },
            { id: 2, amount: 20 },
          ],
        },
      ]);
    });

    test('a failing statement rolls back the earlier ones and is named by its index', async () => {
      const failure = await failureOf(
        invoke({
          operation: 'transaction',
          statements: [
            { sql: 'INSERT INTO ledger VALUES (?, ?)', params: [100, 1] },
            { sql: 'INSERT INTO ledger VALUES (?, ?)', params: [101, 1] },
            { sql: 'SELECT * FROM nope' },
          ],
        }),
      );
      expect(failure.message).toBe(
        `statements.2: MYSQL query failed: Table '${database}.nope' doesn't exist (ER_NO_SUCH_TABLE 1146, SQLSTATE 42S02); the transaction was rolled back`,
      );
      expect(failure.nonRetryable).toBe(true);
      expect(failure.details).toEqual([{ code: 'ER_NO_SUCH_TABLE', errno: 1146, sqlstate: '42S02', statement: 2 }]);
      expect(await adminRows('SELECT id FROM ledger WHERE id >= 100')).toEqual([]);
    });
  });

  describe('long statements', () => {
    test('cancelling the activity kills the statement on the server and rejects with the abort reason', async () => {
      const controller = new AbortController();
      const reason = new CancelledFailure('activity cancelled');
      const marker = `probe_${Date.now()}`;
      const started = Date.now();
      const call = query(`SELECT SLEEP(5) AS ${marker}`, [], context({ signal: controller.signal }));
      setTimeout(() => controller.abort(reason), 200);
      await expect(call).rejects.toBe(reason);
      expect(Date.now() - started).toBeLessThan(1_200);
      expect(await adminRows("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND COMMAND <> 'Sleep'", [`SELECT SLEEP(5) AS ${marker}%`])).toEqual([]);
      await waitFor(async () => (await openConnections(database)) === 0);
    });

    test('after a cancelled call its pool still serves calls', async () => {
      // One connection in the pool: the next call only works if the cancelled one gave its slot back.
      const ctx = { poolKey: 'cancel@1' };
      const controller = new AbortController();
      const call = invoke({ sql: 'SELECT SLEEP(5)', pool_size: 1 }, context({ ...ctx, signal: controller.signal }));
      setTimeout(() => controller.abort(new CancelledFailure('cancelled')), 200);
      await expect(call).rejects.toBeInstanceOf(CancelledFailure);
      const answer = await invoke({ sql: 'SELECT 1 AS one', pool_size: 1 }, context(ctx));
      expect((answer as SqlQueryResult).rows).toEqual([{ one: 1 }]);
      await mysqlConnector.close?.('cancel@1');
    });
  });

  describe('connections', () => {
    test('calls with the same poolKey reuse one connection, and close(poolKey) closes it', async () => {
      const ctx = context({ poolKey: 'orders@1' });
      const first = await query('SELECT CONNECTION_ID() AS id', [], ctx);
      const second = await query('SELECT CONNECTION_ID() AS id', [], ctx);
      expect(second.rows[0].id).toBe(first.rows[0].id);

      await mysqlConnector.close?.('orders@1');
      await waitFor(async () => (await adminRows('SELECT ID FROM information_schema.PROCESSLIST WHERE ID = ?', [first.rows[0].id])).length === 0);
      const third = await query('SELECT CONNECTION_ID() AS id', [], ctx);
      expect(third.rows[0].id).not.toBe(first.rows[0].id);
      await mysqlConnector.close?.('orders@1');
    });

    test('a connector change that switches databases gets a pool of its own', async () => {
      const v1 = (await invoke({ sql: 'SELECT DATABASE() AS db' }, context({ poolKey: 'reports@1' }))) as SqlQueryResult;
      const v2 = (await invoke({ sql: 'SELECT DATABASE() AS db', database: otherDatabase }, context({ poolKey: 'reports@2' }))) as SqlQueryResult;
      expect(v1.rows[0].db).toBe(database);
      expect(v2.rows[0].db).toBe(otherDatabase);
      await mysqlConnector.close?.('reports@1');
      await mysqlConnector.close?.('reports@2');
    });

    test('inline calls (no poolKey) leave no connection open', async () => {
      await query('SELECT 1');
      await waitFor(async () => (await openConnections(database)) === 0);
    });

    test('a server that never answers fails with a retryable Timeout naming connect_timeout', async () => {
      const sockets: Socket[] = [];
      const silent: Server = createServer((socket) => sockets.push(socket));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
      const { port } = silent.address() as { port: number };
      try {
        const failure = await failureOf(invoke({ sql: 'SELECT 1', host: '127.0.0.1', port, connect_timeout: 300 }));
        expect(failure.type).toBe('Connector.External.Timeout');
        expect(failure.nonRetryable).toBe(false);
        expect(failure.message).toBe(`MYSQL 127.0.0.1:${port}: no connection within connect_timeout (300 ms)`);
      } finally {
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => silent.close(resolve));
      }
    });
  });

  describe('pools', () => {
    /** Which of `ids` are connections the server still has open. */
    const alive = async (ids: string[]) => (await adminRows('SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN (?) ORDER BY ID', [ids])).map((row) => String(row.ID));
    const sorted = (ids: string[]) => [...ids].sort((a, b) => Number(a) - Number(b));
    /** Runs a statement of `seconds` on a pooled connection of `type` and answers that connection's id. */
    const connectionOf = async (poolKey: string, seconds = 0, inputs: Record<string, unknown> = {}, type = mysqlConnector) => {
      const sql = `SELECT CONNECTION_ID() AS id, SLEEP(${seconds}) AS slept`;
      const result = (await type.invoke(mysqlSchema.parse({ ...base, ...inputs, sql }), context({ poolKey }))) as SqlQueryResult;
      return String(result.rows[0].id);
    };

    test("calls alternating between two versions do not close each other's pools, and only the newest version's pool stays open", async () => {
      // A pinned retry of version 1 runs while version 2 already runs: both get through.
      const [old1, new1, old2, new2] = await Promise.all([connectionOf('alt@1', 0.3), connectionOf('alt@2', 0.3), connectionOf('alt@1', 0.3), connectionOf('alt@2', 0.3)]);
      expect(new Set([old1, new1, old2, new2]).size).toBe(4);
      await waitFor(async () => (await alive([old1, old2, new1, new2])).join() === sorted([new1, new2]).join());

      // Another retry of version 1 opens a pool again, closed as soon as the call ends.
      const late = await connectionOf('alt@1');
      await waitFor(async () => (await alive([late])).length === 0);
      expect(mysqlConnector.pools?.list().filter((pool) => pool.poolKey.startsWith('alt@'))).toEqual([{ poolKey: 'alt@2', leases: 0, retired: false }]);
      await mysqlConnector.close?.('alt@2');
    });

    test('pools of many distinct override fingerprints stay under the cap, the least recently used closed first', async () => {
      const capped = createMysqlConnector({ pools: { maxPools: 3 } });
      try {
        // Each statement_timeout is a setting of its own, so each call gets a pool of its own.
        const ids: string[] = [];
        for (let i = 0; i < 8; i++) ids.push(await connectionOf('overrides@1', 0, { statement_timeout: `${10 + i}s` }, capped));
        expect(capped.pools?.list()).toHaveLength(3);
        await waitFor(async () => (await alive(ids)).join() === sorted(ids.slice(5)).join());

        // With every pool busy one more still opens; it is closed again once calls end.
        const busy = await Promise.all([20, 21, 22, 23].map((seconds) => connectionOf('overrides@1', 0.3, { statement_timeout: `${seconds}s` }, capped)));
        expect(capped.pools?.list()).toHaveLength(3);
        await waitFor(async () => (await alive([...ids, ...busy])).length === 3);
      } finally {
        await capped.close?.();
      }
    });

    test('a pool unused for longer than the idle timeout is closed with its connections', async () => {
      const shortLived = createMysqlConnector({ pools: { idleTimeoutMs: 200 } });
      try {
        const id = await connectionOf('deleted_connector@4', 0, {}, shortLived);
        expect(await alive([id])).toEqual([id]);
        // Well before the connections' own 30 s idle timeout.
        await waitFor(async () => (await alive([id])).length === 0);
        expect(shortLived.pools?.list()).toEqual([]);
      } finally {
        await shortLived.close?.();
      }
    });
  });

  describe('introspect', () => {
    test("lists the connector's database only, with tables, views, columns, types, nullability and defaults", async () => {
      await admin.query(`CREATE TABLE ${otherDatabase}.elsewhere (id INT)`);
      await admin.query('CREATE TABLE shop_items (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(80) NOT NULL, price DECIMAL(10, 2) DEFAULT 0, note TEXT)');
      await admin.query('CREATE VIEW shop_cheap AS SELECT id, name FROM shop_items WHERE price < 10');
      const result = (await mysqlConnector.introspect?.(mysqlSchema.parse(base), context())) as SqlIntrospection;
      expect(result.schemas.map((schema) => schema.name)).toEqual([database]);
      const tables = result.schemas[0].tables;
      expect(tables.find((table) => table.name === 'shop_items')).toEqual({
        name: 'shop_items',
        type: 'table',
        columns: [
          { name: 'id', type: 'bigint(20)', nullable: false },
          { name: 'name', type: 'varchar(80)', nullable: false },
          { name: 'price', type: 'decimal(10,2)', nullable: true, default: '0.00' },
          { name: 'note', type: 'text', nullable: true },
        ],
      });
      expect(tables.find((table) => table.name === 'shop_cheap')).toMatchObject({ type: 'view', columns: [{ name: 'id' }, { name: 'name' }] });
      expect(tables.map((table) => table.name)).not.toContain('elsewhere');
    });
  });

  describe('test()', () => {
    test('a reachable server is ok, with the target and the latency', async () => {
      const result = await mysqlConnector.test(mysqlSchema.parse(base), context());
      expect(result.ok).toBe(true);
      expect(result.message).toMatch(new RegExp(`^Connected to MYSQL at 127.0.0.1:3306, database ${database}, as root: SELECT 1 in \\d+ ms$`));
    });

    test('a closed port gives ok false and an ECONNREFUSED sentence, without throwing', async () => {
      const port = Number(new URL(await unusedLocalUrl()).port);
      const result = await mysqlConnector.test(mysqlSchema.parse({ ...base, port }), context());
      expect(result.ok).toBe(false);
      expect(result.message).toBe(`Could not reach MYSQL at 127.0.0.1:${port}: the connection was refused: nothing listens at that address and port (ECONNREFUSED).`);
    });

    test('a wrong password is refused with a sentence naming the user, never the password', async () => {
      const right = await mysqlConnector.test(mysqlSchema.parse({ ...base, user: lockedUser, password: lockedPassword }), context());
      expect(right.ok).toBe(true);

      const inputs = mysqlSchema.parse({ ...base, user: lockedUser, password: 'pw-SECRET-wrong' });
      const result = await mysqlConnector.test(inputs, context());
      expect(result.ok).toBe(false);
      expect(result.message).toContain(`the server refused user ${lockedUser}: wrong password or no access`);
      expect(result.message).toContain('1045');
      expect(result.message).not.toContain('pw-SECRET');

      const failure = await failureOf(mysqlConnector.invoke({ ...inputs, sql: 'SELECT 1' }, context()));
      expect(failure.nonRetryable).toBe(true);
      expect(`${failure.message} ${JSON.stringify(failure.details)}`).not.toContain('pw-SECRET');
    });
  });

  describe('schema', () => {
    test('fills in the defaults', () => {
      const inputs = mysqlSchema.parse({ database: 'd', user: 'u', sql: 'SELECT 1' });
      expect(inputs).toMatchObject({ host: '127.0.0.1', port: 3306, tls: false, statement_timeout: 30_000, pool_size: 5, connect_timeout: 10_000, operation: 'query' });
    });

    test('an unknown key is rejected by name', () => {
      const result = mysqlSchema.safeParse({ database: 'd', user: 'u', sql: 'SELECT 1', bogus_key: 1 });
      expect(result.success).toBe(false);
      expect(JSON.stringify(result.error?.issues)).toContain('bogus_key');
    });

    test('fields of the other operation are rejected, naming the field', () => {
      const sqlInTransaction = mysqlSchema.safeParse({ database: 'd', user: 'u', operation: 'transaction', sql: 'SELECT 1', statements: [{ sql: 'SELECT 1' }] });
      expect(sqlInTransaction.error?.issues.map((issue) => issue.path)).toEqual([['sql']]);
      const paramsInTransaction = mysqlSchema.safeParse({ database: 'd', user: 'u', operation: 'transaction', params: [1], statements: [{ sql: 'SELECT ?' }] });
      expect(paramsInTransaction.error?.issues.map((issue) => issue.path)).toEqual([['params']]);
      const statementsInQuery = mysqlSchema.safeParse({ database: 'd', user: 'u', sql: 'SELECT 1', statements: [{ sql: 'SELECT 1' }] });
      expect(statementsInQuery.error?.issues.map((issue) => issue.path)).toEqual([['statements']]);
    });
  });

  describe('describeCall', () => {
    test('gives the operation and the first keyword, never the parameters', () => {
      expect(mysqlConnector.describeCall?.({ sql: '-- nightly\nupdate t set a = ?', params: ['secret'] })).toBe('query UPDATE');
      expect(mysqlConnector.describeCall?.({ operation: 'transaction', statements: [{}] })).toBe('transaction 1 statement');
    });
  });
});
