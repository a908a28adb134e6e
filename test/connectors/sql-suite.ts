// The tests every SQL connector type passes, whatever its database: what the SQL template
// (connectors/sql.ts) promises. postgres.test.ts and mysql.test.ts run them against their server,
// beside their driver's own cases.
import { createServer, type Server, type Socket } from 'node:net';
import { CancelledFailure } from '@temporalio/common';
import type { SqlConnectorOptions, SqlSchema } from '../../connectors/sql';
import type { SqlQueryResult, SqlTransactionResult } from '../../connectors/sql-common';
import type { ConnectorType, InvokeContext } from '../../connectors/types';
import { unusedLocalUrl } from '../fixtures/http-server';
import { failureOf, invokeContext as context } from '../support/connector-calls';

/** What the shared suite needs of one database: its connector, its server, and its SQL dialect. */
export interface SqlSuiteTarget {
  name: string;
  connector: ConnectorType<SqlSchema>;
  schema: SqlSchema;
  createConnector(options: SqlConnectorOptions): ConnectorType<SqlSchema>;
  defaultPort: number;
  /** Connection inputs of the scratch database (known once the file's beforeAll has run). */
  base(): Record<string, unknown>;
  /** Name of the scratch database, and of a second one on the same server. */
  database(): string;
  otherDatabase(): string;
  /** The placeholder of the n-th parameter, from 1: `$1` or `?`. */
  placeholder(n: number): string;
  /** Runs SQL without parameters as the admin, in the scratch database. */
  admin(sql: string): Promise<Record<string, unknown>[]>;
  /** Appended to CREATE TABLE of tables that take part in transactions. */
  transactionalTable: string;
  /** A SQL expression that takes `seconds` to compute. */
  sleep(seconds: number): string;
  /** A SQL expression giving the server's id of the connection running it. */
  connectionId: string;
  /** A SQL expression giving the current database. */
  currentDatabase: string;
  /** Which of these connection ids the server still has, in ascending order. */
  alive(ids: string[]): Promise<string[]>;
  /** Connections of the connector to `database`, leaving out the admin's own. */
  openConnections(database: string): Promise<number>;
  /** Statements still running whose text contains `marker`. */
  runningStatements(marker: string): Promise<number>;
  /** The failure of `SELECT * FROM nope`: its message and details. */
  missingTable(): { message: string; details: Record<string, unknown> };
  /** What the failure of a duplicate key on `members.email` says (besides never saying the value). */
  duplicateKey: string[];
}

/** Polls `condition` every 25 ms until it holds; fails after `timeoutMs`. */
export async function waitFor(condition: () => Promise<boolean>, timeoutMs = 3_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Registers the shared SQL tests for `target`; call it inside the type's describe, after its beforeAll. */
export function sqlSuite(target: SqlSuiteTarget): void {
  const { connector, schema } = target;
  const p = target.placeholder;
  const invoke = (inputs: Record<string, unknown>, ctx: InvokeContext = context(), type = connector) =>
    type.invoke(schema.parse({ ...target.base(), ...inputs }), ctx);
  const query = async (sql: string, params: unknown[] = [], ctx?: InvokeContext) => (await invoke({ sql, params }, ctx)) as SqlQueryResult;
  /** Runs a statement of `seconds` on a pooled connection of `type` and answers that connection's id. */
  const connectionOf = async (poolKey: string, seconds = 0, inputs: Record<string, unknown> = {}, type = connector) => {
    const sql = `SELECT ${target.connectionId} AS id, ${target.sleep(seconds)} AS slept`;
    const result = (await invoke({ ...inputs, sql }, context({ poolKey }), type)) as SqlQueryResult;
    return String(result.rows[0].id);
  };
  const sorted = (ids: string[]) => [...ids].sort((a, b) => Number(a) - Number(b));

  describe('query (shared SQL suite)', () => {
    test('parameters travel as values: quotes and a DROP TABLE are stored verbatim', async () => {
      await target.admin('CREATE TABLE notes (id INT PRIMARY KEY, body TEXT NOT NULL)');
      const hostile = `it's "quoted"'); DROP TABLE notes; --`;
      const inserted = await query(`INSERT INTO notes (id, body) VALUES (${p(1)}, ${p(2)})`, [1, hostile]);
      expect(inserted.row_count).toBe(1);
      const read = await query(`SELECT body FROM notes WHERE id = ${p(1)}`, [1]);
      expect(read.rows).toEqual([{ body: hostile }]);
      expect(await target.admin('SELECT id FROM notes')).toHaveLength(1);
    });

    test('row_count of an UPDATE is the number of rows changed', async () => {
      await target.admin('CREATE TABLE counters (name VARCHAR(10) PRIMARY KEY, n INT NOT NULL)');
      await target.admin("INSERT INTO counters VALUES ('a', 0), ('b', 0), ('c', 5)");
      const result = await query(`UPDATE counters SET n = n + 1 WHERE n < ${p(1)}`, [5]);
      expect(result).toEqual({ rows: [], row_count: 2, fields: [] });
    });

    test('a failing statement is a non-retryable failure with the server message and error code', async () => {
      const failure = await failureOf(query('SELECT * FROM nope'));
      expect(failure.type).toBe('Connector.External.Error');
      expect(failure.nonRetryable).toBe(true);
      expect(failure.message).toBe(target.missingTable().message);
      expect(failure.details).toEqual([target.missingTable().details]);
      expect(failure.cause).toBeUndefined();
    });

    test('a duplicate key names the key but never the duplicate value', async () => {
      await target.admin('CREATE TABLE members (email VARCHAR(100) UNIQUE)');
      await query(`INSERT INTO members VALUES (${p(1)})`, ['ada@example.com']);
      const failure = await failureOf(query(`INSERT INTO members VALUES (${p(1)})`, ['ada@example.com']));
      expect(failure.nonRetryable).toBe(true);
      for (const part of target.duplicateKey) expect(failure.message).toContain(part);
      expect(failure.message).not.toContain('ada@example.com');
    });

    test('statement_timeout stops a long statement with a retryable Timeout failure, pooled or not', async () => {
      for (const poolKey of [undefined, 'slow@1']) {
        const started = Date.now();
        const failure = await failureOf(invoke({ sql: `SELECT ${target.sleep(2)}`, statement_timeout: '200ms' }, context({ poolKey })));
        expect(Date.now() - started).toBeLessThan(1_500);
        expect(failure.type).toBe('Connector.External.Timeout');
        expect(failure.nonRetryable).toBe(false);
        expect(failure.message).toContain('statement_timeout (200 ms)');
      }
      await connector.close?.('slow@1');
    });

    test('a signal aborted before the call rejects with its reason without connecting', async () => {
      const controller = new AbortController();
      const reason = new CancelledFailure('cancelled before start');
      controller.abort(reason);
      await expect(query('SELECT 1', [], context({ signal: controller.signal }))).rejects.toBe(reason);
    });
  });

  describe('transaction (shared SQL suite)', () => {
    beforeAll(async () => {
      await target.admin(`CREATE TABLE ledger (id INT PRIMARY KEY, amount INT NOT NULL)${target.transactionalTable}`);
    });

    test('statements run in order in one transaction, each with its result', async () => {
      const result = (await invoke({
        operation: 'transaction',
        statements: [
          { sql: `INSERT INTO ledger VALUES (${p(1)}, ${p(2)}), (${p(3)}, ${p(4)})`, params: [1, 10, 2, 20] },
          { sql: `UPDATE ledger SET amount = amount * 2 WHERE id = ${p(1)}`, params: [1] },
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
            { sql: `INSERT INTO ledger VALUES (${p(1)}, ${p(2)})`, params: [100, 1] },
            { sql: `INSERT INTO ledger VALUES (${p(1)}, ${p(2)})`, params: [101, 1] },
            { sql: 'SELECT * FROM nope' },
          ],
        }),
      );
      expect(failure.message).toBe(`statements.2: ${target.missingTable().message}; the transaction was rolled back`);
      expect(failure.nonRetryable).toBe(true);
      expect(failure.details).toEqual([{ ...target.missingTable().details, statement: 2 }]);
      expect(await target.admin('SELECT id FROM ledger WHERE id >= 100')).toEqual([]);
    });
  });

  describe('long statements (shared SQL suite)', () => {
    test('cancelling the activity stops the statement on the server and rejects with the abort reason', async () => {
      const controller = new AbortController();
      const reason = new CancelledFailure('activity cancelled');
      const marker = `probe_${Date.now()}`;
      const started = Date.now();
      const call = query(`SELECT ${target.sleep(5)} AS ${marker}`, [], context({ signal: controller.signal }));
      setTimeout(() => controller.abort(reason), 200);
      await expect(call).rejects.toBe(reason);
      expect(Date.now() - started).toBeLessThan(1_200);
      expect(await target.runningStatements(marker)).toBe(0);
      await waitFor(async () => (await target.openConnections(target.database())) === 0);
    });

    test('a statement longer than 5 s heartbeats while it runs', async () => {
      const heartbeat = jest.fn();
      await query(`SELECT ${target.sleep(5.3)} AS slept`, [], context({ heartbeat }));
      expect(heartbeat).toHaveBeenCalledTimes(1);
      expect(heartbeat.mock.calls[0][0]).toEqual({ running_ms: expect.any(Number) });
    }, 15_000);

    test('after a cancelled call its pool still serves calls', async () => {
      // One connection in the pool: the next call only works if the cancelled one gave its slot back.
      const ctx = { poolKey: 'cancel@1' };
      const controller = new AbortController();
      const call = invoke({ sql: `SELECT ${target.sleep(5)}`, pool_size: 1 }, context({ ...ctx, signal: controller.signal }));
      setTimeout(() => controller.abort(new CancelledFailure('cancelled')), 200);
      await expect(call).rejects.toBeInstanceOf(CancelledFailure);
      const answer = await invoke({ sql: 'SELECT 1 AS one', pool_size: 1 }, context(ctx));
      expect((answer as SqlQueryResult).rows).toEqual([{ one: 1 }]);
      await connector.close?.('cancel@1');
    });
  });

  describe('connections (shared SQL suite)', () => {
    test('calls with the same poolKey reuse one connection, and close(poolKey) closes it', async () => {
      const first = await connectionOf('orders@1');
      const second = await connectionOf('orders@1');
      expect(second).toBe(first);

      await connector.close?.('orders@1');
      await waitFor(async () => (await target.alive([first])).length === 0);
      const third = await connectionOf('orders@1');
      expect(third).not.toBe(first);
      await connector.close?.('orders@1');
    });

    test('a connector change that switches databases gets a pool of its own', async () => {
      const sql = `SELECT ${target.currentDatabase} AS db`;
      const v1 = (await invoke({ sql }, context({ poolKey: 'reports@1' }))) as SqlQueryResult;
      const v2 = (await invoke({ sql, database: target.otherDatabase() }, context({ poolKey: 'reports@2' }))) as SqlQueryResult;
      expect(v1.rows[0].db).toBe(target.database());
      expect(v2.rows[0].db).toBe(target.otherDatabase());
      await connector.close?.('reports@1');
      await connector.close?.('reports@2');
    });

    test('inline calls (no poolKey) leave no connection open', async () => {
      await query('SELECT 1');
      await waitFor(async () => (await target.openConnections(target.database())) === 0);
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
          expect(failure.message).toBe(`${target.name} 127.0.0.1:${port}: no connection within connect_timeout (300 ms)`);
        }
      } finally {
        await connector.close?.('silent@1');
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => silent.close(resolve));
      }
    });
  });

  describe('pools (shared SQL suite)', () => {
    test("calls alternating between two versions do not close each other's pools, and only the newest version's pool stays open", async () => {
      // One connection per pool: a closed pool would fail the call queued behind the first one, and a
      // pinned retry of version 1 runs while version 2 already runs.
      const [old1, new1, old2, new2] = await Promise.all(
        ['alt@1', 'alt@2', 'alt@1', 'alt@2'].map((poolKey) => connectionOf(poolKey, 0.3, { pool_size: 1 })),
      );
      expect(old2).toBe(old1);
      expect(new2).toBe(new1);
      expect(new1).not.toBe(old1);
      await waitFor(async () => (await target.alive([old1, new1])).join() === new1);

      // Another retry of version 1 opens a pool again, closed as soon as the call ends.
      const late = await connectionOf('alt@1');
      await waitFor(async () => (await target.alive([late])).length === 0);
      expect(connector.pools?.list().filter((pool) => pool.poolKey.startsWith('alt@'))).toEqual([{ poolKey: 'alt@2', leases: 0, retired: false }]);
      await connector.close?.('alt@2');
    });

    test('pools of many distinct override fingerprints stay under the cap, the least recently used closed first', async () => {
      const capped = target.createConnector({ pools: { maxPools: 3 } });
      try {
        // Each statement_timeout is a setting of its own, so each call gets a pool of its own.
        const ids: string[] = [];
        for (let i = 0; i < 8; i++) ids.push(await connectionOf('overrides@1', 0, { statement_timeout: `${10 + i}s` }, capped));
        expect(capped.pools?.list()).toHaveLength(3);
        await waitFor(async () => (await target.alive(ids)).join() === sorted(ids.slice(5)).join());

        // With every pool busy one more still opens; it is closed again once calls end.
        const busy = await Promise.all([20, 21, 22, 23].map((seconds) => connectionOf('overrides@1', 0.3, { statement_timeout: `${seconds}s` }, capped)));
        expect(capped.pools?.list()).toHaveLength(3);
        await waitFor(async () => (await target.alive([...ids, ...busy])).length === 3);
      } finally {
        await capped.close?.();
      }
    });

    test('a pool unused for longer than the idle timeout is closed with its connections', async () => {
      const shortLived = target.createConnector({ pools: { idleTimeoutMs: 200 } });
      try {
        const id = await connectionOf('deleted_connector@4', 0, {}, shortLived);
        expect(await target.alive([id])).toEqual([id]);
        // Well before the connections' own 30 s idle timeout.
        await waitFor(async () => (await target.alive([id])).length === 0);
        expect(shortLived.pools?.list()).toEqual([]);
      } finally {
        await shortLived.close?.();
      }
    });
  });

  describe('test() (shared SQL suite)', () => {
    test('a reachable server is ok, with the target and the latency', async () => {
      const base = target.base();
      const result = await connector.test(schema.parse(base), context());
      expect(result.ok).toBe(true);
      const where = escapeRegExp(`${target.name} at ${String(base.host)}:${String(base.port)}, database ${target.database()}, as ${String(base.user)}`);
      expect(result.message).toMatch(new RegExp(`^Connected to ${where}: SELECT 1 in \\d+ ms$`));
      expect(result.latency_ms).toBeGreaterThanOrEqual(0);
    });

    test('a closed port gives ok false and an ECONNREFUSED sentence, without throwing', async () => {
      const port = Number(new URL(await unusedLocalUrl()).port);
      const result = await connector.test(schema.parse({ ...target.base(), host: '127.0.0.1', port }), context());
      expect(result.ok).toBe(false);
      expect(result.message).toBe(
        `Could not reach ${target.name} at 127.0.0.1:${port}: the connection was refused: nothing listens at that address and port (ECONNREFUSED).`,
      );
    });
  });

  describe('schema (shared SQL suite)', () => {
    test('fills in the defaults', () => {
      const inputs = schema.parse({ database: 'd', user: 'u', sql: 'SELECT 1' });
      expect(inputs).toMatchObject({
        host: '127.0.0.1',
        port: target.defaultPort,
        tls: false,
        statement_timeout: 30_000,
        pool_size: 5,
        connect_timeout: 10_000,
        operation: 'query',
      });
      expect(schema.parse({ database: 'd', user: 'u', sql: 'x', tls: {} }).tls).toEqual({ reject_unauthorized: true });
    });

    test('an unknown key is rejected by name', () => {
      const result = schema.safeParse({ database: 'd', user: 'u', sql: 'SELECT 1', bogus_key: 1 });
      expect(result.success).toBe(false);
      expect(JSON.stringify(result.error?.issues)).toContain('bogus_key');
    });

    test('fields of the other operation are rejected, naming the field', () => {
      const sqlInTransaction = schema.safeParse({ database: 'd', user: 'u', operation: 'transaction', sql: 'SELECT 1', statements: [{ sql: 'SELECT 1' }] });
      expect(sqlInTransaction.success).toBe(false);
      expect(sqlInTransaction.error?.issues.map((issue) => issue.path)).toEqual([['sql']]);
      const paramsInTransaction = schema.safeParse({ database: 'd', user: 'u', operation: 'transaction', params: [1], statements: [{ sql: 'SELECT 1' }] });
      expect(paramsInTransaction.error?.issues.map((issue) => issue.path)).toEqual([['params']]);
      const statementsInQuery = schema.safeParse({ database: 'd', user: 'u', sql: 'SELECT 1', statements: [{ sql: 'SELECT 1' }] });
      expect(statementsInQuery.error?.issues.map((issue) => issue.path)).toEqual([['statements']]);
    });

    test('a profile without sql is valid (test and introspect need none), but invoking it is refused naming sql', async () => {
      const profile = schema.parse({ database: 'd', user: 'u', port: 1 });
      const failure = await failureOf(connector.invoke(profile, context()));
      expect(failure.type).toBe('Connector.InvalidInput');
      expect(failure.message).toBe(`${target.name}: sql is required for operation query`);
      const transaction = schema.parse({ database: 'd', user: 'u', port: 1, operation: 'transaction' });
      expect((await failureOf(connector.invoke(transaction, context()))).message).toContain('statements are required');
    });

    test('pool_size, statement_timeout and statements are bounded', () => {
      const base = { database: 'd', user: 'u', sql: 'SELECT 1' };
      expect(schema.safeParse({ ...base, pool_size: 0 }).success).toBe(false);
      expect(schema.safeParse({ ...base, pool_size: 101 }).success).toBe(false);
      expect(schema.safeParse({ ...base, statement_timeout: 'soon' }).success).toBe(false);
      expect(schema.safeParse({ database: 'd', user: 'u', operation: 'transaction', statements: [] }).success).toBe(false);
    });
  });

  describe('describeCall (shared SQL suite)', () => {
    test('gives the operation and the first keyword, never the parameters', () => {
      expect(connector.describeCall?.({ sql: '  /* report */ select * from t where email = $1', params: ['ada@example.com'] })).toBe('query SELECT');
      expect(connector.describeCall?.({ sql: '-- nightly\nupdate t set a = ?', params: ['secret'] })).toBe('query UPDATE');
      expect(connector.describeCall?.({ operation: 'transaction', statements: [{}, {}, {}] })).toBe('transaction 3 statements');
      expect(connector.describeCall?.({ operation: 'transaction', statements: [{}] })).toBe('transaction 1 statement');
    });

    test('never throws on partial inputs', () => {
      expect(connector.describeCall?.({})).toBe('query');
      expect(connector.describeCall?.({ operation: 'drop', sql: 42 })).toBeUndefined();
    });
  });
}
