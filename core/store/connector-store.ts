import type { PlainObject } from '../inputs';
import type { VaultSecretRef } from '../vault';
import type { ConnectorLimits, ConnectorRetry } from '../../workflows/types';
import type { SqlDatabase, SqlExecutor } from './database';

/** Retry defaults of a connector: the one shape the profile, the store and the descriptor share. */
export type RetrySettings = ConnectorRetry;

/** A connector as stored: sensitive fields of `value` hold ciphertext. */
export interface ConnectorRecord {
  name: string;
  type: string;
  description: string;
  value: PlainObject;
  vault_secrets: VaultSecretRef[];
  locked: string[];
  /** Destinations other than the connector's own that its secrets may follow an override to. */
  allowed_destinations: string[];
  retry?: RetrySettings;
  /** Per-attempt timeout of calls, a duration such as `30s`. */
  timeout?: string;
  /** Concurrency and rate limits of calls through this connector. */
  limits?: ConnectorLimits;
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
const MIGRATIONS: ReadonlyArray<{ version: number; sql: string | readonly string[] }> = [
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
  {
    version: 2,
    // Which encryption key ids rotate-key moved the store to and away from: writers check it, so a
    // process with an out-of-date keyring cannot bring a retired key back.
    sql: `
      CREATE TABLE tc_encryption_keys (
        key_id     text        PRIMARY KEY,
        retired    boolean     NOT NULL,
        changed_at timestamptz NOT NULL DEFAULT now()
      );`,
  },
  { version: 3, sql: `ALTER TABLE tc_connector_versions ADD COLUMN allowed_destinations jsonb NOT NULL DEFAULT '[]'` },
  { version: 4, sql: `ALTER TABLE tc_connector_versions ADD COLUMN limits jsonb` },
  {
    version: 5,
    // The state of connectors' limits, shared by every connector worker (core/limits.ts): leases of
    // calls in flight (expiring, so a dead worker's slots come back), the starts counted by rates,
    // back-offs a 429 asked for, and calls waiting.
    // One statement each: the embedded store's driver runs one per query.
    sql: [
      `CREATE TABLE tc_limit_leases (
        id          text        PRIMARY KEY,
        connector   text        NOT NULL,
        holder      text        NOT NULL,
        acquired_at timestamptz NOT NULL DEFAULT now(),
        expires_at  timestamptz NOT NULL
      )`,
      'CREATE INDEX tc_limit_leases_connector ON tc_limit_leases (connector, expires_at)',
      'CREATE TABLE tc_limit_starts (connector text NOT NULL, started_at timestamptz NOT NULL)',
      'CREATE INDEX tc_limit_starts_connector ON tc_limit_starts (connector, started_at)',
      'CREATE TABLE tc_limit_backoffs (connector text PRIMARY KEY, until timestamptz NOT NULL)',
      'CREATE TABLE tc_limit_waiters (connector text NOT NULL, holder text NOT NULL, seen_at timestamptz NOT NULL, PRIMARY KEY (connector, holder))',
    ],
  },
  {
    version: 6,
    // A lease names the execution it was granted to (taken from the activity's own info, never from
    // what a caller passes), and when its call started: the start is taken right before sending, once
    // (core/limits.ts). Leases of older workers have no owner, so they can start nothing.
    sql: [
      'ALTER TABLE tc_limit_leases ADD COLUMN owner_workflow_id text',
      'ALTER TABLE tc_limit_leases ADD COLUMN owner_run_id text',
      'ALTER TABLE tc_limit_leases ADD COLUMN started_at timestamptz',
    ],
  },
  {
    version: 7,
    // Secrets every connector worker on this store shares and nothing else needs, made once here so
    // that they exist without any configuration: `descriptor-seal` keys the seal that lets
    // `connectors.invoke` trust a connector version only its own worker chose (core/descriptor-seal.ts).
    // gen_random_uuid() draws from the server's strong random source; two give 244 random bits.
    sql: [
      'CREATE TABLE tc_worker_secrets (name text PRIMARY KEY, secret text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())',
      `INSERT INTO tc_worker_secrets (name, secret) VALUES ('descriptor-seal', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''))`,
    ],
  },
];

/**
 * Encryption key ids as `rotate-key` left them: `current` is the key the last rotation re-encrypted
 * every secret under, `retired` the ids it re-encrypted away from. Empty before the first rotation.
 */
export interface EncryptionKeyState {
  current?: string;
  retired: ReadonlySet<string>;
}

/** What a write's `prepare` callback sees inside its transaction. */
export interface WriteContext {
  /** The key state committed by the last rotation; no rotation runs while the write does. */
  keys: EncryptionKeyState;
}

/** Channel on which every change is announced, with the connector name as payload. */
export const CHANGE_CHANNEL = 'tc_connector_changes';

const COLUMNS = 'name, version, type, description, value, vault_secrets, locked, allowed_destinations, retry, timeout, limits, deleted, created_at, created_by';

// Advisory lock (two-key form, apart from the one-key locks taken per connector name) that makes key
// rotation and writes exclusive: every write holds it shared, a rotation exclusively. Without it a
// write that commits during a rotation keeps ciphertext under the old key (a secret written back
// masked copies it; a row inserted after the rotation's snapshot is never re-encrypted), and dropping
// the old key then breaks that connector.
const ROTATION_LOCK = '727274, 2';

/** Takes the write side of {@link ROTATION_LOCK}; first in every write transaction, so locks are taken in one order. */
async function lockForWrite(tx: SqlExecutor): Promise<void> {
  await tx.query(`SELECT pg_advisory_xact_lock_shared(${ROTATION_LOCK})`);
}

async function readKeyState(tx: SqlExecutor): Promise<EncryptionKeyState> {
  const rows = await tx.query<{ key_id: string; retired: boolean }>('SELECT key_id, retired FROM tc_encryption_keys');
  return { current: rows.find((r) => !r.retired)?.key_id, retired: new Set(rows.filter((r) => r.retired).map((r) => r.key_id)) };
}

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
          for (const statement of typeof migration.sql === 'string' ? [migration.sql] : migration.sql) await tx.query(statement);
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
    options: { expectedVersion?: number; actor?: string; prepare?: (current: StoredConnector | undefined, context: WriteContext) => ConnectorRecord } = {},
  ): Promise<StoredConnector> {
    const [written] = await this.putMany([{ record, expectedVersion: options.expectedVersion, prepare: options.prepare }], options.actor);
    return written;
  }

  /** Writes a tombstone version; history stays readable. Undefined when there was nothing to delete. */
  async delete(name: string, options: { expectedVersion?: number; actor?: string } = {}): Promise<StoredConnector | undefined> {
    return this.write(name, async (tx) => {
      // The tombstone copies the latest version as read under the write locks, never an earlier read.
      const latest = await latestVersion(tx, name);
      if (!latest || latest.deleted) return undefined;
      return writeVersion(tx, name, options.expectedVersion, options.actor, () => ({ ...latest, deleted: true }));
    });
  }

  /**
   * Writes version `version` of `name` (ciphertext included) as the newest version. Undefined when that
   * version does not exist or is a tombstone. The old version is read under the write locks, so a key
   * rotation cannot slip between reading and copying it.
   */
  async restore(
    name: string,
    version: number,
    options: {
      expectedVersion?: number;
      actor?: string;
      /** Rewrites the old version before it is written, given every version of the connector, newest first, read under the write lock. */
      prepare?: (old: StoredConnector, versions: StoredConnector[], context: WriteContext) => StoredConnector;
    } = {},
  ): Promise<StoredConnector | undefined> {
    return this.write(name, async (tx) => {
      const [old] = (await tx.query<StoredConnector>(`SELECT ${COLUMNS} FROM tc_connector_versions WHERE name = $1 AND version = $2`, [name, version])).map(
        normalise,
      );
      if (!old || old.deleted) return undefined;
      const prepare = options.prepare;
      if (!prepare) return writeVersion(tx, name, options.expectedVersion, options.actor, () => ({ ...old, deleted: false }));
      const versions = (await tx.query<StoredConnector>(`SELECT ${COLUMNS} FROM tc_connector_versions WHERE name = $1 ORDER BY version DESC`, [name])).map(normalise);
      const context: WriteContext = { keys: await readKeyState(tx) };
      return writeVersion(tx, name, options.expectedVersion, options.actor, () => ({ ...prepare(old, versions, context), deleted: false }));
    });
  }

  /** The worker secret `name` made by the migrations (e.g. `descriptor-seal`); never shown anywhere. */
  async workerSecret(name: string): Promise<string> {
    const [row] = await this.guard(() => this.db.query<{ secret: string }>('SELECT secret FROM tc_worker_secrets WHERE name = $1', [name]));
    if (!row) throw new Error(`the connector store has no worker secret ${name}: run the migrations (a connector worker does at start)`);
    return row.secret;
  }

  /** The encryption key state of the last rotation. */
  async keyState(): Promise<EncryptionKeyState> {
    return this.guard(() => readKeyState(this.db));
  }

  /**
   * Rewrites every version's sensitive values in place (key rotation); history keeps its version numbers.
   * No write runs meanwhile (see {@link ROTATION_LOCK}). In one transaction: `check` sees the key state of
   * the last rotation and may throw to refuse; `transform` rewrites each row; `keys()`, called after
   * all rows, names the key everything is now under (it becomes current) and the ids replaced (they,
   * and any earlier current key, are retired).
   */
  async rewriteAllValues(rotation: {
    check?: (context: WriteContext) => void;
    transform: (row: StoredConnector) => PlainObject;
    keys?: () => { current: string; retired: Iterable<string> };
  }): Promise<number> {
    return this.guard(() =>
      this.db.transaction(async (tx) => {
        await tx.query(`SELECT pg_advisory_xact_lock(${ROTATION_LOCK})`);
        rotation.check?.({ keys: await readKeyState(tx) });
        const rows = (await tx.query<StoredConnector>(`SELECT ${COLUMNS} FROM tc_connector_versions FOR UPDATE`)).map(normalise);
        for (const row of rows) {
          await tx.query('UPDATE tc_connector_versions SET value = $3::jsonb WHERE name = $1 AND version = $2', [
            row.name,
            row.version,
            JSON.stringify(rotation.transform(row)),
          ]);
        }
        const keys = rotation.keys?.();
        if (keys) {
          const retired = [...new Set(keys.retired)].filter((id) => id !== keys.current);
          await tx.query('UPDATE tc_encryption_keys SET retired = true, changed_at = now() WHERE key_id <> $1 AND NOT retired', [keys.current]);
          await tx.query(
            `INSERT INTO tc_encryption_keys (key_id, retired) SELECT jsonb_array_elements_text($1::jsonb), true
             ON CONFLICT (key_id) DO UPDATE SET retired = true, changed_at = now() WHERE NOT tc_encryption_keys.retired`,
            [JSON.stringify(retired)],
          );
          await tx.query(
            `INSERT INTO tc_encryption_keys (key_id, retired) VALUES ($1, false)
             ON CONFLICT (key_id) DO UPDATE SET retired = false, changed_at = now() WHERE tc_encryption_keys.retired`,
            [keys.current],
          );
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
    writes: ReadonlyArray<{
      record: ConnectorRecord;
      expectedVersion?: number;
      prepare?: (current: StoredConnector | undefined, context: WriteContext) => ConnectorRecord;
    }>,
    actor?: string,
  ): Promise<StoredConnector[]> {
    return this.guard(() =>
      this.db.transaction(async (tx) => {
        await lockForWrite(tx);
        const context: WriteContext = { keys: await readKeyState(tx) };
        const written: StoredConnector[] = [];
        for (const { record, expectedVersion, prepare } of writes) {
          written.push(
            await writeVersion(tx, record.name, expectedVersion, actor, (current) => ({ ...(prepare ? prepare(current, context) : record), deleted: false })),
          );
        }
        return written;
      }),
    );
  }

  /** Runs `fn` in a write transaction that holds the write locks of {@link ROTATION_LOCK} and of `name`. */
  private async write<T>(name: string, fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.guard(() =>
      this.db.transaction(async (tx) => {
        await lockForWrite(tx);
        await lockName(tx, name);
        return fn(tx);
      }),
    );
  }

  // Turns "cannot reach the database" into one clear error; other errors (conflicts, bugs) pass through.
  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof StoreConflictError) throw err;
      throw storeUnavailable(err, this.db) ?? err;
    }
  }
}

/** `err` as a {@link StoreUnavailableError} when it says the database cannot be reached; else undefined. */
export function storeUnavailable(err: unknown, db: { description: string }): StoreUnavailableError | undefined {
  if (err instanceof StoreUnavailableError) return err;
  const code = (err as { code?: string } | undefined)?.code;
  if (code && /^(ECONNREFUSED|ENOTFOUND|ETIMEDOUT|ECONNRESET|EHOSTUNREACH|57P0[13]|08\d\d\d|3D000|28P01|28000)$/.test(code)) {
    return new StoreUnavailableError(`the connector store (${db.description}) is unavailable: ${code}`);
  }
  if (/timeout exceeded when trying to connect|Connection terminated/i.test((err as Error | undefined)?.message ?? '')) {
    return new StoreUnavailableError(`the connector store (${db.description}) is unavailable: connection timed out`);
  }
  return undefined;
}

/** One writer per connector at a time, so "check version, insert next" cannot interleave. Re-entrant within a transaction. */
async function lockName(tx: SqlExecutor, name: string): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [name]);
}

async function latestVersion(tx: SqlExecutor, name: string): Promise<StoredConnector | undefined> {
  const [latest] = await tx.query<StoredConnector>(`SELECT ${COLUMNS} FROM tc_connector_versions WHERE name = $1 ORDER BY version DESC LIMIT 1`, [name]);
  return latest && normalise(latest);
}

/**
 * Inserts the next version of `name` inside transaction `tx`, checking `expectedVersion` first. The
 * caller holds the write side of {@link ROTATION_LOCK}.
 */
async function writeVersion(
  tx: SqlExecutor,
  name: string,
  expectedVersion: number | undefined,
  actor: string | undefined,
  build: (current: StoredConnector | undefined) => ConnectorRecord & { deleted: boolean },
): Promise<StoredConnector> {
  await lockName(tx, name);
  const latest = await latestVersion(tx, name);
  const live = latest && !latest.deleted ? latest : undefined;
  const currentVersion = live?.version ?? 0;
  if (expectedVersion !== undefined && expectedVersion !== currentVersion) {
    throw new StoreConflictError(name, expectedVersion, currentVersion);
  }
  const next = build(live);
  const [row] = await tx.query<StoredConnector>(
    `INSERT INTO tc_connector_versions (name, version, type, description, value, vault_secrets, locked, retry, timeout, deleted, created_by, allowed_destinations, limits)
     VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7::jsonb, $8::jsonb, $9, $10, $11, $12::jsonb, $13::jsonb) RETURNING ${COLUMNS}`,
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
      JSON.stringify(next.allowed_destinations ?? []),
      next.limits === undefined ? null : JSON.stringify(next.limits),
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
    allowed_destinations: row.allowed_destinations ?? [],
    retry: row.retry ?? undefined,
    timeout: row.timeout ?? undefined,
    limits: row.limits ?? undefined,
    deleted: Boolean(row.deleted),
    created_at: row.created_at instanceof Date ? row.created_at : new Date(row.created_at),
    created_by: row.created_by ?? '',
  };
}
