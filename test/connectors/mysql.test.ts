import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { createMysqlConnector, mysqlConnector, mysqlSchema } from '../../connectors/mysql';
import type { SqlIntrospection, SqlQueryResult } from '../../connectors/sql-common';
import { failureOf, invokeContext as context } from '../support/connector-calls';
import { sqlSuite } from './sql-suite';

/** The MariaDB server of this machine: root with an empty password, as the dev stack sets it up. */
const SERVER = { host: '127.0.0.1', port: 3306, user: 'root', password: '' };

describe('MYSQL connector', () => {
  const suffix = randomBytes(4).toString('hex');
  const database = `tc_mysql_${suffix}`;
  const otherDatabase = `tc_mysql_${suffix}_other`;
  const lockedUser = `tc_user_${suffix}`;
  const lockedPassword = `pw-SECRET-${suffix}`;
  const base = { ...SERVER, database };
  let admin: mysql.Connection;

  const query = async (sql: string, params: unknown[] = []) => (await mysqlConnector.invoke(mysqlSchema.parse({ ...base, sql, params }), context())) as SqlQueryResult;
  const adminRows = async (sql: string, params: unknown[] = []) => (await admin.query<mysql.RowDataPacket[]>(sql, params))[0];

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

  sqlSuite({
    name: 'MYSQL',
    connector: mysqlConnector,
    schema: mysqlSchema,
    createConnector: createMysqlConnector,
    defaultPort: 3306,
    base: () => base,
    database: () => database,
    otherDatabase: () => otherDatabase,
    placeholder: () => '?',
    admin: (sql) => adminRows(sql),
    transactionalTable: ' ENGINE=InnoDB',
    sleep: (seconds) => `SLEEP(${seconds})`,
    connectionId: 'CONNECTION_ID()',
    currentDatabase: 'DATABASE()',
    alive: async (ids) => (await adminRows('SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN (?) ORDER BY ID', [ids])).map((row) => String(row.ID)),
    openConnections: async (db) => (await adminRows('SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()', [db])).length,
    runningStatements: async (marker) =>
      (await adminRows("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND COMMAND <> 'Sleep' AND ID <> CONNECTION_ID()", [`%${marker}%`])).length,
    missingTable: () => ({
      message: `MYSQL query failed: Table '${database}.nope' doesn't exist (ER_NO_SUCH_TABLE 1146, SQLSTATE 42S02)`,
      details: { code: 'ER_NO_SUCH_TABLE', errno: 1146, sqlstate: '42S02' },
    }),
    duplicateKey: ["MYSQL query failed: Duplicate entry for key 'email' (ER_DUP_ENTRY 1062, SQLSTATE 23000)"],
  });

  describe('query (MYSQL)', () => {
    test('an INSERT into an AUTO_INCREMENT table answers with insert_id', async () => {
      await admin.query('CREATE TABLE tickets (id INT AUTO_INCREMENT PRIMARY KEY, title TEXT NOT NULL)');
      expect(await query('INSERT INTO tickets (title) VALUES (?)', ['a'])).toEqual({ rows: [], row_count: 1, fields: [], insert_id: 1 });
      expect(await adminRows('SELECT id, title FROM tickets')).toEqual([{ id: 1, title: 'a' }]);
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

  describe('test() (MYSQL)', () => {
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
});
