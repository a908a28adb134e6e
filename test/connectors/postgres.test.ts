import { Client } from 'pg';
import { createPostgresConnector, postgresConnector, postgresSchema } from '../../connectors/postgres';
import type { SqlIntrospection, SqlQueryResult } from '../../connectors/sql-common';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import { failureOf, invokeContext as context, postgresInputs } from '../support/connector-calls';
import { sqlSuite } from './sql-suite';

describe('POSTGRES connector', () => {
  let scratch: ScratchDatabase;
  let other: ScratchDatabase;
  let admin: Client;
  let base: Record<string, unknown>;

  const query = async (sql: string, params: unknown[] = []) => (await postgresConnector.invoke(postgresSchema.parse({ ...base, sql, params }), context())) as SqlQueryResult;

  beforeAll(async () => {
    scratch = await createScratchDatabase('tc_pg');
    other = await createScratchDatabase('tc_pg_other');
    base = postgresInputs(scratch);
    admin = new Client({ connectionString: scratch.url });
    await admin.connect();
  });

  afterAll(async () => {
    await postgresConnector.close?.();
    await admin?.end();
    await scratch?.drop();
    await other?.drop();
  });

  sqlSuite({
    name: 'POSTGRES',
    connector: postgresConnector,
    schema: postgresSchema,
    createConnector: createPostgresConnector,
    defaultPort: 5432,
    base: () => base,
    database: () => scratch.name,
    otherDatabase: () => other.name,
    placeholder: (n) => `$${n}`,
    admin: async (sql) => (await admin.query(sql)).rows,
    transactionalTable: '',
    sleep: (seconds) => `pg_sleep(${seconds})`,
    connectionId: 'pg_backend_pid()',
    currentDatabase: 'current_database()',
    alive: async (ids) =>
      (await admin.query('SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[]) ORDER BY pid', [ids.map(Number)])).rows.map((row) => String(row.pid)),
    openConnections: async (database) =>
      (await admin.query("SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'temporal-connectors'", [database])).rowCount ?? 0,
    runningStatements: async (marker) =>
      (await admin.query("SELECT pid FROM pg_stat_activity WHERE query LIKE $1 AND state = 'active' AND pid <> pg_backend_pid()", [`%${marker}%`])).rowCount ?? 0,
    missingTable: () => ({ message: 'POSTGRES query failed: relation "nope" does not exist (42P01)', details: { code: '42P01' } }),
    duplicateKey: ['members_email_key', '23505'],
  });

  describe('query (POSTGRES)', () => {
    test('an INSERT ... RETURNING answers with the returned rows', async () => {
      await admin.query('CREATE TABLE tickets (id serial PRIMARY KEY, title text NOT NULL)');
      const inserted = await query('INSERT INTO tickets (title) VALUES ($1), ($2) RETURNING id', ['a', 'b']);
      expect(inserted).toEqual({ rows: [{ id: 1 }, { id: 2 }], row_count: 2, fields: [{ name: 'id', type: 'int4' }] });
    });

    test('a query returns rows, row_count and fields named by type', async () => {
      const result = await query('SELECT $1::int AS n, $2::text AS label, $3::jsonb AS doc', [7, 'seven', { a: [1, 2] }]);
      expect(result).toEqual({
        rows: [{ n: 7, label: 'seven', doc: { a: [1, 2] } }],
        row_count: 1,
        fields: [
          { name: 'n', type: 'int4' },
          { name: 'label', type: 'text' },
          { name: 'doc', type: 'jsonb' },
        ],
      });
    });

    test('rows are JSON-safe: timestamps as ISO strings, bytea as base64, bigint as strings, dates as written', async () => {
      const result = await query(
        "SELECT '2024-01-02 03:04:05+00'::timestamptz AS at, decode('0102ff', 'hex') AS bin, 9007199254740993::int8 AS big, " +
          "'2024-01-02'::date AS day, '2024-01-02 03:04:05.123456'::timestamp AS local_time, 'NaN'::float8 AS nan",
      );
      expect(result.rows).toEqual([
        { at: '2024-01-02T03:04:05.000Z', bin: 'AQL/', big: '9007199254740993', day: '2024-01-02', local_time: '2024-01-02 03:04:05.123456', nan: 'NaN' },
      ]);
      expect(JSON.parse(JSON.stringify(result.rows))).toEqual(result.rows);
      expect(result.fields.map((field) => field.type)).toEqual(['timestamptz', 'bytea', 'int8', 'date', 'timestamp', 'float8']);
    });

    test('only one statement runs per query', async () => {
      const failure = await failureOf(query('SELECT 1; SELECT 2'));
      expect(failure.message).toContain('42601');
    });
  });

  describe('introspect', () => {
    test('lists a created table and view with their columns, types, nullability and defaults', async () => {
      await admin.query('CREATE SCHEMA shop');
      await admin.query("CREATE TABLE shop.items (id bigserial PRIMARY KEY, name varchar(80) NOT NULL, tags text[], price numeric(10, 2) DEFAULT 0)");
      await admin.query('CREATE VIEW shop.cheap_items AS SELECT id, name FROM shop.items WHERE price < 10');
      const result = (await postgresConnector.introspect?.(postgresSchema.parse(base), context())) as SqlIntrospection;
      const names = result.schemas.map((schema) => schema.name);
      expect(names).toContain('public');
      expect(names).not.toContain('pg_catalog');
      expect(names).not.toContain('information_schema');
      const shop = result.schemas.find((schema) => schema.name === 'shop');
      expect(shop?.tables).toEqual([
        {
          name: 'cheap_items',
          type: 'view',
          columns: [
            { name: 'id', type: 'bigint', nullable: true },
            { name: 'name', type: 'character varying', nullable: true },
          ],
        },
        {
          name: 'items',
          type: 'table',
          columns: [
            { name: 'id', type: 'bigint', nullable: false, default: "nextval('shop.items_id_seq'::regclass)" },
            { name: 'name', type: 'character varying', nullable: false },
            { name: 'tags', type: '_text', nullable: true },
            { name: 'price', type: 'numeric', nullable: true, default: '0' },
          ],
        },
      ]);
    });
  });

  describe('test() (POSTGRES)', () => {
    test('a refused login says which user, never the password', async () => {
      const inputs = postgresSchema.parse({ ...base, user: 'no_such_role', password: 'pw-SECRET-1' });
      const result = await postgresConnector.test(inputs, context());
      expect(result.ok).toBe(false);
      expect(result.message).toContain('the server refused user no_such_role: wrong password or no access');
      expect(result.message).not.toContain('pw-SECRET-1');

      const failure = await failureOf(postgresConnector.invoke({ ...inputs, sql: 'SELECT 1' }, context()));
      expect(failure.nonRetryable).toBe(true);
      expect(failure.message).toContain('the server refused user no_such_role: wrong password or no access');
      expect(`${failure.message} ${JSON.stringify(failure.details)}`).not.toContain('pw-SECRET-1');
    });
  });
});
