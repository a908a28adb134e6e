/**
 * The SQL connector template, as Airflow's `DbApiHook` is for its SQL hooks: `createSqlConnector`
 * owns what every SQL type does the same way (the schema, pools per stored connector version and
 * connection settings, sessions, transactions, cancellation and heartbeats, the invoke, test and
 * introspect wrappers, `close`), and a {@link SqlDriver} supplies only what differs between
 * databases: how to open and pool a connection, cancel its statement, run one statement, map a
 * failure, and which SQL lists the tables. connectors/postgres.ts and connectors/mysql.ts are drivers.
 */
import { createHash } from 'node:crypto';
import type { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { FailureType, errorCode, networkFailure, permanentFailure } from './errors';
import { PoolManager, type PoolOptions } from './pools';
import { sensitivePaths } from './sensitivity';
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_STATEMENT_TIMEOUT_MS,
  StatementFailed,
  connectionTestMessage,
  describeSqlCall,
  durationMs,
  groupIntrospection,
  isTlsError,
  operationInputFailure,
  refineSqlOperation,
  relabelFailure,
  runCancellable,
  sqlConnectionFields,
  sqlDestination,
  sqlOperationFields,
  type IntrospectionRow,
  type SqlIntrospection,
  type SqlQueryResult,
  type SqlTransactionResult,
} from './sql-common';
import type { ConnectionTestResult, ConnectorType, InvokeContext } from './types';

function buildSqlSchema(defaultPort: number) {
  return z
    .strictObject({
      ...sqlConnectionFields(defaultPort),
      ...sqlOperationFields,
    })
    .superRefine(refineSqlOperation);
}

export type SqlSchema = ReturnType<typeof buildSqlSchema>;

const schemas = new Map<number, SqlSchema>();

/**
 * The inputs schema of a SQL type: the connection, then the operation. One schema per default
 * port, so a type's exported schema is the very one its connectors validate with.
 */
export function sqlSchema(defaultPort: number): SqlSchema {
  let schema = schemas.get(defaultPort);
  if (!schema) {
    schema = buildSqlSchema(defaultPort);
    schemas.set(defaultPort, schema);
  }
  return schema;
}

/** Validated inputs of a SQL type. */
export type SqlInputs = z.output<SqlSchema>;

/** `statement_timeout` of validated inputs, in milliseconds. */
export const statementTimeoutMs = (inputs: SqlInputs) => durationMs(inputs.statement_timeout, DEFAULT_STATEMENT_TIMEOUT_MS);
/** `connect_timeout` of validated inputs, in milliseconds. */
export const connectTimeoutMs = (inputs: SqlInputs) => durationMs(inputs.connect_timeout, DEFAULT_CONNECT_TIMEOUT_MS);

/** Where and as whom to connect, as both drivers name these options. */
export function serverAndUser(inputs: SqlInputs): { host: string; port: number; database: string; user: string } {
  return { host: inputs.host, port: inputs.port, database: inputs.database, user: inputs.user };
}

/** Node's TLS options for the `tls` input; undefined for plain TCP. */
export function tlsOptions(tls: SqlInputs['tls']): { rejectUnauthorized: boolean; ca?: string } | undefined {
  if (tls === false) return undefined;
  return tls === true ? { rejectUnauthorized: true } : { rejectUnauthorized: tls.reject_unauthorized, ca: tls.ca };
}

/**
 * What one database supplies to {@link createSqlConnector}. `Conn` is the driver's connection,
 * `Pool` its pool. Every connection the template gets is ready for statements (statement timeout
 * set), and is handed back exactly once, through `release` (pooled) or `disconnect` (its own).
 */
export interface SqlDriver<Conn, Pool> {
  /** Upper-case type name, e.g. `POSTGRES`; it starts failure messages and connection test messages. */
  name: string;
  /** One line for `connectors types` and the docs. */
  description: string;
  /** The database's usual TCP port, the default of `port`. */
  defaultPort: number;
  /** Opens a connection of its own, for a call without a pool key or a connection test. */
  connect(inputs: SqlInputs): Promise<Conn>;
  /** Closes a connection `connect` opened; `destroy` when its state is unknown (no goodbye to the server). */
  disconnect(conn: Conn, destroy: boolean): Promise<void>;
  /** A pool for these inputs: `pool_size` connections at most, idle ones closed after a while, none keeping the process alive. */
  createPool(inputs: SqlInputs): Pool;
  /** Closes a pool and its connections. */
  endPool(pool: Pool): Promise<void>;
  /** Takes a connection from `pool`; on failure nothing stays taken. */
  acquire(pool: Pool, inputs: SqlInputs): Promise<Conn>;
  /** Gives a connection back to its pool, or drops it when `destroy`. */
  release(conn: Conn, destroy: boolean): void;
  /** The server's id of the connection, for `cancel`; undefined when it has none. */
  sessionId(conn: Conn): number | undefined;
  /** Asks the server, over a connection of its own, to stop the statement session `id` is running. */
  cancel(inputs: SqlInputs, id: number): Promise<void>;
  /** Runs one statement with its parameters (never spliced into the SQL) and gives JSON-safe rows. */
  run(conn: Conn, sql: string, params?: unknown[]): Promise<SqlQueryResult>;
  begin(conn: Conn): Promise<void>;
  commit(conn: Conn): Promise<void>;
  rollback(conn: Conn): Promise<void>;
  /** True when a failed COMMIT has already rolled back on the server (PostgreSQL); else the template sends ROLLBACK. */
  commitFailureRollsBack: boolean;
  /** An error of the statement, after which the connection is fine; anything else drops the connection. */
  isStatementError(err: unknown): boolean;
  /**
   * The failure for a driver error the driver knows (server errors, its own codes), or undefined
   * to let the template map it: TLS handshake, network codes, then a permanent failure with the
   * message. `target` is `<NAME> <host>:<port>`. Never the password, never row values.
   */
  failure(err: unknown, inputs: SqlInputs, target: string): ApplicationFailure | undefined;
  /** The query `introspect` runs: one row per schema, table and column, as {@link IntrospectionRow}, ordered by schema, table and column position. */
  introspectionSql: string;
  /** Corrects one row of the introspection query where the server reports it oddly. Default: as it comes. */
  introspectionRow?(row: IntrospectionRow): IntrospectionRow;
}

/** Options of a SQL connector type (`createPostgresConnector`, `createMysqlConnector`). */
export interface SqlConnectorOptions {
  /** How long pools are kept, and how many (connectors/pools.ts). Default: its defaults. */
  pools?: PoolOptions;
}

interface Session<Conn> {
  conn: Conn;
  /** Returns the connection to its pool, or closes it; `destroy` when its state is unknown. */
  done(destroy: boolean): Promise<void>;
}

/** Creates a SQL connector type from its driver, with pools of its own. */
export function createSqlConnector<Conn, Pool>(driver: SqlDriver<Conn, Pool>, options: SqlConnectorOptions = {}): ConnectorType<SqlSchema> {
  // Pools per stored connector version, and within it per connection settings: overrides may point one
  // version at another database or user, and such calls must not share connections.
  const pools = new PoolManager<Pool>((pool) => driver.endPool(pool), options.pools);

  function settingsFingerprint(inputs: SqlInputs): string {
    const settings = [inputs.host, inputs.port, inputs.database, inputs.user, inputs.password ?? null, inputs.tls, inputs.pool_size];
    return createHash('sha256')
      .update(JSON.stringify([...settings, statementTimeoutMs(inputs), connectTimeoutMs(inputs)]))
      .digest('hex');
  }

  async function openSession(inputs: SqlInputs, poolKey: string | undefined): Promise<Session<Conn>> {
    if (poolKey === undefined) {
      const conn = await driver.connect(inputs);
      return { conn, done: (destroy) => driver.disconnect(conn, destroy) };
    }
    // Leased from before the wait for a connection until the connection is back: the pool is not
    // closed under a call (mysql2's Pool.end() would end connections in use too), even when a newer
    // connector version retires it meanwhile.
    const lease = pools.lease(poolKey, settingsFingerprint(inputs), () => driver.createPool(inputs));
    const conn = await driver.acquire(lease.pool, inputs).catch((err: unknown) => {
      lease.release();
      throw err;
    });
    return {
      conn,
      done: async (destroy) => {
        driver.release(conn, destroy);
        lease.release();
      },
    };
  }

  /**
   * Runs `use` on a connection (pooled under `ctx.poolKey`, else one of its own, closed after), with
   * heartbeats, and cancels the server-side statement when the activity is cancelled.
   */
  async function withConnection<T>(inputs: SqlInputs, ctx: InvokeContext, use: (conn: Conn) => Promise<T>): Promise<T> {
    let runningOn: number | undefined;
    const work = async () => {
      const session = await openSession(inputs, ctx.poolKey);
      let destroy = false;
      try {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        runningOn = driver.sessionId(session.conn);
        return await use(session.conn);
      } catch (err) {
        // After an SQL error the connection is fine (the drivers drop it themselves if the server
        // closed it); after anything else, or a cancellation, its state is unknown.
        const sqlError = err instanceof StatementFailed ? err.rolledBack && driver.isStatementError(err.error) : driver.isStatementError(err);
        destroy = ctx.signal.aborted || !sqlError;
        throw err;
      } finally {
        runningOn = undefined;
        await session.done(destroy);
      }
    };
    return runCancellable(ctx, work, async () => {
      if (runningOn !== undefined) await driver.cancel(inputs, runningOn);
    });
  }

  async function runTransaction(inputs: SqlInputs, ctx: InvokeContext): Promise<SqlTransactionResult> {
    const statements = inputs.statements ?? [];
    return withConnection(inputs, ctx, async (conn) => {
      await driver.begin(conn);
      const results: SqlTransactionResult['results'] = [];
      for (const [index, statement] of statements.entries()) {
        try {
          const { row_count, rows } = await driver.run(conn, statement.sql, statement.params);
          results.push({ row_count, rows });
        } catch (err) {
          // A cancelled call's connection is destroyed, which rolls back on the server anyway.
          const rolledBack = !ctx.signal.aborted && (await driver.rollback(conn).then(() => true, () => false));
          throw new StatementFailed(index, err, rolledBack);
        }
      }
      try {
        await driver.commit(conn);
      } catch (err) {
        // Deferred constraints and serialization checks fail at COMMIT.
        const rolledBack = driver.commitFailureRollsBack || (await driver.rollback(conn).then(() => true, () => false));
        throw new StatementFailed('commit', err, rolledBack);
      }
      return { results };
    });
  }

  /** The one place the type's errors become failures; the driver error is never attached. */
  function toFailure(err: unknown, inputs: SqlInputs): ApplicationFailure {
    if (err instanceof StatementFailed) {
      const where = err.index === 'commit' ? 'commit' : `statements.${err.index}`;
      const suffix = err.rolledBack ? '; the transaction was rolled back' : '; the connection was closed, which rolls the transaction back';
      return relabelFailure(toFailure(err.error, inputs), `${where}: `, suffix, err.index === 'commit' ? {} : { statement: err.index });
    }
    const target = `${driver.name} ${inputs.host}:${inputs.port}`;
    const mapped = driver.failure(err, inputs, target);
    if (mapped) return mapped;
    const code = errorCode(err);
    if (isTlsError(err)) {
      return permanentFailure(FailureType.External, `${target}: the TLS handshake failed (${code}); check tls.ca and tls.reject_unauthorized`, { code });
    }
    if (code) return networkFailure(target, err);
    const message = (err as { message?: unknown })?.message;
    return permanentFailure(FailureType.External, `${driver.name} call failed: ${typeof message === 'string' ? message : String(err)}`);
  }

  /** Runs `call`, mapping its errors; a cancelled call rejects with the cancellation instead. */
  async function mapped<T>(inputs: SqlInputs, ctx: InvokeContext, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      throw toFailure(err, inputs);
    }
  }

  async function invoke(inputs: SqlInputs, ctx: InvokeContext): Promise<SqlQueryResult | SqlTransactionResult> {
    const missing = operationInputFailure(driver.name, inputs);
    if (missing) throw missing;
    if (inputs.operation === 'transaction') return mapped(inputs, ctx, () => runTransaction(inputs, ctx));
    return mapped(inputs, ctx, () => withConnection(inputs, ctx, (conn) => driver.run(conn, inputs.sql as string, inputs.params)));
  }

  async function test(inputs: SqlInputs, ctx: InvokeContext): Promise<ConnectionTestResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const target = `${driver.name} at ${inputs.host}:${inputs.port}`;
    try {
      // Never pooled: the test proves that these inputs can log in now, not that a pool once could.
      await withConnection(inputs, { ...ctx, poolKey: undefined }, (conn) => driver.run(conn, 'SELECT 1'));
      const latency = elapsed();
      return { ok: true, message: `Connected to ${target}, database ${inputs.database}, as ${inputs.user}: SELECT 1 in ${latency} ms`, latency_ms: latency };
    } catch (err) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      return { ok: false, message: connectionTestMessage(target, err, toFailure(err, inputs)), latency_ms: elapsed() };
    }
  }

  async function introspect(inputs: SqlInputs, ctx: InvokeContext): Promise<SqlIntrospection> {
    const { rows } = await mapped(inputs, ctx, () => withConnection(inputs, ctx, (conn) => driver.run(conn, driver.introspectionSql)));
    const fix = driver.introspectionRow ?? ((row: IntrospectionRow) => row);
    return groupIntrospection((rows as unknown as IntrospectionRow[]).map(fix));
  }

  return {
    name: driver.name,
    description: driver.description,
    schema: sqlSchema(driver.defaultPort),
    // Marked on the fields of the schema (sql-common.ts), and derived from there.
    sensitive: sensitivePaths(sqlSchema(driver.defaultPort)),
    invoke,
    test,
    introspect,
    describeCall: describeSqlCall,
    destination: sqlDestination(driver.defaultPort),
    close: (poolKey) => pools.close(poolKey),
    pools,
  };
}
