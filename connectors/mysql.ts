/**
 * The MYSQL connector type: parameterised SQL on MySQL and MariaDB through `mysql2`, one statement
 * per `query` or several in one `transaction`. The SQL template (connectors/sql.ts) owns pools,
 * sessions, transactions and cancellation; this file is the driver: how `mysql2` connects (with the
 * session's statement timeout), pools, kills a statement (KILL QUERY) and runs one, which SQL lists
 * the tables, and how MySQL's and MariaDB's errors become failures.
 *
 * A profile usually holds the connection (host, database, user, password); workflows override
 * `sql` and `params`, or give `operation: transaction` with `statements`.
 */
import type { Socket } from 'node:net';
import type { ApplicationFailure } from '@temporalio/common';
import mysql from 'mysql2/promise';
import { FailureType, errorCode, permanentFailure, transientFailure } from './errors';
import { connectTimeoutMs, createSqlConnector, serverAndUser, sqlSchema, statementTimeoutMs, tlsOptions, type SqlConnectorOptions, type SqlDriver, type SqlInputs, type SqlSchema } from './sql';
import { CANCEL_WAIT_MS, POOL_IDLE_TIMEOUT_MS, authRefusedSentence, jsonSafeRows, toJsonSafe, type SqlField, type SqlQueryResult } from './sql-common';
import type { ConnectorType } from './types';

/** Inputs of a MYSQL connector: the connection, then the operation. Placeholders are `?`. */
export const mysqlSchema: SqlSchema = sqlSchema(3306);

export type MysqlInputs = SqlInputs;

function connectionOptions(inputs: MysqlInputs): mysql.ConnectionOptions {
  return {
    ...serverAndUser(inputs),
    password: inputs.password ?? '',
    ssl: tlsOptions(inputs.tls),
    connectTimeout: connectTimeoutMs(inputs),
    // DATE, DATETIME and TIMESTAMP arrive without a time zone: the server's text is exact, while a
    // Date would depend on the worker's zone.
    dateStrings: true,
    // BIGINT and DECIMAL as strings, always: numbers above 2^53 would silently lose digits.
    supportBigNumbers: true,
    bigNumberStrings: true,
    // Detects a dead peer on an idle pooled connection instead of failing the next call with it.
    enableKeepAlive: true,
    // mysql2 keeps each connection's prepared statements open, 16000 by default, while the server
    // allows about as many in total (max_prepared_stmt_count): a few busy pools would exhaust it.
    maxPreparedStatements: 256,
  };
}

/** What the pool events hand over: mysql2's core connection (typed as the promise wrapper). */
type CoreConnection = { stream?: Socket; destroy(): void; on(event: 'error', listener: () => void): unknown };

function createPool(inputs: MysqlInputs): mysql.Pool {
  // maxIdle equal to the limit turns off mysql2's own idle sweep, a 1 s timer that would keep the
  // worker's process alive; the release/acquire handlers below close idle connections instead, on
  // unref'd timers, and unref idle sockets the way pg's allowExitOnIdle does.
  const pool = mysql.createPool({ ...connectionOptions(inputs), connectionLimit: inputs.pool_size, maxIdle: inputs.pool_size, waitForConnections: true });
  const idleTimers = new WeakMap<object, NodeJS.Timeout>();
  // mysql2 listens once for a pooled connection's error; a second one (a dead idle socket that
  // also fails keep-alive) would otherwise crash the worker. The pool drops the connection either way.
  pool.on('connection', (connection) => (connection as unknown as CoreConnection).on('error', () => undefined));
  pool.on('release', (connection) => {
    const core = connection as unknown as CoreConnection;
    core.stream?.unref();
    const timer = setTimeout(() => core.destroy(), POOL_IDLE_TIMEOUT_MS);
    timer.unref();
    idleTimers.set(core, timer);
  });
  pool.on('acquire', (connection) => {
    const core = connection as unknown as CoreConnection;
    core.stream?.ref();
    clearTimeout(idleTimers.get(core));
  });
  return pool;
}

// Core connections whose session already has the statement timeout set: a SET per call would cost a round trip.
const timedSessions = new WeakSet<object>();

/**
 * Sets the statement timeout of the session: MariaDB's max_statement_time (seconds, every
 * statement), else MySQL's max_execution_time (milliseconds, SELECT only).
 */
async function setStatementTimeout(conn: mysql.Connection, inputs: MysqlInputs): Promise<void> {
  const ms = statementTimeoutMs(inputs);
  try {
    await conn.query(`SET SESSION max_statement_time = ${ms / 1000}`);
  } catch (err) {
    if ((err as { errno?: number }).errno !== ER_UNKNOWN_SYSTEM_VARIABLE) throw err;
    await conn.query(`SET SESSION max_execution_time = ${Math.max(1, Math.round(ms))}`);
  }
}

/** Takes a pooled connection, setting its session's statement timeout the first time. */
async function acquire(pool: mysql.Pool, inputs: MysqlInputs): Promise<mysql.PoolConnection> {
  const conn = await pool.getConnection();
  try {
    if (!timedSessions.has(conn.connection)) {
      await setStatementTimeout(conn, inputs);
      timedSessions.add(conn.connection);
    }
  } catch (err) {
    conn.destroy();
    throw err;
  }
  return conn;
}

async function connect(inputs: MysqlInputs): Promise<mysql.Connection> {
  const conn = await mysql.createConnection(connectionOptions(inputs));
  // Errors of a live connection also reject the running query; the listener keeps them from crashing the worker.
  conn.on('error', () => undefined);
  try {
    await setStatementTimeout(conn, inputs);
  } catch (err) {
    conn.destroy();
    throw err;
  }
  return conn;
}

/** Asks the server, over a connection of its own, to stop the statement connection `threadId` is running. */
async function killQuery(inputs: MysqlInputs, threadId: number): Promise<void> {
  const conn = await mysql.createConnection({ ...connectionOptions(inputs), connectTimeout: Math.min(connectTimeoutMs(inputs), CANCEL_WAIT_MS) });
  conn.on('error', () => undefined);
  try {
    await conn.query(`KILL QUERY ${Number(threadId)}`);
  } finally {
    await conn.end().catch(() => conn.destroy());
  }
}

/** A server error: the statement failed, the connection is fine. */
function isSqlError(err: unknown): boolean {
  const e = err as { sqlState?: unknown; fatal?: unknown };
  return typeof e?.sqlState === 'string' && e.fatal !== true;
}

const ER_UNKNOWN_SYSTEM_VARIABLE = 1193;
const ER_UNSUPPORTED_PS = 1295;
const ER_BAD_DB_ERROR = 1049;

type ExecuteAnswer = [mysql.QueryResult, mysql.FieldPacket[] | undefined];

/**
 * Runs one statement as a prepared statement, so values travel as parameters. A statement the
 * server cannot prepare still runs when it has no parameters: then there is nothing to splice in.
 */
async function runStatement(conn: mysql.Connection, sql: string, params: unknown[] = []): Promise<ExecuteAnswer> {
  try {
    // JSON values only (the schema says so); mysql2 sends objects and arrays as JSON text.
    return (await conn.execute(sql, params as mysql.ExecuteValues[])) as ExecuteAnswer;
  } catch (err) {
    if ((err as { errno?: number }).errno !== ER_UNSUPPORTED_PS || params.length > 0) throw err;
    return (await conn.query(sql)) as ExecuteAnswer;
  }
}

const BINARY_CHARSET = 63;
const ENUM_FLAG = 256;
const SET_FLAG = 2048;
/** Protocol type codes to SQL type names; a pair is [text, binary], told apart by the column's charset. */
const MYSQL_TYPE_NAMES: Record<number, string | [string, string]> = {
  0x00: 'DECIMAL',
  0x01: 'TINYINT',
  0x02: 'SMALLINT',
  0x03: 'INT',
  0x04: 'FLOAT',
  0x05: 'DOUBLE',
  0x06: 'NULL',
  0x07: 'TIMESTAMP',
  0x08: 'BIGINT',
  0x09: 'MEDIUMINT',
  0x0a: 'DATE',
  0x0b: 'TIME',
  0x0c: 'DATETIME',
  0x0d: 'YEAR',
  0x0e: 'DATE',
  0x0f: ['VARCHAR', 'VARBINARY'],
  0x10: 'BIT',
  0xf2: 'VECTOR',
  0xf5: 'JSON',
  0xf6: 'DECIMAL',
  0xf7: 'ENUM',
  0xf8: 'SET',
  0xf9: ['TINYTEXT', 'TINYBLOB'],
  0xfa: ['MEDIUMTEXT', 'MEDIUMBLOB'],
  0xfb: ['LONGTEXT', 'LONGBLOB'],
  0xfc: ['TEXT', 'BLOB'],
  0xfd: ['VARCHAR', 'VARBINARY'],
  0xfe: ['CHAR', 'BINARY'],
  0xff: 'GEOMETRY',
};

function fieldType(field: mysql.FieldPacket): string {
  // MariaDB names JSON, UUID, INET6 and friends in extended metadata; the protocol says only "text".
  if (field.extendedFormat) return field.extendedFormat.toUpperCase();
  if (field.extendedTypeName) return field.extendedTypeName.toUpperCase();
  const flags = typeof field.flags === 'number' ? field.flags : 0;
  if (flags & ENUM_FLAG) return 'ENUM';
  if (flags & SET_FLAG) return 'SET';
  const name = MYSQL_TYPE_NAMES[field.columnType ?? field.type ?? -1];
  if (name === undefined) return String(field.columnType ?? field.type ?? 'unknown');
  return typeof name === 'string' ? name : name[field.characterSet === BINARY_CHARSET ? 1 : 0];
}

function isRowList(result: mysql.QueryResult): result is mysql.RowDataPacket[] | mysql.RowDataPacket[][] {
  return Array.isArray(result);
}

function queryResult([result, fields]: ExecuteAnswer): SqlQueryResult {
  if (!isRowList(result)) {
    const header = result as mysql.ResultSetHeader;
    const answer: SqlQueryResult = { rows: [], row_count: header.affectedRows, fields: [] };
    if (header.insertId) answer.insert_id = toJsonSafe(header.insertId) as number | string;
    return answer;
  }
  // CALL answers with one list per result set, then a status header: the first result set is the answer.
  const nested = Array.isArray(result[0]);
  const rows = (nested ? result[0] : result) as mysql.RowDataPacket[];
  const fieldList = (nested ? (fields as unknown as mysql.FieldPacket[][] | undefined)?.[0] : fields) ?? [];
  return {
    rows: jsonSafeRows(rows),
    row_count: rows.length,
    fields: fieldList.map((field): SqlField => ({ name: field.name, type: fieldType(field) })),
  };
}

const AUTH_ERRNOS = new Set([
  1044, // ER_DBACCESS_DENIED_ERROR: no access to the database
  1045, // ER_ACCESS_DENIED_ERROR: wrong password
  1698, // ER_ACCESS_DENIED_NO_PASSWORD_ERROR: a password is needed
]);
const TIMEOUT_ERRNOS = new Set([
  1969, // MariaDB ER_STATEMENT_TIMEOUT (max_statement_time)
  3024, // MySQL ER_QUERY_TIMEOUT (max_execution_time)
]);
// Worth a retry: the same statement may well succeed on the next attempt.
const RETRYABLE_ERRNOS = new Set([
  1205, // ER_LOCK_WAIT_TIMEOUT
  1213, // ER_LOCK_DEADLOCK
  1317, // ER_QUERY_INTERRUPTED: someone killed the statement
  1040, // ER_CON_COUNT_ERROR: too many connections
]);
// The server, not the SQL: shutting down, connection killed or aborted.
const UNAVAILABLE_ERRNOS = new Set([1053, 1077, 1152, 1153, 1184, 1927, 2006, 2013]);
const NETWORK_CODES = new Set(['PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT', 'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR']);

/**
 * MySQL's and MariaDB's errors as failures. Messages carry the server's message, error number and
 * SQLSTATE, never the password; a duplicate key's value is left out.
 */
function mysqlFailure(err: unknown, inputs: MysqlInputs, target: string): ApplicationFailure | undefined {
  const e = err as { errno?: unknown; sqlState?: unknown; message?: unknown };
  const code = errorCode(err);
  if (typeof e?.sqlState === 'string' && typeof e.errno === 'number') {
    const errno = e.errno;
    const message = typeof e.message === 'string' ? e.message : String(err);
    // Unlike PostgreSQL, MySQL puts the duplicate value in the message itself.
    const serverMessage = errno === 1062 ? message.replace(/^Duplicate entry '[\s\S]*' for key/, 'Duplicate entry for key') : message;
    const codes = `${code ? `${code} ` : ''}${errno}, SQLSTATE ${e.sqlState}`;
    const said = `${serverMessage} (${codes})`;
    const details = { code: code ?? String(errno), errno, sqlstate: e.sqlState };
    if (AUTH_ERRNOS.has(errno)) {
      return permanentFailure(FailureType.External, `${target}: ${authRefusedSentence(inputs.user, `${serverMessage}, ${codes}`)}`, details);
    }
    if (errno === ER_BAD_DB_ERROR) return permanentFailure(FailureType.External, `${target}: ${said}`, details);
    if (TIMEOUT_ERRNOS.has(errno)) {
      return transientFailure(
        FailureType.Timeout,
        `MYSQL statement ran longer than statement_timeout (${statementTimeoutMs(inputs)} ms) and the server stopped it (${errno})`,
        { details },
      );
    }
    if (RETRYABLE_ERRNOS.has(errno)) return transientFailure(FailureType.External, `MYSQL query failed: ${said}`, { details });
    if (UNAVAILABLE_ERRNOS.has(errno)) return transientFailure(FailureType.Network, `${target} failed: ${said}`, { details });
    return permanentFailure(FailureType.External, `MYSQL query failed: ${said}`, details);
  }
  if (code === 'HANDSHAKE_NO_SSL_SUPPORT') {
    return permanentFailure(FailureType.External, `${target}: the server does not accept TLS connections, so the call was not made: it may not be the server this connector is meant for; only the connector's owner can decide, in the connector, that it goes without TLS`, { code });
  }
  if (code === 'ETIMEDOUT') {
    return transientFailure(FailureType.Timeout, `${target}: no connection within connect_timeout (${connectTimeoutMs(inputs)} ms)`, { details: { code } });
  }
  if (code && NETWORK_CODES.has(code)) {
    return transientFailure(FailureType.Network, `${target} failed: the connection was lost (${code})`, { details: { code } });
  }
  return undefined;
}

const SYSTEM_SCHEMAS = ['mysql', 'performance_schema', 'sys', 'information_schema'];
const INTROSPECTION_SQL = `
SELECT s.SCHEMA_NAME AS schema_name, t.TABLE_NAME AS table_name, t.TABLE_TYPE AS table_type,
       c.COLUMN_NAME AS column_name, c.COLUMN_TYPE AS column_type, c.IS_NULLABLE AS is_nullable,
       c.COLUMN_DEFAULT AS column_default
FROM information_schema.SCHEMATA s
LEFT JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = s.SCHEMA_NAME
LEFT JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME
WHERE s.SCHEMA_NAME = DATABASE() AND s.SCHEMA_NAME NOT IN (${SYSTEM_SCHEMAS.map((name) => `'${name}'`).join(', ')})
ORDER BY t.TABLE_NAME, c.ORDINAL_POSITION`;

/** What the SQL template needs of `mysql2`. */
const mysqlDriver: SqlDriver<mysql.Connection, mysql.Pool> = {
  name: 'MYSQL',
  description: 'MySQL and MariaDB: parameterised queries and transactions, with a statement timeout and pooled connections.',
  defaultPort: 3306,
  connect,
  disconnect: async (conn, destroy) => (destroy ? conn.destroy() : conn.end().catch(() => conn.destroy())),
  createPool,
  endPool: (pool) => pool.end(),
  acquire,
  release: (conn, destroy) => (destroy ? conn.destroy() : (conn as mysql.PoolConnection).release()),
  sessionId: (conn) => conn.threadId,
  cancel: killQuery,
  run: async (conn, sql, params) => queryResult(await runStatement(conn, sql, params)),
  begin: (conn) => conn.beginTransaction(),
  commit: (conn) => conn.commit(),
  rollback: (conn) => conn.rollback(),
  commitFailureRollsBack: false,
  isStatementError: isSqlError,
  failure: mysqlFailure,
  introspectionSql: INTROSPECTION_SQL,
  // MariaDB reports "no default" of a nullable column as the text NULL (a string default would be quoted).
  introspectionRow: (row) => ({ ...row, column_default: row.column_default === 'NULL' ? null : row.column_default }),
};

/** Options of {@link createMysqlConnector}. */
export type MysqlConnectorOptions = SqlConnectorOptions;

/** Creates the MYSQL type with its own pools; `mysqlConnector` is the one workers use. */
export function createMysqlConnector(options: MysqlConnectorOptions = {}): ConnectorType<typeof mysqlSchema> {
  return createSqlConnector(mysqlDriver, options);
}

/** The MYSQL connector type. */
export const mysqlConnector: ConnectorType<typeof mysqlSchema> = createMysqlConnector();
