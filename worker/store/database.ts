import type { PGlite as PGliteType, Transaction } from '@electric-sql/pglite';
import { Pool, type PoolClient, type PoolConfig } from 'pg';

/** What the store needs of a PostgreSQL-speaking database. Implemented over `pg` and over embedded PGlite. */
export interface SqlExecutor {
  query<Row = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<Row[]>;
}

export interface SqlDatabase extends SqlExecutor {
  /** Where the data lives, for messages: never contains a password. */
  readonly description: string;
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /** Calls `onNotify` for each NOTIFY on `channel`, and with `undefined` when notifications may have been lost. */
  listen(channel: string, onNotify: (payload: string | undefined) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

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
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await fn({ query: async <Row>(sql: string, params?: unknown[]) => (await client.query(sql, params)).rows as Row[] });
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async listen(channel: string, onNotify: (payload: string | undefined) => void): Promise<() => Promise<void>> {
    let client: PoolClient | undefined;
    let stopped = false;
    const connect = async (): Promise<void> => {
      if (stopped || this.closed) return;
      try {
        client = await this.pool.connect();
        this.listeners.add(client);
        client.on('notification', (msg) => msg.channel === channel && onNotify(msg.payload));
        client.on('error', () => reconnect());
        await client.query(`LISTEN ${quoteIdent(channel)}`);
      } catch {
        reconnect();
      }
    };
    // Notifications sent while disconnected are lost: say so, so caches drop everything.
    const reconnect = () => {
      if (client) {
        this.listeners.delete(client);
        client.release(true);
        client = undefined;
      }
      onNotify(undefined);
      if (!stopped && !this.closed) setTimeout(() => void connect(), 1_000).unref();
    };
    await connect();
    return async () => {
      stopped = true;
      if (client) {
        this.listeners.delete(client);
        await client.query(`UNLISTEN ${quoteIdent(channel)}`).catch(() => {});
        client.release();
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

  async listen(channel: string, onNotify: (payload: string | undefined) => void): Promise<() => Promise<void>> {
    return this.db.listen(channel, (payload) => onNotify(payload));
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
  return `PostgreSQL ${config.host ?? process.env.PGHOST ?? 'localhost'}:${config.port ?? process.env.PGPORT ?? 5432}/${config.database ?? process.env.PGDATABASE ?? ''}`;
}
