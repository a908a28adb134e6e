/**
 * The POSTGRES connector type: parameterised SQL on PostgreSQL through `pg`, one statement per
 * `query` or several in one `transaction`. The SQL template (connectors/sql.ts) owns pools,
 * sessions, transactions and cancellation; this file is the driver: how `pg` connects, pools,
 * cancels a statement (pg_cancel_backend) and runs one, which SQL lists the tables, and how
 * PostgreSQL's errors become failures.
 *
 * A profile usually holds the connection (host, database, user, password); workflows override
 * `sql` and `params`, or give `operation: transaction` with `statements`.
 */
import type { ApplicationFailure } from '@temporalio/common';
import { Client, DatabaseError, Pool, types, type ClientBase, type ClientConfig, type CustomTypesConfig, type PoolClient, type QueryConfig } from 'pg';
import { FailureType, errorCode, permanentFailure, transientFailure } from './errors';
import { connectTimeoutMs, createSqlConnector, serverAndUser, sqlSchema, statementTimeoutMs, tlsOptions, type SqlConnectorOptions, type SqlDriver, type SqlInputs, type SqlSchema } from './sql';
import { CANCEL_WAIT_MS, POOL_IDLE_TIMEOUT_MS, authRefusedSentence, jsonSafeRows, type SqlQueryResult } from './sql-common';
import type { ConnectorType } from './types';

/** Inputs of a POSTGRES connector: the connection, then the operation. Placeholders are `$1`, `$2`, ... */
export const postgresSchema: SqlSchema = sqlSchema(5432);

export type PostgresInputs = SqlInputs;

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
  return {
    ...serverAndUser(inputs),
    // A function, because pg falls back to the worker's PGPASSWORD or ~/.pgpass for a missing or
    // empty password, and would send the worker's own credentials to whatever host the inputs name.
    password: () => inputs.password ?? '',
    ssl: tlsOptions(inputs.tls) ?? false,
    connectionTimeoutMillis: connectTimeoutMs(inputs),
    // A startup parameter, so the server enforces it on every statement of the session without a SET.
    statement_timeout: statementTimeoutMs(inputs),
    application_name: 'temporal-connectors',
    types: typeParsers,
  };
}

/** pg reports a connect timeout as a closed connection; this says what happened instead. */
class ConnectTimeout extends Error {
  constructor(readonly timeoutMs: number) {
    super(`no connection within ${timeoutMs} ms`);
    this.name = 'ConnectTimeout';
  }
}

/** Runs `open`, turning pg's codeless "connection closed" after connect_timeout into a {@link ConnectTimeout}. */
async function connecting<T>(inputs: PostgresInputs, open: () => Promise<T>): Promise<T> {
  const started = Date.now();
  const timeoutMs = connectTimeoutMs(inputs);
  try {
    return await open();
  } catch (err) {
    const codeless = !(err instanceof DatabaseError) && !errorCode(err);
    if (codeless && (/timeout/i.test((err as Error)?.message) || Date.now() - started >= timeoutMs - 50)) throw new ConnectTimeout(timeoutMs);
    throw err;
  }
}

async function openClient(config: ClientConfig): Promise<Client> {
  const client = new Client(config);
  // Errors of a live connection also reject the running query; the listener keeps them from crashing the worker.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  return client;
}

// Always the extended protocol, even without parameters: one statement per call, as with MYSQL, and
// a result of one shape (the simple protocol would run `a; b` and answer with a list).
type ExtendedQueryConfig = QueryConfig & { queryMode: 'extended' };

async function runStatement(client: ClientBase, sql: string, params: unknown[] = []): Promise<SqlQueryResult> {
  const query: ExtendedQueryConfig = { text: sql, values: params, queryMode: 'extended' };
  const result = await client.query(query);
  return {
    rows: jsonSafeRows(result.rows),
    row_count: result.rowCount ?? result.rows.length,
    fields: result.fields.map((field) => ({ name: field.name, type: TYPE_NAMES.get(field.dataTypeID) ?? field.dataTypeID })),
  };
}

// Worth a retry: the same statement may well succeed on the next attempt.
const RETRYABLE_SQLSTATES = new Set(['40001', '40P01', '55P03']);
// Connection exceptions (but 08P01, a protocol violation such as a wrong number of params), shutdown
// and restart, insufficient resources: the server, not the SQL.
const UNAVAILABLE_SQLSTATE = /^(08(?!P01)|57P0[1235]|53)/;

/**
 * PostgreSQL's errors as failures. Messages carry the server's message and SQLSTATE, never `detail`
 * (it quotes row values) and never the password.
 */
function postgresFailure(err: unknown, inputs: PostgresInputs, target: string): ApplicationFailure | undefined {
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
    return permanentFailure(FailureType.External, `${target}: the server does not accept TLS connections, so the call was not made: it may not be the server this connector is meant for; only the connector's owner can decide, in the connector, that it goes without TLS`);
  }
  // Codeless: errors with a code (TLS, network) are the template's.
  if (!errorCode(err) && /Connection terminated|not queryable|Connection ended/i.test(message)) {
    return transientFailure(FailureType.Network, `${target} failed: the connection was closed unexpectedly`);
  }
  return undefined;
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

/** What the SQL template needs of `pg`. A pooled connection is a PoolClient, one of its own a Client. */
const postgresDriver: SqlDriver<ClientBase, Pool> = {
  name: 'POSTGRES',
  description: 'PostgreSQL: parameterised queries and transactions, with a statement timeout and pooled connections.',
  defaultPort: 5432,
  connect: (inputs) => connecting(inputs, () => openClient(clientConfig(inputs))),
  disconnect: (client) => (client as Client).end().catch(() => undefined),
  createPool: (inputs) => {
    const pool = new Pool({ ...clientConfig(inputs), max: inputs.pool_size, idleTimeoutMillis: POOL_IDLE_TIMEOUT_MS, allowExitOnIdle: true });
    // An idle connection the server drops (restart, idle timeout) is reported here; the pool already
    // discards it, and without a listener the error would crash the worker.
    pool.on('error', () => undefined);
    return pool;
  },
  endPool: (pool) => pool.end(),
  acquire: (pool, inputs) => connecting(inputs, () => pool.connect()),
  release: (client, destroy) => (client as PoolClient).release(destroy),
  sessionId: (client) => {
    const pid = (client as ClientBase & { processID?: unknown }).processID;
    return typeof pid === 'number' ? pid : undefined;
  },
  cancel: async (inputs, pid) => {
    const client = await openClient({ ...clientConfig(inputs), connectionTimeoutMillis: Math.min(connectTimeoutMs(inputs), CANCEL_WAIT_MS) });
    try {
      await client.query('SELECT pg_cancel_backend($1)', [pid]);
    } finally {
      await client.end().catch(() => undefined);
    }
  },
  run: runStatement,
  begin: async (client) => void (await client.query('BEGIN')),
  commit: async (client) => void (await client.query('COMMIT')),
  rollback: async (client) => void (await client.query('ROLLBACK')),
  // Deferred constraints and serialization checks fail at COMMIT, and the server has rolled back.
  commitFailureRollsBack: true,
  // pg itself drops a connection the server closed.
  isStatementError: (err) => err instanceof DatabaseError,
  failure: postgresFailure,
  introspectionSql: INTROSPECTION_SQL,
};

/** Options of {@link createPostgresConnector}. */
export type PostgresConnectorOptions = SqlConnectorOptions;

/** Creates the POSTGRES type with its own pools; `postgresConnector` is the one workers use. */
export function createPostgresConnector(options: PostgresConnectorOptions = {}): ConnectorType<typeof postgresSchema> {
  return createSqlConnector(postgresDriver, options);
}

/** The POSTGRES connector type. */
export const postgresConnector: ConnectorType<typeof postgresSchema> = createPostgresConnector();
