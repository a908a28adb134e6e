/**
 * What the SQL connector types (POSTGRES, MYSQL) share: the inputs every SQL database needs, the two
 * operations (`query`, `transaction`), the result shapes, JSON-safe rows, and the sentences a
 * connection test shows. Each type's own file holds its driver, pools, cancellation and error mapping.
 */
import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { FailureType, describeNetworkError, errorCode, permanentFailure } from './errors';
import { durationSchema, parseDurationMs } from './durations';
import { sensitive } from './sensitivity';
import type { InvokeContext } from './types';

/** Statement timeout when the inputs give none: 30 s. */
export const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000;
/** Connect timeout when the inputs give none: 10 s. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Connections per pool when the inputs give none. */
export const DEFAULT_POOL_SIZE = 5;
/** Most statements one `transaction` call may run. */
export const MAX_TRANSACTION_STATEMENTS = 100;
/** A pooled connection unused this long is closed: 30 s. */
export const POOL_IDLE_TIMEOUT_MS = 30_000;
/** How often a long statement heartbeats: 5 s. */
export const HEARTBEAT_INTERVAL_MS = 5_000;
/** How long a cancelled call waits for the server to confirm the cancellation before giving up on it: 2 s. */
export const CANCEL_WAIT_MS = 2_000;

/** Any JSON value: sent as a driver parameter, never spliced into the SQL text. */
const sqlParams = z.array(z.json());

/**
 * Where a SQL connector's calls go, for binding its password to that server: `host:port`, and how TLS
 * decides who can read the bytes, since a server in the path reads a password sent in clear or over
 * TLS it may fake: `db:5432` (plain TCP, the default), `db:5432 tls`, `db:5432 tls=no-verify`,
 * `db:5432 tls ca=sha256:<first 16 hex digits of the CA bundle's SHA-256>`.
 */
export function sqlDestination(defaultPort: number): (inputs: Record<string, unknown>) => string {
  return (inputs) => {
    const address = `${String(inputs.host ?? '127.0.0.1').toLowerCase()}:${String(inputs.port ?? defaultPort)}`;
    const tls = inputs.tls;
    if (tls === undefined || tls === false) return address;
    if (typeof tls !== 'object' || tls === null) return `${address} tls`;
    const { reject_unauthorized: verify, ca } = tls as { reject_unauthorized?: unknown; ca?: unknown };
    if (verify === false) return `${address} tls=no-verify`;
    return typeof ca === 'string' ? `${address} tls ca=sha256:${createHash('sha256').update(ca).digest('hex').slice(0, 16)}` : `${address} tls`;
  };
}

/** Settings of the connection itself; `defaultPort` is the database's usual port. Each field says what it means in its description. */
export function sqlConnectionFields(defaultPort: number) {
  return {
    host: z.string().min(1).default('127.0.0.1').describe('Host name or IP address of the server. Default `127.0.0.1`.'),
    port: z
      .number()
      .int()
      .min(1)
      .max(65_535)
      .default(defaultPort)
      .describe(`TCP port of the server, 1 to 65535. Default ${defaultPort}.`),
    database: z.string().min(1).describe('Database to connect to; MYSQL also limits `introspect` to it.'),
    user: z.string().min(1).describe('User to connect as.'),
    password: sensitive(z.string())
      .optional()
      .describe('Password of `user` (sensitive: encrypted at rest, masked on read). Default: none, for servers that trust the client.'),
    tls: z
      .union([
        z.boolean(),
        z.strictObject({
          reject_unauthorized: z.boolean().default(true).describe('Refuse server certificates that do not verify. Default `true`.'),
          ca: z.string().min(1).optional().describe('PEM bundle of the certificate authorities to verify the server certificate against. Default: the system CAs.'),
        }),
      ])
      .default(false)
      .describe(
        'TLS: `false` (plain TCP), `true` (TLS, verifying the server certificate against the system CAs), or ' +
          '`{ reject_unauthorized, ca }` to say how to verify it. Default `false`.',
      ),
    statement_timeout: durationSchema
      .default(DEFAULT_STATEMENT_TIMEOUT_MS)
      .describe(
        'Longest a statement may run before the server cancels it: milliseconds (a number) or a duration string ' +
          "such as '500ms', '30s', '2m'. Default 30000 (30 s).",
      ),
    pool_size: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(DEFAULT_POOL_SIZE)
      .describe('Most open connections kept for one stored connector version, 1 to 100. Default 5.'),
    connect_timeout: durationSchema
      .default(DEFAULT_CONNECT_TIMEOUT_MS)
      .describe(
        "Longest wait for a connection (TCP, TLS and login): milliseconds (a number) or a duration string such as '500ms', '10s'. Default 10000 (10 s).",
      ),
  };
}

const sqlStatement = z.strictObject({
  sql: z.string().min(1).describe('One SQL statement, with placeholders (`$1`, `$2`, ... for POSTGRES, `?` for MYSQL).'),
  params: sqlParams.optional().describe('Values of the placeholders, in order: any JSON values, always sent as driver parameters. Default `[]`.'),
});

/** What to run: `query` (one statement) or `transaction` (several, all or nothing). Each field says what it means in its description. */
export const sqlOperationFields = {
  operation: z
    .enum(['query', 'transaction'])
    .default('query')
    .describe('`query` runs `sql` with `params`; `transaction` runs `statements` in one transaction, all or nothing. Default `query`.'),
  sql: z
    .string()
    .min(1)
    .optional()
    .describe('The statement of a `query`, with placeholders (`$1`, `$2`, ... for POSTGRES, `?` for MYSQL); required to invoke a query.'),
  params: sqlParams
    .optional()
    .describe(
      'Values of the placeholders of `sql`, in order: any JSON values, always sent as driver parameters, never spliced into the SQL. ' +
        'Objects travel as JSON text; arrays as PostgreSQL arrays on POSTGRES, as JSON text on MYSQL. Default `[]`.',
    ),
  statements: z
    .array(sqlStatement)
    .min(1)
    .max(MAX_TRANSACTION_STATEMENTS)
    .optional()
    .describe(
      `The statements of a \`transaction\`, run in order on one connection, 1 to ${MAX_TRANSACTION_STATEMENTS}; required to invoke a transaction.`,
    ),
};

/**
 * Fails inputs that give a field of the other operation, naming the field. A missing `sql` or
 * `statements` is not a schema error: a stored profile holds only the connection, and `test` and
 * `introspect` validate it as it is; `operationInputFailure` refuses the call instead.
 */
export function refineSqlOperation(
  inputs: { operation: 'query' | 'transaction'; sql?: string; params?: unknown[]; statements?: unknown[] },
  ctx: z.RefinementCtx,
): void {
  if (inputs.operation === 'query') {
    if (inputs.statements !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['statements'], message: 'statements belong to operation transaction; a query runs sql' });
    }
  } else {
    if (inputs.sql !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['sql'], message: 'sql belongs to operation query; a transaction runs statements' });
    }
    if (inputs.params !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['params'], message: 'params belong to operation query; give each statement its own params' });
    }
  }
}

/** The failure for a call that says what to do but not what to run, or undefined when it can run. */
export function operationInputFailure(
  typeName: string,
  inputs: { operation: 'query' | 'transaction'; sql?: string; statements?: unknown[] },
): ApplicationFailure | undefined {
  if (inputs.operation === 'query' && inputs.sql === undefined) {
    return permanentFailure(FailureType.InvalidInput, `${typeName}: sql is required for operation query`, { issues: [{ path: 'sql', message: 'required' }] });
  }
  if (inputs.operation === 'transaction' && inputs.statements === undefined) {
    return permanentFailure(FailureType.InvalidInput, `${typeName}: statements are required for operation transaction`, {
      issues: [{ path: 'statements', message: 'required' }],
    });
  }
  return undefined;
}

/** One column of a result. */
export interface SqlField {
  name: string;
  /** The database's type name, e.g. `int4` or `VARCHAR`; a PostgreSQL type without a known name gives its OID. */
  type: string | number;
}

/** What a `query` returns. */
export interface SqlQueryResult {
  /** Rows as JSON-safe objects: dates as ISO strings, binary as base64, 64-bit integers as strings. */
  rows: Record<string, unknown>[];
  /** Rows returned, or rows changed by INSERT, UPDATE and DELETE. */
  row_count: number;
  fields: SqlField[];
  /** MYSQL only: the AUTO_INCREMENT value an INSERT generated, when it generated one. */
  insert_id?: number | string;
}

/** What a `transaction` returns: one entry per statement, in order. */
export interface SqlTransactionResult {
  results: { row_count: number; rows: Record<string, unknown>[] }[];
}

/** What `introspect` returns. */
export interface SqlIntrospection {
  schemas: {
    name: string;
    tables: {
      name: string;
      type: 'table' | 'view';
      columns: { name: string; type: string; nullable: boolean; default?: string }[];
    }[];
  }[];
}

/** One row of an information_schema query joining tables and columns, as both types select it. */
export interface IntrospectionRow {
  schema_name: string;
  table_name: string | null;
  table_type: string | null;
  column_name: string | null;
  column_type: string | null;
  is_nullable: string | null;
  column_default: string | null;
}

/** Groups information_schema rows (ordered by schema, table, column position) into the introspection tree. */
export function groupIntrospection(rows: IntrospectionRow[]): SqlIntrospection {
  const schemas: SqlIntrospection['schemas'] = [];
  for (const row of rows) {
    let schema = schemas.at(-1);
    if (schema?.name !== row.schema_name) {
      schema = { name: row.schema_name, tables: [] };
      schemas.push(schema);
    }
    if (row.table_name === null) continue;
    let table = schema.tables.at(-1);
    if (table?.name !== row.table_name) {
      table = { name: row.table_name, type: /VIEW/i.test(row.table_type ?? '') ? 'view' : 'table', columns: [] };
      schema.tables.push(table);
    }
    if (row.column_name === null) continue;
    const column: SqlIntrospection['schemas'][number]['tables'][number]['columns'][number] = {
      name: row.column_name,
      type: row.column_type ?? 'unknown',
      nullable: row.is_nullable === 'YES',
    };
    if (row.column_default !== null) column.default = row.column_default;
    table.columns.push(column);
  }
  return { schemas };
}

/**
 * A value as JSON can carry it without loss or surprise: dates become ISO strings, binary becomes
 * base64, bigint and non-finite numbers become strings, undefined becomes null.
 */
export function toJsonSafe(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
  if (typeof value === 'bigint') return value.toString();
  // JSON has no NaN or Infinity (PostgreSQL has both): keep them as words rather than turning them into null.
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (Array.isArray(value)) return value.map(toJsonSafe);
  if (typeof value === 'object') {
    const result: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) result[key] = toJsonSafe(item);
    return result;
  }
  return value;
}

export function jsonSafeRows(rows: readonly object[]): Record<string, unknown>[] {
  return rows.map((row) => toJsonSafe(row) as Record<string, unknown>);
}

/** Milliseconds of a duration input that the schema has already accepted. */
export function durationMs(value: number | string, fallback: number): number {
  return parseDurationMs(value) ?? fallback;
}

// Leading comments are skipped so `/* audit */ DELETE ...` still reads as DELETE.
const FIRST_KEYWORD = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*([A-Za-z]+)/;

/** `query SELECT` or `transaction 3 statements`; never the parameters. Undefined when the inputs say too little. */
export function describeSqlCall(inputs: Record<string, unknown>): string | undefined {
  try {
    const operation = inputs.operation ?? 'query';
    if (operation === 'transaction') {
      const count = Array.isArray(inputs.statements) ? inputs.statements.length : undefined;
      if (count === undefined) return 'transaction';
      return `transaction ${count} statement${count === 1 ? '' : 's'}`;
    }
    if (operation !== 'query') return undefined;
    const keyword = typeof inputs.sql === 'string' ? FIRST_KEYWORD.exec(inputs.sql)?.[1] : undefined;
    return keyword ? `query ${keyword.toUpperCase()}` : 'query';
  } catch {
    return undefined;
  }
}

/** The sentence for a refused login. Never the password; the driver's reason, which names no secret, follows. */
export function authRefusedSentence(user: string, reason?: string): string {
  return `the server refused user ${user}: wrong password or no access${reason ? ` (${reason})` : ''}`;
}

/** Certificate and handshake failures: a retry meets the same certificate, so they are not transient. */
export function isTlsError(err: unknown): boolean {
  const code = errorCode(err) ?? '';
  return /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL|HOSTNAME/.test(code);
}

/**
 * A connection test's message for a failed attempt: a plain sentence for a host that could not be
 * reached (refused, unknown), else the mapped failure's message, which already reads as one.
 */
export function connectionTestMessage(target: string, err: unknown, failure: ApplicationFailure): string {
  const sentence = describeNetworkError(err);
  // Codes errors.ts has no sentence for (SQLSTATEs, driver codes) read better as the mapped failure,
  // and so do timeouts, whose failure names connect_timeout.
  if (failure.type === FailureType.Network && errorCode(err) && !sentence.startsWith('network error ')) {
    return `Could not reach ${target}: ${sentence}.`;
  }
  return `${failure.message}.`;
}

/** The same failure with its message placed in context, e.g. `statements.2: ...; the transaction was rolled back`. */
export function relabelFailure(failure: ApplicationFailure, prefix: string, suffix = '', extraDetails: object = {}): ApplicationFailure {
  const details = failure.details?.[0];
  return ApplicationFailure.create({
    type: failure.type ?? undefined,
    message: `${prefix}${failure.message}${suffix}`,
    nonRetryable: failure.nonRetryable ?? undefined,
    details: [{ ...(typeof details === 'object' && details !== null ? details : {}), ...extraDetails }],
    nextRetryDelay: failure.nextRetryDelay ?? undefined,
  });
}

/**
 * Thrown inside a transaction to say which statement failed (or that COMMIT did), and whether the
 * ROLLBACK went through; the type's error mapper unwraps it.
 */
export class StatementFailed extends Error {
  constructor(
    readonly index: number | 'commit',
    readonly error: unknown,
    readonly rolledBack: boolean,
  ) {
    super(index === 'commit' ? 'commit failed' : `statements.${index} failed`);
    this.name = 'StatementFailed';
  }
}

/**
 * Runs `work` with a heartbeat every 5 s. When the activity is cancelled, asks the server to stop
 * the statement (`cancelServerSide`), waits for `work` to wind down, and rejects with the signal's
 * reason; after 2 s it rejects anyway and leaves `work` to finish and clean up on its own.
 */
export async function runCancellable<T>(ctx: InvokeContext, work: () => Promise<T>, cancelServerSide: () => Promise<void>): Promise<T> {
  if (ctx.signal.aborted) throw ctx.signal.reason;
  const started = Date.now();
  const heartbeats = setInterval(() => ctx.heartbeat({ running_ms: Date.now() - started }), HEARTBEAT_INTERVAL_MS);
  heartbeats.unref();
  let onAbort = () => {};
  const cancelled = new Promise<never>((_resolve, reject) => {
    onAbort = () => {
      let waited: NodeJS.Timeout | undefined;
      const giveUp = new Promise<void>((resolve) => {
        waited = setTimeout(resolve, CANCEL_WAIT_MS);
        waited.unref();
      });
      // Waiting for the work to wind down too means that, when the call rejects, the server has
      // stopped the statement and the connection is back in its pool or closed.
      const stopped = cancelServerSide()
        .catch(() => undefined)
        .then(() => running)
        .catch(() => undefined);
      void Promise.race([stopped, giveUp]).then(() => {
        clearTimeout(waited);
        reject(ctx.signal.reason);
      });
    };
  });
  const running = work();
  // Once cancelled, the work's own failure (the server's "statement cancelled") is expected and unwanted.
  running.catch(() => undefined);
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await Promise.race([running, cancelled]);
  } catch (err) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    throw err;
  } finally {
    clearInterval(heartbeats);
    ctx.signal.removeEventListener('abort', onAbort);
  }
}
