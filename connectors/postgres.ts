/**
 * The POSTGRES connector type: parameterised SQL on PostgreSQL through `pg`, one statement per
 * `query` or several in one `transaction`, with a server-side statement timeout, pools per stored
 * connector version, cancellation of the running statement, and failures mapped in one place.
 *
 * A profile usually holds the connection (host, database, user, password); workflows override
 * `sql` and `params`, or give `operation: transaction` with `statements`.
 */
import { createHash } from 'node:crypto';
import type { ApplicationFailure } from '@temporalio/common';
import { Client, DatabaseError, Pool, types, type ClientBase, type ClientConfig, type CustomTypesConfig, type QueryConfig, type QueryResult } from 'pg';
import { z } from 'zod';
import { FailureType, errorCode, networkFailure, permanentFailure, transientFailure } from './errors';
import { PoolManager, type PoolOptions } from './pools';
import {
  CANCEL_WAIT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_STATEMENT_TIMEOUT_MS,
  POOL_IDLE_TIMEOUT_MS,
  StatementFailed,
  authRefusedSentence,
  connectionTestMessage,
  describeSqlCall,
  durationMs,
  groupIntrospection,
  isTlsError,
  jsonSafeRows,
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

/** Inputs of a POSTGRES connector: the connection, then the operation. Placeholders are `$1`, `$2`, ... */
export const postgresSchema = z
  .strictObject({
    ...sqlConnectionFields(5432),
    ...sqlOperationFields,
  })
  .superRefine(refineSqlOperation);

export type PostgresInputs = z.output<typeof postgresSchema>;

const statementTimeoutMs = (inputs: PostgresInputs) => durationMs(inputs.statement_timeout, DEFAULT_STATEMENT_TIMEOUT_MS);
const connectTimeoutMs = (inputs: PostgresInputs) => durationMs(inputs.connect_timeout, DEFAULT_CONNECT_TIMEOUT_MS);

// `date` and `timestamp` carry no time zone: pg would read them as local time, so the same row
// would give different instants on workers in different zones. The server's text is exact.
const DATE_OID = 1082;
const TIMESTAMP_OID = 1114;
const typeParsers: CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === DATE_OID || oid === TIMESTAMP_OID ? (value: string) => value : types.getTypeParser(oid, format)) as CustomTypesConfig['getTypeParser'],
};

const TYPE_NAMES = new Map<number, string>(Object.entries(types.builtins).map(([name, oid]) => [Number(oid), name.toLowerCase()]));

function clientConfig(inputs: PostgresInputs): ClientConfig {
  const { tls } = inputs;
  return {
    host: inputs.host,
    port: inputs.port,
    database: inputs.database,
    user: inputs.user,
    // A function, because pg falls back to the worker's PGPASSWORD or ~/.pgpass for a missing or
    // empty password, and would send the worker's own credentials to whatever host the inputs name.
    password: () => inputs.password ?? '',
    ssl: tls === false ? false : tls === true ? { rejectUnauthorized: true } : { rejectUnauthorized: tls.reject_unauthorized, ca: tls.ca },
    connectionTimeoutMillis: connectTimeoutMs(inputs),
    // A startup parameter, so the server enforces it on every statement of the session without a SET.
    statement_timeout: statementTimeoutMs(inputs),
    application_name: 'temporal-connectors',
    types: typeParsers,
  };
}

// Pools per stored connector version, and within it per connection settings: overrides may point one
// version at another database or user, and such calls must not share connections.
type Pools = PoolManager<Pool>;

function settingsFingerprint(inputs: PostgresInputs): string {
  const settings = [inputs.host, inputs.port, inputs.database, inputs.user, inputs.password ?? null, inputs.tls, inputs.pool_size];
  return createHash('sha256')
    .update(JSON.stringify([...settings, statementTimeoutMs(inputs), connectTimeoutMs(inputs)]))
    .digest('hex');
}

function newPool(inputs: PostgresInputs): Pool {
  const pool = new Pool({ ...clientConfig(inputs), max: inputs.pool_size, idleTimeoutMillis: POOL_IDLE_TIMEOUT_MS, allowExitOnIdle: true });
  // An idle connection the server drops (restart, idle timeout) is reported here; the pool already
  // discards it, and without a listener the error would crash the worker.
  pool.on('error', () => undefined);
  return pool;
}

/** pg reports a connect timeout as a closed connection; this says what happened instead. */
class ConnectTimeout extends Error {
  constructor(readonly timeoutMs: number) {
    super(`no connection within ${timeoutMs} ms`);
    this.name = 'ConnectTimeout';
  }
}

interface Session {
  client: ClientBase;
  /** Returns the connection to its pool, or closes it; `destroy` when its state is unknown. */
  done(destroy: boolean): Promise<void>;
}

async function openSession(inputs: PostgresInputs, poolKey: string | undefined, pools: Pools): Promise<Session> {
  const started = Date.now();
  const timeoutMs = connectTimeoutMs(inputs);
  try {
    if (poolKey !== undefined) {
      // Leased from before the wait for a connection until the connection is back: the pool is not
      // closed under a call, even when a newer connector version retires it meanwhile.
      const lease = pools.lease(poolKey, settingsFingerprint(inputs), () => newPool(inputs));
      const client = await lease.pool.connect().catch((err: unknown) => {
        lease.release();
        throw err;
      });
      return {
        client,
        done: async (destroy) => {
          client.release(destroy);
          lease.release();
        },
      };
    }
    const client = new Client(clientConfig(inputs));
    // Errors of a live connection also reject the running query; the listener keeps them from crashing the worker.
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    return { client, done: () => client.end().catch(() => undefined) };
  } catch (err) {
    const codeless = !(err instanceof DatabaseError) && !errorCode(err);
    if (codeless && (/timeout/i.test((err as Error)?.message) || Date.now() - started >= timeoutMs - 50)) throw new ConnectTimeout(timeoutMs);
    throw err;
  }
}

/** Asks the server, over a connection of its own, to stop whatever backend `pid` is running. */
async function cancelBackend(inputs: PostgresInputs, pid: number): Promise<void> {
  const client = new Client({ ...clientConfig(inputs), connectionTimeoutMillis: Math.min(connectTimeoutMs(inputs), CANCEL_WAIT_MS) });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT pg_cancel_backend($1)', [pid]);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function backendPid(client: ClientBase): number | undefined {
  const pid = (client as ClientBase & { processID?: unknown }).processID;
  return typeof pid === 'number' ? pid : undefined;
}

/**
 * Runs `use` on a connection (pooled under `ctx.poolKey`, else one of its own, closed after), with
 * heartbeats, and cancels the server-side statement when the activity is cancelled.
 */
async function withClient<T>(inputs: PostgresInputs, ctx: InvokeContext, pools: Pools, use: (client: ClientBase) => Promise<T>): Promise<T> {
  let runningOn: number | undefined;
  const work = async () => {
    const session = await openSession(inputs, ctx.poolKey, pools);
    let destroy = false;
    try {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      runningOn = backendPid(session.client);
      return await use(session.client);
    } catch (err) {
      // After an SQL error the connection is fine (pg itself drops it if the server closed it);
      // after anything else, or a cancellation, its state is unknown.
      const sqlError = err instanceof StatementFailed ? err.rolledBack && err.error instanceof DatabaseError : err instanceof DatabaseError;
      destroy = ctx.signal.aborted || !sqlError;
      throw err;
    } finally {
      runningOn = undefined;
      await session.done(destroy);
    }
  };
  return runCancellable(ctx, work, async () => {
    if (runningOn !== undefined) await cancelBackend(inputs, runningOn);
  });
}

// Always the extended protocol, even without parameters: one statement per call, as with MYSQL, and
// a result of one shape (the simple protocol would run `a; b` and answer with a list).
type ExtendedQueryConfig = QueryConfig & { queryMode: 'extended' };

function runStatement(client: ClientBase, sql: string, params: unknown[] = []): Promise<QueryResult> {
  const query: ExtendedQueryConfig = { text: sql, values: params, queryMode: 'extended' };
  return client.query(query);
}

function rowCount(result: QueryResult): number {
  return result.rowCount ?? result.rows.length;
}

async function runQuery(inputs: PostgresInputs, ctx: InvokeContext, pools: Pools): Promise<SqlQueryResult> {
  const result = await withClient(inputs, ctx, pools, (client) => runStatement(client, inputs.sql as string, inputs.params));
  return {
    rows: jsonSafeRows(result.rows),
    row_count: rowCount(result),
    fields: result.fields.map((field) => ({ name: field.name, type: TYPE_NAMES.get(field.dataTypeID) ?? field.dataTypeID })),
  };
}

async function runTransaction(inputs: PostgresInputs, ctx: InvokeContext, pools: Pools): Promise<SqlTransactionResult> {
  const statements = inputs.statements ?? [];
  return withClient(inputs, ctx, pools, async (client) => {
    await client.query('BEGIN');
    const results: SqlTransactionResult['results'] = [];
    for (const [index, statement] of statements.entries()) {
      try {
        const result = await runStatement(client, statement.sql, statement.params);
        results.push({ row_count: rowCount(result), rows: jsonSafeRows(result.rows) });
      } catch (err) {
        // A cancelled call's connection is destroyed, which rolls back on the server anyway.
        const rolledBack = !ctx.signal.aborted && (await client.query('ROLLBACK').then(() => true, () => false));
        throw new StatementFailed(index, err, rolledBack);
      }
    }
    try {
      await client.query('COMMIT');
    } catch (err) {
      // Deferred constraints and serialization checks fail at COMMIT; the server has rolled back.
      throw new StatementFailed('commit', err, true);
    }
    return { results };
  });
}

// Worth a retry: the same statement may well succeed on the next attempt.
const RETRYABLE_SQLSTATES = new Set(['40001', '40P01', '55P03']);
// Connection exceptions (but 08P01, a protocol violation such as a wrong number of params), shutdown
// and restart, insufficient resources: the server, not the SQL.
const UNAVAILABLE_SQLSTATE = /^(08(?!P01)|57P0[1235]|53)/;

/**
 * The one place POSTGRES errors become failures. Messages carry the server's message and SQLSTATE,
 * never `detail` (it quotes row values) and never the password; the driver error is not attached.
 */
function postgresFailure(err: unknown, inputs: PostgresInputs): ApplicationFailure {
  if (err instanceof StatementFailed) {
    const where = err.index === 'commit' ? 'commit' : `statements.${err.index}`;
    const suffix = err.rolledBack ? '; the transaction was rolled back' : '; the connection was closed, which rolls the transaction back';
    return relabelFailure(postgresFailure(err.error, inputs), `${where}: `, suffix, err.index === 'commit' ? {} : { statement: err.index });
  }
  const target = `POSTGRES ${inputs.host}:${inputs.port}`;
  if (err instanceof DatabaseError) {
    const code = err.code ?? 'no SQLSTATE';
    const details = { code };
    const said = `${err.message} (${code})`;
    if (code === '28P01' || code === '28000') {
      return permanentFailure(FailureType.External, `${target}: ${authRefusedSentence(inputs.user, `${err.message}, ${code}`)}`, details);
    }
    if (code === '3D000') return permanentFailure(FailureType.External, `${target}: ${said}`, details);
    if (code === '57014' && /statement timeout/i.test(err.message)) {
      return transientFailure(
        FailureType.Timeout,
        `POSTGRES statement ran longer than statement_timeout (${statementTimeoutMs(inputs)} ms) and the server cancelled it (57014)`,
        { details },
      );
    }
    if (RETRYABLE_SQLSTATES.has(code)) return transientFailure(FailureType.External, `POSTGRES query failed: ${said}`, { details });
    if (UNAVAILABLE_SQLSTATE.test(code)) return transientFailure(FailureType.Network, `${target} failed: ${said}`, { details });
    return permanentFailure(FailureType.External, `POSTGRES query failed: ${said}`, details);
  }
  if (err instanceof ConnectTimeout) {
    return transientFailure(FailureType.Timeout, `${target}: no connection within connect_timeout (${err.timeoutMs} ms)`, { details: { code: 'CONNECT_TIMEOUT' } });
  }
  const message = err instanceof Error ? err.message : String(err);
  if (/does not support SSL/i.test(message)) {
    return permanentFailure(FailureType.External, `${target}: the server does not accept TLS connections; set tls: false`);
  }
  if (isTlsError(err)) {
    return permanentFailure(FailureType.External, `${target}: the TLS handshake failed (${errorCode(err)}); check tls.ca and tls.reject_unauthorized`, {
      code: errorCode(err),
    });
  }
  if (errorCode(err)) return networkFailure(target, err);
  if (/Connection terminated|not queryable|Connection ended/i.test(message)) {
    return transientFailure(FailureType.Network, `${target} failed: the connection was closed unexpectedly`);
  }
  return permanentFailure(FailureType.External, `POSTGRES call failed: ${message}`);
}

async function invokePostgres(inputs: PostgresInputs, ctx: InvokeContext, pools: Pools): Promise<SqlQueryResult | SqlTransactionResult> {
  const missing = operationInputFailure('POSTGRES', inputs);
  if (missing) throw missing;
  try {
    return inputs.operation === 'transaction' ? await runTransaction(inputs, ctx, pools) : await runQuery(inputs, ctx, pools);
  } catch (err) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    throw postgresFailure(err, inputs);
  }
}

async function testPostgres(inputs: PostgresInputs, ctx: InvokeContext, pools: Pools): Promise<ConnectionTestResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const target = `POSTGRES at ${inputs.host}:${inputs.port}`;
  try {
    // Never pooled: the test proves that these inputs can log in now, not that a pool once could.
    await withClient(inputs, { ...ctx, poolKey: undefined }, pools, (client) => client.query('SELECT 1'));
    const latency = elapsed();
    return { ok: true, message: `Connected to ${target}, database ${inputs.database}, as ${inputs.user}: SELECT 1 in ${latency} ms`, latency_ms: latency };
  } catch (err) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    return { ok: false, message: connectionTestMessage(target, err, postgresFailure(err, inputs)), latency_ms: elapsed() };
  }
}

// Arrays and user-defined types report only ARRAY / USER-DEFINED as data_type; their udt_name says more.
const INTROSPECTION_SQL = `
SELECT s.schema_name, t.table_name, t.table_type, c.column_name,
       CASE WHEN c.data_type IN ('ARRAY', 'USER-DEFINED') THEN c.udt_name ELSE c.data_type END AS column_type,
       c.is_nullable, c.column_default
FROM information_schema.schemata s
LEFT JOIN information_schema.tables t ON t.table_schema = s.schema_name
LEFT JOIN information_schema.columns c ON c.table_schema = t.table_schema AND c.table_name = t.table_name
WHERE s.schema_name NOT IN ('pg_catalog', 'information_schema')
  AND s.schema_name NOT LIKE 'pg\\_toast%'
  AND s.schema_name NOT LIKE 'pg\\_temp\\_%'
ORDER BY s.schema_name, t.table_name, c.ordinal_position`;

async function introspectPostgres(inputs: PostgresInputs, ctx: InvokeContext, pools: Pools): Promise<SqlIntrospection> {
  try {
    const result = await withClient(inputs, ctx, pools, (client) => client.query<IntrospectionRow>(INTROSPECTION_SQL));
    return groupIntrospection(result.rows);
  } catch (err) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    throw postgresFailure(err, inputs);
  }
}

/** Options of {@link createPostgresConnector}. */
export interface PostgresConnectorOptions {
  /** How long pools are kept, and how many (connectors/pools.ts). Default: its defaults. */
  pools?: PoolOptions;
}

/** Creates the POSTGRES type with its own pools; `postgresConnector` is the one workers use. */
export function createPostgresConnector(options: PostgresConnectorOptions = {}): ConnectorType<typeof postgresSchema> {
  const pools: Pools = new PoolManager((pool) => pool.end(), options.pools);
  return {
    name: 'POSTGRES',
    description: 'PostgreSQL: parameterised queries and transactions, with a statement timeout and pooled connections.',
    schema: postgresSchema,
    sensitive: ['password'],
    invoke: (inputs, ctx) => invokePostgres(inputs, ctx, pools),
    test: (inputs, ctx) => testPostgres(inputs, ctx, pools),
    introspect: (inputs, ctx) => introspectPostgres(inputs, ctx, pools),
    describeCall: describeSqlCall,
    destination: sqlDestination(5432),
    close: (poolKey) => pools.close(poolKey),
    pools,
  };
}

/** The POSTGRES connector type. */
export const postgresConnector: ConnectorType<typeof postgresSchema> = createPostgresConnector();
