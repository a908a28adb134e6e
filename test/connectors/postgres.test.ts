import { createServer, type Server, type Socket } from 'node:net';
import { CancelledFailure } from '@temporalio/common';
import { Client } from 'pg';
import { createPostgresConnector, postgresConnector, postgresSchema } from '../../connectors/postgres';
import type { SqlIntrospection, SqlQueryResult, SqlTransactionResult } from '../../connectors/sql-common';
import type { InvokeContext } from '../../connectors/types';
import { createScratchDatabase, type ScratchDatabase } from '../../scripts/devstack/postgres';
import { unusedLocalUrl } from '../fixtures/http-server';
import { failureOf, invokeContext as context, postgresInputs } from '../support/connector-calls';

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 3_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('POSTGRES connector', () => {
  let scratch: ScratchDatabase;
  let other: ScratchDatabase;
  let admin: Client;
  let base: Record<string, unknown>;

  const invoke = (inputs: Record<string, unknown>, ctx: InvokeContext = context()) => postgresConnector.invoke(postgresSchema.parse({ ...base, ...inputs }), ctx);
  const query = async (sql: string, params: unknown[] = [], ctx?: InvokeContext) => (await invoke({ sql, params }, ctx)) as SqlQueryResult;
  const activeBackends = async (marker: string) =>
    (await admin.query("SELECT pid FROM pg_stat_activity WHERE query LIKE $1 AND state = 'active' AND pid <> pg_backend_pid()", [`%${marker}%`])).rowCount;
  const openConnections = async (database: string) =>
    (await admin.query("SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'temporal-connectors'", [database])).rowCount;

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

  describe('query', () => {
    test('parameters travel as values: quotes and a DROP TABLE are stored verbatim', async () => {
      await admin.query('CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)');
      const hostile = `it's "quoted"'); DROP TABLE notes; --`;
      const inserted = await query('INSERT INTO notes (body) VALUES ($1) RETURNING id', [hostile]);
      expect(inserted.row_count).toBe(1);
      const read = await query('SELECT body FROM notes WHERE id = $1', [inserted.rows[0].id]);
      expect(read.rows).toEqual([{ body: hostile }]);
      expect((await admin.query('SELECT count(*)::int AS n FROM notes')).rows[0].n).toBe(1);
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

    test('row_count of an UPDATE is the number of rows changed', async () => {
      await admin.query('CREATE TABLE counters (name text PRIMARY KEY, n int NOT NULL)');
      await admin.query("INSERT INTO counters VALUES ('a', 0), ('b', 0), ('c', 5)");
      const result = await query('UPDATE counters SET n = n + 1 WHERE n < $1', [5]);
      expect(result).toEqual({ rows: [], row_count: 2, fields: [] });
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

    test('a failing statement is a non-retryable failure with the server message and SQLSTATE', async () => {
      const failure = await failureOf(query('SELECT * FROM nope'));
      expect(failure.type).toBe('Connector.External.Error');
      expect(failure.nonRetryable).toBe(true);
      expect(failure.message).toBe('POSTGRES query failed: relation "nope" does not exist (42P01)');
      expect(failure.details).toEqual([{ code: '42P01' }]);
      expect(failure.cause).toBeUndefined();
    });

    test('a unique violation names the constraint but never the duplicate value', async () => {
      await admin.query('CREATE TABLE members (email text UNIQUE)');
      await query('INSERT INTO members VALUES ($1)', ['ada@example.com']);
      const failure = await failureOf(query('INSERT INTO members VALUES ($1)', ['ada@example.com']));
      expect(failure.nonRetryable).toBe(true);
      expect(failure.message).toContain('members_email_key');
      expect(failure.message).toContain('23505');
      expect(failure.message).not.toContain('ada@example.com');
    });

    test('only one statement runs per query', async () => {
      const failure = await failureOf(query('SELECT 1; SELECT 2'));
      expect(failure.message).toContain('42601');
    });

    test('statement_timeout stops a long statement with a retryable Timeout failure', async () => {
      const started = Date.now();
      const failure = await failureOf(invoke({ sql: 'SELECT pg_sleep(2)', statement_timeout: '200ms' }));
      expect(Date.now() - started).toBeLessThan(1_500);
      expect(failure.type).toBe('Connector.External.Timeout');
      expect(failure.nonRetryable).toBe(false);
      expect(failure.message).toContain('statement_timeout (200 ms)');
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
      await admin.query('CREATE TABLE ledger (id int PRIMARY KEY, amount int NOT NULL)');
    });

    test('statements run in order in one transaction, each with its result', async () => {
      const result = (await invoke({
        operation: 'transaction',
        statements: [
          { sql: 'INSERT INTO ledger VALUES ($1, $2), ($3, $4)', params: [1, 10, 2, 20] },
          { sql: 'UPDATE ledger SET amount = amount * 2 WHERE id = $1', params: [1] },
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
            { sql: 'INSERT INTO ledger VALUES ($1, $2)', params: [100, 1] },
            { sql: 'INSERT INTO ledger VALUES ($1, $2)', params: [101, 1] },
            { sql: 'SELECT * FROM nope' },
          ],
        }),
      );
      expect(failure.message).toBe('statements.2: POSTGRES query failed: relation "nope" does not exist (42P01); the transaction was rolled back');
      expect(failure.nonRetryable).toBe(true);
      expect(failure.details).toEqual([{ code: '42P01', statement: 2 }]);
      expect((await admin.query('SELECT id FROM ledger WHERE id >= 100')).rowCount).toBe(0);
    });
  });

  describe('long statements', () => {
    test('cancelling the activity stops the statement on the server and rejects with the abort reason', async () => {
      const controller = new AbortController();
      const reason = new CancelledFailure('activity cancelled');
      const marker = `probe_${Date.now()}`;
      const started = Date.now();
      const call = query(`SELECT pg_sleep(5) AS ${marker}`, [], context({ signal: controller.signal }));
      setTimeout(() => controller.abort(reason), 200);
      await expect(call).rejects.toBe(reason);
      expect(Date.now() - started).toBeLessThan(1_200);
      expect(await activeBackends(marker)).toBe(0);
      await waitFor(async () => (await openConnections(scratch.name)) === 0);
    });

    test('a statement longer than 5 s heartbeats while it runs', async () => {
      const heartbeat = jest.fn();
      await query('SELECT pg_sleep(5.3)', [], context({ heartbeat }));
      expect(heartbeat).toHaveBeenCalledTimes(1);
      expect(heartbeat.mock.calls[0][0]).toEqual({ running_ms: expect.any(Number) });
    }, 15_000);

    test('after a cancelled call its pool still serves calls', async () => {
      // One connection in the pool: the next call only works if the cancelled one gave its slot back.
      const ctx = { poolKey: 'cancel@1' };
      const controller = new AbortController();
      const call = invoke({ sql: 'SELECT pg_sleep(5)', pool_size: 1 }, context({ ...ctx, signal: controller.signal }));
      setTimeout(() => controller.abort(new CancelledFailure('cancelled')), 200);
      await expect(call).rejects.toBeInstanceOf(CancelledFailure);
      const answer = await invoke({ sql: 'SELECT 1 AS one', pool_size: 1 }, context(ctx));
      expect((answer as SqlQueryResult).rows).toEqual([{ one: 1 }]);
      await postgresConnector.close?.('cancel@1');
    });
  });

  describe('connections', () => {
    test('calls with the same poolKey reuse one connection, and close(poolKey) closes it', async () => {
      const ctx = context({ poolKey: 'orders@1' });
      const first = await query('SELECT pg_backend_pid() AS pid', [], ctx);
      const second = await query('SELECT pg_backend_pid() AS pid', [], ctx);
      expect(second.rows[0].pid).toBe(first.rows[0].pid);

      await postgresConnector.close?.('orders@1');
      await waitFor(async () => (await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [first.rows[0].pid])).rowCount === 0);
      const third = await query('SELECT pg_backend_pid() AS pid', [], ctx);
      expect(third.rows[0].pid).not.toBe(first.rows[0].pid);
      await postgresConnector.close?.('orders@1');
    });

    test('a connector change that switches databases gets a pool of its own', async () => {
      const v1 = (await invoke({ sql: 'SELECT current_database() AS db' }, context({ poolKey: 'reports@1' }))) as SqlQueryResult;
      const v2 = (await invoke({ sql: 'SELECT current_database() AS db', database: other.name }, context({ poolKey: 'reports@2' }))) as SqlQueryResult;
      expect(v1.rows[0].db).toBe(scratch.name);
      expect(v2.rows[0].db).toBe(other.name);
      await postgresConnector.close?.('reports@1');
      await postgresConnector.close?.('reports@2');
    });

    test('inline calls (no poolKey) leave no connection open', async () => {
      await query('SELECT 1');
      await waitFor(async () => (await openConnections(scratch.name)) === 0);
    });

    test('a server that never answers fails with a retryable Timeout naming connect_timeout, pooled or not', async () => {
      const sockets: Socket[] = [];
      const silent: Server = createServer((socket) => sockets.push(socket));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
      const { port } = silent.address() as { port: number };
      try {
        for (const poolKey of [undefined, 'silent@1']) {
          const failure = await failureOf(invoke({ sql: 'SELECT 1', host: '127.0.0.1', port, connect_timeout: 300 }, context({ poolKey })));
          expect(failure.type).toBe('Connector.External.Timeout');
          expect(failure.nonRetryable).toBe(false);
          expect(failure.message).toBe(`POSTGRES 127.0.0.1:${port}: no connection within connect_timeout (300 ms)`);
        }
      } finally {
        await postgresConnector.close?.('silent@1');
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => silent.close(resolve));
      }
    });
  });

  describe('pools', () => {
    /** Which of `pids` are backends the server still has. */
    const alive = async (pids: number[]) => (await admin.query('SELECT pid FROM pg_stat_activity WHERE pid = ANY($1) ORDER BY pid', [pids])).rows.map((row) => row.pid as number);
    /** Runs a statement of `seconds` on a pooled connection of `type` and answers that connection's backend pid. */
    const backendOf = async (poolKey: string, seconds = 0, type = postgresConnector) => {
      const sql = `SELECT pg_backend_pid() AS pid FROM pg_sleep(${seconds})`;
      const result = (await type.invoke(postgresSchema.parse({ ...base, sql }), context({ poolKey }))) as SqlQueryResult;
      return result.rows[0].pid as number;
    };

    test("calls alternating between two versions do not close each other's pools, and only the newest version's pool stays open", async () => {
      // One connection per pool: a closed pool would fail the call queued behind the first one.
      const [old1, new1, old2, new2] = await Promise.all(
        ['alt@1', 'alt@2', 'alt@1', 'alt@2'].map((poolKey) =>
          postgresConnector.invoke(postgresSchema.parse({ ...base, pool_size: 1, sql: 'SELECT pg_backend_pid() AS pid FROM pg_sleep(0.3)' }), context({ poolKey })),
        ),
      );
      const pid = (result: unknown) => (result as SqlQueryResult).rows[0].pid as number;
      expect(pid(old2)).toBe(pid(old1));
      expect(pid(new2)).toBe(pid(new1));
      await waitFor(async () => (await alive([pid(old1), pid(new1)])).join() === String(pid(new1)));

      // Another retry of version 1 opens a pool again, closed as soon as the call ends.
      const late = await backendOf('alt@1');
      await waitFor(async () => (await alive([late])).length === 0);
      expect(postgresConnector.pools?.list().filter((pool) => pool.poolKey.startsWith('alt@'))).toEqual([{ poolKey: 'alt@2', leases: 0, retired: false }]);
      await postgresConnector.close?.('alt@2');
    });

    test('a pool unused for longer than the idle timeout is closed with its connections', async () => {
      const shortLived = createPostgresConnector({ pools: { idleTimeoutMs: 200 } });
      try {
        const pid = await backendOf('deleted_connector@4', 0, shortLived);
        expect(await alive([pid])).toEqual([pid]);
        // Well before the connections' own 30 s idle timeout.
        await waitFor(async () => (await alive([pid])).length === 0);
        expect(shortLived.pools?.list()).toEqual([]);
      } finally {
        await shortLived.close?.();
      }
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

  describe('test()', () => {
    test('a reachable server is ok, with the target and the latency', async () => {
      const result = await postgresConnector.test(postgresSchema.parse(base), context());
      expect(result.ok).toBe(true);
      expect(result.message).toMatch(new RegExp(`^Connected to POSTGRES at .+, database ${scratch.name}, as .+: SELECT 1 in \\d+ ms$`));
      expect(result.latency_ms).toBeGreaterThanOrEqual(0);
    });

    test('a closed port gives ok false and an ECONNREFUSED sentence, without throwing', async () => {
      const port = Number(new URL(await unusedLocalUrl()).port);
      const result = await postgresConnector.test(postgresSchema.parse({ ...base, host: '127.0.0.1', port }), context());
      expect(result.ok).toBe(false);
      expect(result.message).toBe(
        `Could not reach POSTGRES at 127.0.0.1:${port}: the connection was refused: nothing listens at that address and port (ECONNREFUSED).`,
      );
    });

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

  describe('schema', () => {
    test('fills in the defaults', () => {
      const inputs = postgresSchema.parse({ database: 'd', user: 'u', sql: 'SELECT 1' });
      expect(inputs).toMatchObject({ host: '127.0.0.1', port: 5432, tls: false, statement_timeout: 30_000, pool_size: 5, connect_timeout: 10_000, operation: 'query' });
      expect(postgresSchema.parse({ database: 'd', user: 'u', sql: 'x', tls: {} }).tls).toEqual({ reject_unauthorized: true });
    });

    test('an unknown key is rejected by name', () => {
      const result = postgresSchema.safeParse({ database: 'd', user: 'u', sql: 'SELECT 1', bogus_key: 1 });
      expect(result.success).toBe(false);
      expect(JSON.stringify(result.error?.issues)).toContain('bogus_key');
    });

    test('fields of the other operation are rejected, naming the field', () => {
      const sqlInTransaction = postgresSchema.safeParse({ database: 'd', user: 'u', operation: 'transaction', sql: 'SELECT 1', statements: [{ sql: 'SELECT 1' }] });
      expect(sqlInTransaction.success).toBe(false);
      expect(sqlInTransaction.error?.issues.map((issue) => issue.path)).toEqual([['sql']]);

      const statementsInQuery = postgresSchema.safeParse({ database: 'd', user: 'u', sql: 'SELECT 1', statements: [{ sql: 'SELECT 1' }] });
      expect(statementsInQuery.error?.issues.map((issue) => issue.path)).toEqual([['statements']]);

    });

    test('a profile without sql is valid (test and introspect need none), but invoking it is refused naming sql', async () => {
      const profile = postgresSchema.parse({ database: 'd', user: 'u', port: 1 });
      const failure = await failureOf(postgresConnector.invoke(profile, context()));
      expect(failure.type).toBe('Connector.InvalidInput');
      expect(failure.message).toBe('POSTGRES: sql is required for operation query');
      const transaction = postgresSchema.parse({ database: 'd', user: 'u', port: 1, operation: 'transaction' });
      expect((await failureOf(postgresConnector.invoke(transaction, context()))).message).toContain('statements are required');
    });

    test('pool_size, statement_timeout and statements are bounded', () => {
      const base = { database: 'd', user: 'u', sql: 'SELECT 1' };
      expect(postgresSchema.safeParse({ ...base, pool_size: 0 }).success).toBe(false);
      expect(postgresSchema.safeParse({ ...base, pool_size: 101 }).success).toBe(false);
      expect(postgresSchema.safeParse({ ...base, statement_timeout: 'soon' }).success).toBe(false);
      expect(postgresSchema.safeParse({ database: 'd', user: 'u', operation: 'transaction', statements: [] }).success).toBe(false);
    });
  });

  describe('describeCall', () => {
    test('gives the operation and the first keyword, never the parameters', () => {
      expect(postgresConnector.describeCall?.({ sql: '  /* report */ select * from t where email = $1', params: ['ada@example.com'] })).toBe('query SELECT');
      expect(postgresConnector.describeCall?.({ operation: 'transaction', statements: [{}, {}, {}] })).toBe('transaction 3 statements');
    });

    test('never throws on partial inputs', () => {
      expect(postgresConnector.describeCall?.({})).toBe('query');
      expect(postgresConnector.describeCall?.({ operation: 'drop', sql: 42 })).toBeUndefined();
    });
  });
});
