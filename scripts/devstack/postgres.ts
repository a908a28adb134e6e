import { randomBytes } from 'node:crypto';
import { Client, type ClientConfig } from 'pg';

/**
 * Connection settings of the PostgreSQL server the suite may create databases on:
 * `DATABASE_URL` when set, else libpq's usual `PG*` variables, defaulting to
 * `postgres@127.0.0.1:5432/postgres`.
 */
export function adminConfig(): ClientConfig {
  if (process.env.DATABASE_URL) return { connectionString: process.env.DATABASE_URL };
  return {
    host: process.env.PGHOST || '127.0.0.1',
    port: Number(process.env.PGPORT || 5432),
    user: process.env.PGUSER || 'postgres',
    password: process.env.PGPASSWORD,
    database: process.env.PGDATABASE || 'postgres',
  };
}

function describe(config: ClientConfig): string {
  if (config.connectionString) {
    const url = new URL(config.connectionString);
    url.password = url.password ? '****' : '';
    return url.toString();
  }
  return `${config.user}@${config.host}:${config.port}/${config.database}`;
}

/** A database of its own for one run, dropped by `drop()`. */
export interface ScratchDatabase {
  name: string;
  /** Connection string of the scratch database. */
  url: string;
  drop(): Promise<void>;
}

/** Creates an empty database named `<prefix>_<random>` on the admin server. */
export async function createScratchDatabase(prefix = 'tc_test'): Promise<ScratchDatabase> {
  const config = adminConfig();
  const admin = new Client({ ...config, connectionTimeoutMillis: 5_000 });
  try {
    await admin.connect();
  } catch (err) {
    throw new Error(
      `PostgreSQL is not reachable at ${describe(config)}: ${(err as Error).message}. ` +
        'The tests need a PostgreSQL server they may create databases on: start one ' +
        '(here: pg_ctlcluster <version> main start), or point DATABASE_URL or PGHOST/PGPORT/PGUSER/PGPASSWORD at one.',
    );
  }
  const name = `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = scratchUrl(config, name);
  return {
    name,
    url,
    drop: async () => {
      const c = new Client(config);
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

function scratchUrl(config: ClientConfig, database: string): string {
  const url = config.connectionString
    ? new URL(config.connectionString)
    : new URL(`postgres://${encodeURIComponent(String(config.user))}@${config.host}:${config.port}`);
  if (!config.connectionString && config.password) url.password = encodeURIComponent(String(config.password));
  url.pathname = `/${database}`;
  return url.toString();
}
