import type { PlainObject } from '../inputs';
import type { VaultSecretRef } from '../vault';
import type { SqlDatabase, SqlExecutor } from './database';

/** Retry defaults of a connector, snake_case because they are data (YAML, API). */
export interface RetrySettings {
  /** Attempts in all, 1 = no retry. */
  maximum_attempts?: number;
  /** First retry delay, a duration such as `1s`. */
  initial_interval?: string;
  backoff_coefficient?: number;
  /** Longest retry delay, a duration such as `1m`. */
  maximum_interval?: string;
}

/** A connector as stored: sensitive fields of `value` hold ciphertext. */
export interface ConnectorRecord {
  name: string;
  type: string;
  description: string;
  value: PlainObject;
  vault_secrets: VaultSecretRef[];
  locked: string[];
  retry?: RetrySettings;
  /** Per-attempt timeout of calls, a duration such as `30s`. */
  timeout?: string;
}

/** One version of a connector. Every change writes a new one; deleting writes a tombstone version. */
export interface StoredConnector extends ConnectorRecord {
  version: number;
  deleted: boolean;
  created_at: Date;
  created_by: string;
}

export class StoreConflictError extends Error {
  override name = 'StoreConflictError';
  constructor(
    readonly connector: string,
    readonly expectedVersion: number,
    readonly currentVersion: number,
  ) {
    super(`connector ${connector} is at version ${currentVersion}, not ${expectedVersion}: reload it and apply your change again`);
  }
}

export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/** Schema changes, applied in order once each. Never edit one that has shipped: add the next. */
const MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
      CREATE TABLE tc_connector_versions (
        name          text        NOT NULL,
        version       integer     NOT NULL CHECK (version > 0),
        type          text        NOT NULL,
        description   text        NOT NULL DEFAULT '',
        value         jsonb       NOT NULL DEFAULT '{}',
        vault_secrets jsonb       NOT NULL DEFAULT '[]',
        locked        jsonb       NOT NULL DEFAULT '[]',
        retry         jsonb,
        timeout       text,
        deleted       boolean     NOT NULL DEFAULT false,
        created_at    timestamptz NOT NULL DEFAULT now(),
        created_by    text        NOT NULL DEFAULT '',
        PRIMARY KEY (name, version)
      );`,
  },
];

/** Channel on which every change is announced, with the connector name as payload. */
export const CHANGE_CHANNEL = 'tc_connector_changes';

const COLUMNS = 'name, version, type, description, value, vault_secrets, locked, retry, timeout, deleted, created_at, created_by';

/** Versioned connector records in PostgreSQL (server or embedded). Knows nothing of encryption or types. */
export class ConnectorStore {
  constructor(readonly db: SqlDatabase) {}

  /** Creates or upgrades the schema. Safe to run from several workers at once. */
  async migrate(): Promise<void> {
    await this.guard(() =>
      this.db.transaction(async (tx) => {
        // Serialises concurrent migrators; the number is arbitrary but fixed for this project.
        await tx.query('SELECT pg_advisory_xact_lock(727274001)');
        await tx.query('CREATE TABLE IF NOT EXISTS tc_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
        const done = new Set((await tx.query<{ version: number }>('SELECT version FROM tc_migrations')).map((r) => r.version));
        for (const migration of MIGRATIONS) {
          if (done.has(migration.version)) continue;
          await tx.query(migration.sql);
          await tx.query('INSERT INTO tc_migrations (version) VALUES ($1)', [migration.version]);
        }
      }),
    );
  }

  /** The current version, or a given one; undefined when absent (a deleted connector is absent unless asked by version). */
  async get(name: string, version?: number): Promise<StoredConnector | undefined> {
    const rows = await this.guard(() =>
      version === undefined
        ? this.db.query<StoredConnector>(`SELECT ${COLUMNS} FROM tc_connector_versions WHERE name = $1 ORDER BY version DESC LIMIT 1`, [name])
        : this.db.query<StoredConnector>(`SELECT ${COLUMNS} FROM tc_connector_versions WHERE name = $1 AND version = $2`, [name, version]),
    );
    const row = rows[0];
    if (!row || (version === undefined && row.deleted)) return undefined;
    return normalise(row);
  }

  /** Current versions of all connectors that are not deleted, by name. */
  async list(): Promise<StoredConnector[]> {
    const rows = await this.guard(() =>
      this.db.query<StoredConnector>(
        `SELECT * FROM (SELECT DISTINCT ON (name) ${COLUMNS} FROM tc_connector_versions ORDER BY name, version DESC) AS latest
         WHERE NOT deleted ORDER BY name`,
      ),
    );
    return rows.map(normalise);
  }

  /** Every version, newest first. */
  async history(name: string): Promise<StoredConnector[]> {
    const rows = await this.guard(() =>
      this.db.query<StoredConnector>(`SELECT ${COLUMNS} FROM tc_connector_versions WHERE name = $1 ORDER BY version DESC`, [name]),
    );
    return rows.map(normalise);
  }

  /**
   * Writes `record` as the next version. `expectedVersion` (0 = must not exist) makes the write
   * conditional: a stale one fails with {@link StoreConflictError} and writes nothing.
   * `prepare` sees the current version inside the transaction (e.g. to keep masked secrets).
   */
  async put(
    record: ConnectorRecord,
    options: { expectedVersion?: number; actor?: string; prepare?: (current: StoredConnector | undefined) => ConnectorRecord } = {},
  ): Promise<StoredConnector> {
    const [written] = await this.putMany([{ record, expectedVersion: options.expectedVersion, prepare: options.prepare }], options.actor);
    return written;
  }

  /** Writes a tombstone version; history stays readable. False when there was nothing to delete. */
  async delete(name: string, options: { expectedVersion?: number; actor?: string } = {}): Promise<StoredConnector | undefined> {
    const current = await this.get(name);
    if (!current) return undefined;
    return this.write(name, options.expectedVersion, options.actor, (latest) => ({ ...(latest ?? current), deleted: true }));
  }

  /** Rewrites every version's sensitive values in place (key rotation); history keeps its version numbers. */
  async rewriteAllValues(transform: (row: StoredConnector) => PlainObject): Promise<number> {
    return this.guard(() =>
      this.db.transaction(async (tx) => {
        const rows = (await tx.query<StoredConnector>(`SELECT ${COLUMNS} FROM tc_connector_versions FOR UPDATE`)).map(normalise);
        for (const row of rows) {
          await tx.query('UPDATE tc_connector_versions SET value = $3::jsonb WHERE name = $1 AND version = $2', [
            row.name,
            row.version,
            JSON.stringify(transform(row)),
          ]);
        }
        if (rows.length > 0) await tx.query('SELECT pg_notify($1, $2)', [CHANGE_CHANNEL, '*']);
        return rows.length;
      }),
    );
  }

  /**
   * Calls `onChange(name)` after each committed change (`undefined`: anything may have changed), and
   * `onListening` as in {@link SqlDatabase.listen}: changes committed while it is `false` are not announced.
   */
  watch(onChange: (name: string | undefined) => void, onListening?: (listening: boolean) => void): Promise<() => Promise<void>> {
    return this.db.listen(CHANGE_CHANNEL, (payload) => onChange(payload === '*' ? undefined : payload), onListening);
  }


  close(): Promise<void> {
    return this.db.close();
  }

  /**
   * Writes several connectors in one transaction: all of them, or (on any error, conflicts
   * included) none. For multi-document `apply`.
   */
  async putMany(
    writes: ReadonlyArray<{ record: ConnectorRecord; expectedVersion?: number; prepare?: (current: StoredConnector | undefined) => ConnectorRecord }>,
    actor?: string,
  ): Promise<StoredConnector[]> {
    return this.guard(() =>
      this.db.transaction(async (tx) => {
        const written: StoredConnector[] = [];
        for (const { record, expectedVersion, prepare } of writes) {
          written.push(
            await writeVersion(tx, record.name, expectedVersion, actor, (current) => ({ ...(prepare ? prepare(current) : record), deleted: false })),
          );
        }
        return written;
      }),
    );
  }

  private async write(
    name: string,
    expectedVersion: number | undefined,
    actor: string | undefined,
    build: (current: StoredConnector | undefined) => ConnectorRecord & { deleted: boolean },
  ): Promise<StoredConnector> {
    return this.guard(() => this.db.transaction((tx) => writeVersion(tx, name, expectedVersion, actor, build)));
  }

  // Turns "cannot reach the database" into one clear error; other errors (conflicts, bugs) pass through.
  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof StoreConflictError) throw err;
      const code = (err as { code?: string }).code;
      if (code && /^(ECONNREFUSED|ENOTFOUND|ETIMEDOUT|ECONNRESET|EHOSTUNREACH|57P0[13]|08\d\d\d|3D000|28P01|28000)$/.test(code)) {
        throw new StoreUnavailableError(`the connector store (${this.db.description}) is unavailable: ${code}`);
      }
      if (/timeout exceeded when trying to connect|Connection terminated/i.test((err as Error).message ?? '')) {
        throw new StoreUnavailableError(`the connector store (${this.db.description}) is unavailable: connection timed out`);
      }
      throw err;
    }
  }
}

/** Inserts the next version of `name` inside transaction `tx`, checking `expectedVersion` first. */
async function writeVersion(
  tx: SqlExecutor,
  name: string,
  expectedVersion: number | undefined,
  actor: string | undefined,
  build: (current: StoredConnector | undefined) => ConnectorRecord & { deleted: boolean },
): Promise<StoredConnector> {
  // One writer per connector at a time, so "check version, insert next" cannot interleave.
  await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [name]);
  const [latest] = (
    await tx.query<StoredConnector>(`SELECT ${COLUMNS} FROM tc_connector_versions WHERE name = $1 ORDER BY version DESC LIMIT 1`, [name])
  ).map(normalise);
  const live = latest && !latest.deleted ? latest : undefined;
  const currentVersion = live?.version ?? 0;
  if (expectedVersion !== undefined && expectedVersion !== currentVersion) {
    throw new StoreConflictError(name, expectedVersion, currentVersion);
  }
  const next = build(live);
  const [row] = await tx.query<StoredConnector>(
    `INSERT INTO tc_connector_versions (name, version, type, description, value, vault_secrets, locked, retry, timeout, deleted, created_by)
     VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7::jsonb, $8::jsonb, $9, $10, $11) RETURNING ${COLUMNS}`,
    [
      name,
      (latest?.version ?? 0) + 1,
      next.type,
      next.description ?? '',
      JSON.stringify(next.value ?? {}),
      JSON.stringify(next.vault_secrets ?? []),
      JSON.stringify(next.locked ?? []),
      next.retry === undefined ? null : JSON.stringify(next.retry),
      next.timeout ?? null,
      next.deleted,
      actor ?? '',
    ],
  );
  await tx.query('SELECT pg_notify($1, $2)', [CHANGE_CHANNEL, name]);
  return normalise(row);
}

function normalise(row: StoredConnector): StoredConnector {
  return {
    name: row.name,
    version: Number(row.version),
    type: row.type,
    description: row.description ?? '',
    value: row.value ?? {},
    vault_secrets: row.vault_secrets ?? [],
    locked: row.locked ?? [],
    retry: row.retry ?? undefined,
    timeout: row.timeout ?? undefined,
    deleted: Boolean(row.deleted),
    created_at: row.created_at instanceof Date ? row.created_at : new Date(row.created_at),
    created_by: row.created_by ?? '',
  };
}
