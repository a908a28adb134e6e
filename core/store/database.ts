import type { PGlite as PGliteType, Transaction } from '@electric-sql/pglite';
import { Client, Pool, type PoolClient, type PoolConfig } from 'pg';

/** What the store needs of a PostgreSQL-speaking database. Implemented over `pg` and over embedded PGlite. */
export interface SqlExecutor {
  query<Row = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<Row[]>;
}

export interface SqlDatabase extends SqlExecutor {
  /** Where the data lives, for messages: never contains a password. */
  readonly description: string;
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /**
   * Calls `onNotify` for each NOTIFY on `channel`, and `onListening(true)` each time notifications start
   * to arrive (at first and after a reconnect), `onListening(false)` when they stopped: every NOTIFY
   * sent in between is lost. Resolves to a function that stops listening.
   */
  listen(channel: string, onNotify: (payload: string) => void, onListening?: (listening: boolean) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** application_name of the connection that LISTENs for store changes, as shown in pg_stat_activity. */
export const LISTEN_APPLICATION_NAME = 'temporal-connectors listen';
/** First wait before a dropped LISTEN connection is opened again: 500 ms, doubling on each failure. */
const LISTEN_RETRY_MS = 500;
/** Longest wait between attempts to open the LISTEN connection again: 10 s. */
const LISTEN_RETRY_MAX_MS = 10_000;

/** A `pg` pool. Suits production: several workers and the management surfaces share one server. */
export class PgDatabase implements SqlDatabase {
  readonly description: string;
  private readonly pool: Pool;
  private readonly listeners = new Set<PoolClient>();
  private closed = false;

  constructor(config: PoolConfig) {
    this.pool = new Pool({ max: 10, idleTimeoutMillis: 30_000, connectionTimeoutMillis: 5_000, ...config });
    // An idle client that the server drops must not crash the process; the next query reconnects.
    this.pool.on('error', () => {});
    this.description = describePg(config);
  }

  async query<Row>(sql: string, params?: unknown[]): Promise<Row[]> {
    return (await this.pool.query(sql, params)).rows as Row[];
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    // While checked out, the client has no listener of the pool's: its connection dropping (the backend
    // terminated, the server restarted) would be an unhandled 'error' event, which ends the process.
    let lost: Error | undefined;
    const onLost = (err: Error) => void (lost ??= err);
    const client = await this.checkOut(onLost);
    try {
      await client.query('BEGIN');
      const result = await fn({ query: async <Row>(sql: string, params?: unknown[]) => (await client.query(sql, params)).rows as Row[] });
      await client.query('COMMIT');
      return result;
    } catch (err) {
      // Without its connection the server has rolled the transaction back already.
      if (!lost) await client.query('ROLLBACK').catch(() => {});
      // A server's error (57P01 and the like) says what happened; a statement sent after the drop only
      // says "not queryable", and then the drop does.
      throw lost && (err as { code?: unknown }).code === undefined ? lost : err;
    } finally {
      client.removeListener('error', onLost);
      // A client whose connection dropped is destroyed, not handed to the next caller.
      client.release(lost);
    }
  }

  /**
   * A client of the pool with `onError` listening from the moment it is checked out. Listening after
   * `await pool.connect()` is too late: a client released and checked out again while its connection's
   * input is being read (the pool full, a query's answer and the server's FATAL in one read) reports
   * the drop before the awaiting code runs.
   */
  private checkOut(onError: (err: Error) => void): Promise<PoolClient> {
    return new Promise((resolve, reject) =>
      this.pool.connect((err, client) => {
        if (err || !client) return reject(err ?? new Error('the pool gave no client'));
        client.on('error', onError);
        resolve(client);
      }),
    );
  }

  async listen(channel: string, onNotify: (payload: string) => void, onListening: (listening: boolean) => void = () => {}): Promise<() => Promise<void>> {
    let current: PoolClient | undefined;
    let retry: NodeJS.Timeout | undefined;
    let stopped = false;
    let failures = 0;
    const connect = async (): Promise<void> => {
      retry = undefined;
      if (stopped || this.closed) return;
      let client: PoolClient | undefined;
      let lost = false;
      // A drop during a query is reported twice (the client's error event and the query's rejection):
      // only the first report may release and schedule a retry, or one drop would open two connections.
      const onLost = () => {
        if (lost) return;
        lost = true;
        // Not when close() or the unlisten has already released it: a second release throws.
        if (client && this.listeners.delete(client)) client.release(true);
        if (current === client && current !== undefined) {
          current = undefined;
          onListening(false);
        }
        if (!stopped && !this.closed) {
          retry = setTimeout(() => void connect(), Math.min(LISTEN_RETRY_MAX_MS, LISTEN_RETRY_MS * 2 ** failures++));
          retry.unref();
        }
      };
      try {
        client = await this.checkOut(onLost);
        if (lost) {
          // Dropped before this code ran: onLost could not release it yet.
          client.release(true);
          return;
        }
        this.listeners.add(client);
        client.on('notification', (msg) => msg.channel === channel && !lost && onNotify(msg.payload ?? ''));
        // Named, so an operator (and the tests) can tell this connection apart in pg_stat_activity.
        await client.query("SELECT set_config('application_name', $1, false)", [LISTEN_APPLICATION_NAME]);
        await client.query(`LISTEN ${quoteIdent(channel)}`);
      } catch {
        onLost();
        return;
      }
      if (lost) return;
      if (stopped || this.closed) {
        this.listeners.delete(client);
        client.release(true);
        return;
      }
      failures = 0;
      current = client;
      onListening(true);
    };
    await connect();
    return async () => {
      stopped = true;
      if (retry) clearTimeout(retry);
      const client = current;
      current = undefined;
      // Not when close() has already destroyed it.
      if (client && this.listeners.delete(client)) {
        await client.query(`UNLISTEN ${quoteIdent(channel)}`).catch(() => {});
        // Destroyed rather than returned: it carries the LISTEN connection's application_name.
        client.release(true);
      }
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const client of this.listeners) client.release(true);
    this.listeners.clear();
    await this.pool.end();
  }
}

/**
 * Embedded PostgreSQL (PGlite, WebAssembly) in a folder, or in memory: the default that needs no
 * server. Same SQL as {@link PgDatabase}. One process at a time may open a folder.
 */
export class PgliteDatabase implements SqlDatabase {
  readonly description: string;

  private constructor(
    private readonly db: PGliteType,
    dataDir: string | undefined,
  ) {
    this.description = dataDir ? `embedded PostgreSQL in ${dataDir}` : 'embedded PostgreSQL in memory';
  }

  /** Opens (creating when needed) the embedded database in `dataDir`; in memory when omitted. */
  static async open(dataDir?: string): Promise<PgliteDatabase> {
    const { PGlite } = await import('@electric-sql/pglite');
    return new PgliteDatabase(await PGlite.create(dataDir), dataDir);
  }

  async query<Row>(sql: string, params?: unknown[]): Promise<Row[]> {
    return (await this.db.query<Row>(sql, params)).rows;
  }

  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.db.transaction((tx: Transaction) =>
      fn({ query: async <Row>(sql: string, params?: unknown[]) => (await tx.query<Row>(sql, params)).rows }),
    );
  }

  async listen(channel: string, onNotify: (payload: string) => void, onListening: (listening: boolean) => void = () => {}): Promise<() => Promise<void>> {
    // One in-process database: the connection cannot drop, so notifications flow until unlisten.
    const unlisten = await this.db.listen(channel, (payload) => onNotify(payload));
    onListening(true);
    return unlisten;
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function describePg(config: PoolConfig): string {
  if (config.connectionString) {
    try {
      const url = new URL(config.connectionString);
      return `PostgreSQL ${url.host}${url.pathname}`;
    } catch {
      return 'PostgreSQL (connection string)';
    }
  }
  // Where pg itself will connect: it fills what the config leaves out from its PG* variables and defaults.
  // An unconnected client opens nothing.
  const resolved = new Client(config);
  return `PostgreSQL ${resolved.host}:${resolved.port}/${resolved.database ?? ''}`;
}
